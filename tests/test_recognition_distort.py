"""Synthetic distortions: each changes the crop in its own way and keeps shape and dtype."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.conftest import shared_path
from trainer.distort import DISTORTIONS, LABELS, distort, distort_batch


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    bgr = cv2.imread(str(shared_path("data", "celeba", "img_align_celeba", "000001.jpg")))
    return cv2.resize(bgr, (112, 112))[:, :, ::-1].copy()


def _sharpness(img: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


def test_each_distortion_does_what_it_says(face: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    out = {k: distort(face, k, rng, severity=1.0) for k in LABELS}
    for k, img in out.items():
        assert img.shape == face.shape and img.dtype == np.uint8
    assert np.array_equal(out["clean"], face)
    assert _sharpness(out["blur"]) < 0.5 * _sharpness(face)
    assert out["dark"].mean() < 0.5 * face.mean()
    assert np.abs(out["noise"].astype(int) - face).mean() > 8
    grey_face, grey_fog = (cv2.cvtColor(i, cv2.COLOR_RGB2GRAY) for i in (face, out["fog"]))
    assert grey_fog.std() < 0.8 * grey_face.std() and grey_fog.mean() > grey_face.mean()
    changed = np.any(out["occlusion"] != face, axis=2).mean()
    assert 0.05 < changed < 0.6
    with pytest.raises(ValueError, match="unknown distortion"):
        distort(face, "rain", rng)


def test_batch_labels_match_the_distortion_applied(face: np.ndarray) -> None:
    rng = np.random.default_rng(3)
    images, labels = distort_batch(np.stack([face] * 60), rng)
    assert images.shape == (60, 112, 112, 3) and set(labels.tolist()) == set(range(len(LABELS)))
    clean = labels == LABELS.index("clean")
    assert all(np.array_equal(img, face) for img in images[clean])
    assert not any(np.array_equal(img, face) for img in images[~clean])
    assert len(DISTORTIONS) == 5
