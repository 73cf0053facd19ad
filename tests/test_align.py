"""Aligned crops on the device: landmarks bundle -> five points -> dlib-style chip, through real tiny TFLite bundles."""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from edge.align import AlignmentError, FaceInputs, Landmarker, from_fractions, to_fractions
from edge.bundle import load_bundle, parse_manifest
from edge.config import settings_from_dict
from edge.crop import CropSpec, crop_aligned, crop_face
from edge.errors import BundleError
from edge.look import look_at
from edge.models import FaceModel

from .conftest import shared_path
from .helpers.tiny_bundles import build_embedding_bundle, build_landmarks_bundle

ALIGNED = CropSpec(size=32, margin=0.25, kind="aligned")


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("aligned-models")
    build_landmarks_bundle(root / "landmarks")
    build_landmarks_bundle(root / "lost", points=(1.6,) * 10)           # "finds" the face beyond its crop
    build_embedding_bundle(root / "embedding", dim=16, threshold=0.3, crop=ALIGNED)
    return root


def model(folder: Path) -> FaceModel:
    return FaceModel(load_bundle(folder))


def test_crop_kind_round_trips_and_unknown_kinds_are_refused() -> None:
    assert CropSpec.from_dict(ALIGNED.to_dict()) == ALIGNED
    assert "kind" not in CropSpec(96).to_dict()            # box crops keep their old manifest form
    with pytest.raises(ValueError, match="crop kind 'warped'"):
        CropSpec.from_dict({"size": 96, "kind": "warped"})
    raw = {"name": "lm", "task": "landmarks", "version": "1", "input": {"height": 32, "width": 32},
           "outputs": [{"name": "landmarks", "kind": "landmarks"}]}
    assert parse_manifest(raw).outputs[0].kind == "landmarks"
    with pytest.raises(BundleError, match="bad crop spec"):
        parse_manifest({**raw, "crop": {"size": 32, "kind": "warped"}})


def test_fractions_map_to_frame_pixels_and_back() -> None:
    spec = CropSpec(size=80, margin=0.1)
    box = (100, 60, 90, 90)
    points = np.array([[160.0, 95.0], [140.0, 96.0], [118.0, 95.0], [133.0, 96.0], [145.0, 125.0]])
    np.testing.assert_allclose(from_fractions(to_fractions(points, box, spec), box, spec), points, atol=1e-9)


def test_landmarker_gives_frame_points_and_refuses_tiny_or_lost_faces(models_dir: Path) -> None:
    frame = cv2.imread(str(shared_path("data", "face_recognition_examples", "obama.jpg")))
    box = (150, 120, 200, 200)
    marker = Landmarker(model(models_dir / "landmarks"))
    points = marker.points(frame, box)
    want = from_fractions(np.reshape((0.78, 0.38, 0.62, 0.39, 0.22, 0.38, 0.38, 0.39, 0.5, 0.68), (5, 2)),
                          box, marker.spec)
    np.testing.assert_allclose(points, want, atol=0.02 * 200)
    with pytest.raises(AlignmentError, match="too small to align"):
        marker.points(frame, (10, 10, 12, 12))
    with pytest.raises(AlignmentError, match="outside the face crop"):
        Landmarker(model(models_dir / "lost")).points(frame, box)


def test_face_inputs_cut_each_spec_once_and_align_from_the_landmarks(models_dir: Path) -> None:
    frame = cv2.imread(str(shared_path("data", "face_recognition_examples", "obama.jpg")))
    box = (150, 120, 200, 200)
    marker = Landmarker(model(models_dir / "landmarks"))
    inputs = FaceInputs(frame, box, marker)
    plain = CropSpec(size=48, margin=0.2)
    assert np.array_equal(inputs.crop(plain), crop_face(frame, box, plain)) and not inputs.has_points
    chip = inputs.crop(ALIGNED)
    assert inputs.has_points and chip.shape == (32, 32, 3)
    assert np.array_equal(chip, crop_aligned(frame, inputs.points(), ALIGNED))
    assert inputs.crop(ALIGNED) is chip
    with pytest.raises(AlignmentError, match="needs a landmarks bundle"):
        FaceInputs(frame, box, None).crop(ALIGNED)


def test_look_skips_aligned_models_it_cannot_align_and_runs_the_rest(models_dir: Path) -> None:
    frame = cv2.imread(str(shared_path("data", "face_recognition_examples", "obama.jpg")))
    models = {"landmarks": model(models_dir / "landmarks"), "embedding": model(models_dir / "embedding")}
    from edge.look import landmarker_of

    look = look_at(frame, (150, 120, 200, 200), models, landmarker_of(models))
    assert look.vector is not None and look.points is not None and not look.skipped
    assert [p.model for p in look.predictions] == ["embedding"]        # landmarks only align
    tiny = look_at(frame, (10, 10, 12, 12), models, landmarker_of(models))
    assert tiny.vector is None and "too small" in tiny.skipped["embedding"]
    lost = {"lost": model(models_dir / "lost"), "embedding": models["embedding"]}
    assert "outside" in look_at(frame, (150, 120, 200, 200), lost, landmarker_of(lost)).skipped["embedding"]


def test_pipeline_counts_skipped_looks_and_warns_without_landmarks(models_dir: Path, tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    from edge.pipeline import Pipeline
    from edge.sources import make_source

    folder = tmp_path / "faces"
    folder.mkdir()
    src = cv2.imread(str(shared_path("data", "face_recognition_examples", "obama.jpg")))
    cv2.imwrite(str(folder / "a.jpg"), src)
    config = {"models": {"dir": str(models_dir), "bundles": ["landmarks", "embedding"]},
              "source": {"uri": str(folder), "loop": False, "realtime": False}}
    settings = settings_from_dict(yaml.safe_load(yaml.safe_dump(config)))
    pipeline = Pipeline(settings, source=make_source(settings.source))
    assert pipeline.landmarker is not None
    pipeline.run(max_frames=3)
    assert pipeline.times.model_runs >= 1 and pipeline.status()["align_skipped"] == 0
    settings.models.bundles = ["embedding"]
    with caplog.at_level(logging.WARNING, logger="face-edge.pipeline"):
        alone = Pipeline(settings, source=make_source(settings.source))
    assert "no landmarks bundle is loaded" in caplog.text
    alone.run(max_frames=3)
    assert alone.times.model_runs == 0 and alone.status()["align_skipped"] >= 1


def test_a_face_that_cannot_be_aligned_is_freed_without_the_garbage_collector(models_dir: Path) -> None:
    """FaceInputs keeps why alignment failed, not the exception: an exception's traceback holds the frames
    that hold the FaceInputs and its frame, a cycle that kept every failed look's frame copy alive until
    Python's rare full collection (the soak's RSS rose and fell by 15 MB)."""
    import gc
    import weakref

    frame = np.zeros((240, 320, 3), np.uint8)
    marker = Landmarker(model(models_dir / "landmarks"))
    gc.disable()
    try:
        for landmarker, box in ((marker, (10, 10, 12, 12)), (None, (100, 60, 120, 120))):
            inputs = FaceInputs(frame, box, landmarker)
            for _ in range(2):                                  # the second failure is answered from the first
                with pytest.raises(AlignmentError):
                    inputs.crop(ALIGNED)
            gone = weakref.ref(inputs)
            del inputs
            assert gone() is None
    finally:
        gc.enable()
