"""THE face crop: square around the box, margin, shift, replicated border, resize."""
from __future__ import annotations

import numpy as np
import pytest

from edge.crop import CropSpec, crop_face, square_region, whole_image_box


def _ramp(h: int = 120, w: int = 160) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.dstack([x % 256, y % 256, (x + y) % 256]).astype(np.uint8)


def test_square_region_adds_margin_on_each_side():
    x, y, s, s2 = square_region((40, 30, 40, 40), CropSpec(size=64, margin=0.25))
    assert s == s2 == 60 and (x, y) == (30, 20)


def test_crop_without_margin_is_the_box_resized():
    frame = _ramp()
    crop = crop_face(frame, (20, 10, 50, 50), CropSpec(size=50, margin=0.0))
    assert crop.shape == (50, 50, 3)
    np.testing.assert_array_equal(crop, frame[10:60, 20:70])


def test_non_square_box_uses_the_longer_side():
    x, y, s, _ = square_region((10, 10, 20, 40), CropSpec(margin=0.0))
    assert s == 40 and x == 0 and y == 10


def test_shift_moves_the_square_vertically():
    _, y0, _, _ = square_region((40, 40, 40, 40), CropSpec(margin=0.0, shift_y=0.0))
    _, y1, _, _ = square_region((40, 40, 40, 40), CropSpec(margin=0.0, shift_y=-0.25))
    assert y1 == y0 - 10


def test_border_is_replicated_where_the_square_leaves_the_frame():
    frame = _ramp()
    crop = crop_face(frame, (0, 0, 20, 20), CropSpec(size=40, margin=0.5))
    # the square is (-10,-10,40,40): its top-left 10x10 is the replicated corner pixel
    np.testing.assert_array_equal(crop[:10, :10], np.broadcast_to(frame[0, 0], (10, 10, 3)))


def test_grey_frames_keep_their_shape_and_dtype():
    grey = _ramp()[:, :, 0]
    crop = crop_face(grey, (10, 10, 30, 30), CropSpec(size=24))
    assert crop.shape == (24, 24) and crop.dtype == np.uint8


def test_empty_frame_and_box_outside_are_errors():
    with pytest.raises(ValueError, match="empty frame"):
        crop_face(np.empty((0, 0, 3), np.uint8), (0, 0, 10, 10), CropSpec())
    with pytest.raises(ValueError, match="outside"):
        crop_face(_ramp(), (1000, 1000, 10, 10), CropSpec(margin=0.0))


def test_whole_image_box_inverts_the_margin():
    spec = CropSpec(size=64, margin=0.25)
    img = _ramp(100, 100)
    box = whole_image_box(img, spec)
    x, y, s, _ = square_region(box, spec)
    assert abs(x) <= 1 and abs(y) <= 1 and abs(s - 100) <= 1


def test_spec_round_trips_and_rejects_unknown_keys():
    spec = CropSpec(size=80, margin=0.3, shift_y=-0.1)
    assert CropSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="unknown crop keys"):
        CropSpec.from_dict({"size": 3, "pad": 1})
