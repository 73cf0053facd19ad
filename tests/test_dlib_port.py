"""dlib's face recognition ResNet: the .dat reader, the exact Keras port, and the aligned chip of edge.crop."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.crop import CropSpec, crop_aligned
from trainer.errors import DataError

from .conftest import shared_path

dlib = pytest.importorskip("dlib")
frm = pytest.importorskip("face_recognition_models")

CHIP = CropSpec(size=150, margin=0.25, kind="aligned")
PHOTOS = ("obama.jpg", "biden.jpg", "two_people.jpg", "alex-lacamoire.png", "lin-manuel-miranda.png")


@pytest.fixture(scope="module")
def dlib_faces() -> list[tuple[np.ndarray, object, np.ndarray]]:
    """(RGB photo, dlib 5-point shape, the points as an array) of every face dlib finds in the example photos."""
    folder = shared_path("data", "face_recognition_examples")
    hog = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    faces = []
    for name in PHOTOS:
        rgb = np.ascontiguousarray(cv2.imread(str(folder / name))[:, :, ::-1])
        for rect in hog(rgb, 1):
            shape = predictor(rgb, rect)
            faces.append((rgb, shape, np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], float)))
    assert len(faces) >= 6
    return faces


def test_reader_checks_every_layer_of_the_real_dat() -> None:
    from trainer.dlib_port.network import read_dat

    net = read_dat(frm.face_recognition_model_location())
    assert len(net.convolutions()) == 29
    assert [round(v, 3) for v in net.mean_rgb] == [122.782, 117.001, 104.298]
    first = net.convolutions()[0]
    assert first.params["kernel"].shape == (32, 3, 7, 7) and first.spec.padding == 0
    assert net.convolutions()[1].spec.padding == 1   # 3x3 at stride 1: half the window


def test_a_file_that_is_not_this_network_is_refused_with_the_layer_named(tmp_path: Path) -> None:
    from trainer.dlib_port.network import read_dat

    with pytest.raises(DataError, match="layer 0 from the output should be loss_metric"):
        read_dat(frm.pose_predictor_five_point_model_location())   # a shape predictor, not a network
    data = bytearray(Path(frm.face_recognition_model_location()).read_bytes())
    at = data.index(b"max_pool_2")
    data[at + len(b"max_pool_2") + 1] = 5          # max_pool<3,3,...> -> <5,...>
    bad = tmp_path / "bad.dat"
    bad.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"should be max_pool<3,3,2,2>.*found max_pool<5,3,2,2>"):
        read_dat(bad)
    (tmp_path / "short.dat").write_bytes(bytes(data[:5000]))
    with pytest.raises(DataError, match="short.dat"):
        read_dat(tmp_path / "short.dat")


def test_edge_aligned_chip_matches_dlib_get_face_chip(dlib_faces: list) -> None:
    for rgb, shape, points in dlib_faces:
        ours = crop_aligned(rgb, points, CHIP).astype(np.int16)
        ref = dlib.get_face_chip(rgb, shape, 150, 0.25).astype(np.int16)
        assert np.abs(ours - ref).mean() < 0.5          # same geometry: off by rounding at the borders
    rgb, shape, points = dlib_faces[0]
    big = cv2.resize(rgb, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)  # large face: dlib's pyramid path
    ref = dlib.get_face_chip(big, dlib.full_object_detection(
        dlib.rectangle(0, 0, big.shape[1], big.shape[0]), [dlib.point(int(x * 3), int(y * 3)) for x, y in points]),
        150, 0.25)
    assert np.abs(crop_aligned(big, points * 3, CHIP).astype(np.int16) - ref.astype(np.int16)).mean() < 1.0


def test_keras_port_gives_dlibs_descriptors(dlib_faces: list) -> None:
    from trainer.dlib_port.build import dlib_descriptors, keras_descriptors
    from trainer.dlib_port.keras_model import build_keras_model, multiply_accumulates
    from trainer.dlib_port.network import read_dat

    model = build_keras_model(read_dat(frm.face_recognition_model_location()))
    chips = np.stack([dlib.get_face_chip(rgb, shape, 150, 0.25) for rgb, shape, _ in dlib_faces])
    diff = np.abs(keras_descriptors(model, chips) - dlib_descriptors(chips))
    assert diff.max() < 1e-3, diff.max()
    assert 2.6e8 < multiply_accumulates(model) < 2.8e8
