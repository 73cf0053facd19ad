"""Enrollment from real photos and a clip, through a real tiny TFLite embedding bundle, and the CLI commands."""
from __future__ import annotations

import shutil
import stat
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from edge.bundle import load_bundle
from edge.cli import main
from edge.config import settings_from_dict
from edge.crop import CropSpec
from edge.config import DetectorSettings
from edge.detect import PhotoDetector
from edge.enroll import FaceChecker, Sample, add_to_gallery, embedding_bundle, make_enroller
from edge.errors import GalleryError
from edge.gallery import Gallery

from .conftest import shared_path
from .helpers.tiny_bundles import build_embedding_bundle

KNN = ("data", "face_recognition_examples", "knn_examples")


# ---- a real tiny embedding bundle (tests/helpers/tiny_bundles.py: random-weight int8 TFLite) ----------

@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    build_embedding_bundle(root / "embedding", dim=16, threshold=0.3, version="0.1",
                           crop=CropSpec(size=32, margin=0.2))
    load_bundle(root / "embedding")  # the bundle passes the same checks as a shipped one
    return root


@pytest.fixture(scope="module")
def new_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The next version of the embedding model: other weights, version 0.2."""
    return build_embedding_bundle(tmp_path_factory.mktemp("v2") / "embedding", dim=16, version="0.2", seed=1)


def write_config(tmp_path: Path, models_dir: Path, **recognition: Any) -> Path:
    config = {"models": {"dir": str(models_dir), "bundles": ["embedding"]},
              "recognition": {"gallery": str(tmp_path / "gallery" / "gallery.npz"), **recognition}}
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def face_edge(*argv: str) -> int:
    """Run ``face-edge ARGV`` in-process through the real CLI (errors: one stderr line and an exit code)."""
    return main(list(argv))


def output(capsys: pytest.CaptureFixture) -> str:
    """Return what the command printed on stdout and stderr."""
    captured = capsys.readouterr()
    return captured.out + captured.err


def person_folder(tmp_path: Path, person: str) -> Path:
    """Copy knn_examples/train/<person>/ into a temp folder (skips when ../shared is absent)."""
    src = shared_path(*KNN, "train", person)
    dst = tmp_path / person
    shutil.copytree(src, dst)
    return dst


# ---- the face checks -------------------------------------------------------------------------

def test_every_knn_train_photo_is_one_good_face_and_group_photos_are_not() -> None:
    checker = FaceChecker(PhotoDetector(DetectorSettings(min_size=40)))
    train = shared_path(*KNN, "train")
    photos = sorted(p for p in train.glob("*/*") if p.is_file())
    assert len(photos) == 9
    for path in photos:
        found = checker.check(cv2.imread(str(path)))
        assert found.box is not None, f"{path.name}: {found.reason}"
    for group in (shared_path("data", "face_recognition_examples", "two_people.jpg"),
                  shared_path(*KNN, "test", "kit_with_rose.jpg")):
        assert checker.check(cv2.imread(str(group))).reason.startswith("2 faces found")


def test_blurred_and_tilted_faces_are_refused() -> None:
    checker = FaceChecker(PhotoDetector(DetectorSettings(min_size=40)))
    photo = cv2.imread(str(shared_path(*KNN, "train", "obama", "obama.jpg")))
    sharp = checker.check(photo)
    assert sharp.box is not None and sharp.sharpness > 200
    blurred = checker.check(cv2.GaussianBlur(photo, (0, 0), 3.0))
    assert blurred.box is None and "blurred" in blurred.reason
    h, w = photo.shape[:2]
    tilted = cv2.warpAffine(photo, cv2.getRotationMatrix2D((w / 2, h / 4), 30, 1.0), (w, h),
                            borderMode=cv2.BORDER_REPLICATE)
    refused = checker.check(tilted)
    # A 30-degree tilt either hides the face from the frontal cascades or fails the eye-level check.
    assert refused.box is None and ("tilted" in refused.reason or "no face" in refused.reason)


# ---- enrollment ------------------------------------------------------------------------------

def test_enroll_from_folder_skips_blank_and_group_photos_naming_them(tmp_path: Path, models_dir: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    folder = person_folder(tmp_path, "obama")
    cv2.imwrite(str(folder / "blank.png"), np.full((240, 320, 3), 200, np.uint8))
    shutil.copy(shared_path("data", "face_recognition_examples", "two_people.jpg"), folder / "two_people.jpg")
    (folder / "notes.txt").write_text("not an image")           # ignored: not an image suffix
    (folder / "broken.jpg").write_bytes(b"not really a jpeg")  # an image name that does not decode
    config = write_config(tmp_path, models_dir)
    assert face_edge("enroll", "obama", "--from", str(folder), "--config", str(config)) == 0
    out = output(capsys)
    assert f"skipped {folder / 'blank.png'}: no face found" in out
    assert f"skipped {folder / 'two_people.jpg'}: 2 faces found" in out
    assert f"skipped {folder / 'broken.jpg'}: not a readable image" in out
    assert "enrolled obama: 2 new samples (2 in all, 3 skipped)" in out
    gallery_file = tmp_path / "gallery" / "gallery.npz"
    assert stat.S_IMODE(gallery_file.stat().st_mode) == 0o600
    gallery = Gallery.load(gallery_file, "embedding", "0.1")
    assert [(p.name, p.samples) for p in gallery.list()] == [("obama", 2)]
    vectors = gallery.vectors_of("obama")
    assert vectors.shape == (2, 16)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_enrolled_vectors_are_the_models_embedding_of_the_crop(tmp_path: Path, models_dir: Path) -> None:
    settings = settings_from_dict({"models": {"dir": str(models_dir)}})
    enroller = make_enroller(settings, embedding_bundle(settings))
    photo = cv2.imread(str(shared_path(*KNN, "train", "obama", "obama2.jpg")))
    item = enroller.sample(photo, "obama2.jpg")
    assert isinstance(item, Sample)
    from edge.crop import crop_face
    direct = enroller.model.predict(crop_face(photo, item.box, enroller.model.manifest.crop))
    np.testing.assert_allclose(item.vector, direct.heads["embedding"].vector, atol=1e-6)


@pytest.mark.parametrize("bad", ["../obama", "a/b", "..", ""])
def test_names_with_path_characters_are_refused_before_anything_is_written(tmp_path: Path, models_dir: Path,
                                                                           bad: str,
                                                                           capsys: pytest.CaptureFixture) -> None:
    config = write_config(tmp_path, models_dir)
    assert face_edge("enroll", bad, "--from", str(tmp_path), "--config", str(config)) == 2
    assert "name" in output(capsys)
    assert not (tmp_path / "gallery").exists()


def test_nothing_usable_is_an_error_and_the_gallery_is_unchanged(tmp_path: Path, models_dir: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "empty_faces"
    folder.mkdir()
    cv2.imwrite(str(folder / "blank.jpg"), np.zeros((200, 200, 3), np.uint8))
    config = write_config(tmp_path, models_dir)
    assert face_edge("enroll", "nobody", "--from", str(folder), "--config", str(config)) == 2
    out = output(capsys)
    # One line that says why and what to do, not a line per skipped photo.
    assert out.count("\n") == 1 and "could not enroll nobody: no photo in" in out and "1x no face found" in out
    assert "use 3-10 photos of nobody alone" in out
    assert not (tmp_path / "gallery" / "gallery.npz").exists()


def make_camera_clip(path: Path, photo: np.ndarray, frames: int = 60) -> Path:
    """Write a clip of a real photo drifting slightly, with blank frames: it stands in for the camera here."""
    h, w = photo.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15.0, (w, h))
    assert writer.isOpened()
    for i in range(frames):
        if i % 10 < 2:
            frame = np.full_like(photo, 30)  # nobody in front of the camera
        else:
            shift = np.float32([[1, 0, (i % 7) - 3], [0, 1, (i % 5) - 2]])
            frame = cv2.warpAffine(photo, shift, (w, h), borderMode=cv2.BORDER_REPLICATE)
        writer.write(frame)
    writer.release()
    return path


def test_camera_enrollment_from_a_clip_standing_in_for_the_camera(tmp_path: Path, models_dir: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    # No camera exists on this machine: a video file is opened through the same edge source registry
    # that `--source 0` or `--source picamera` would use on the Pi.
    photo = cv2.imread(str(shared_path(*KNN, "train", "rose_leslie", "img2.jpg")))
    clip = make_camera_clip(tmp_path / "camera.avi", photo)
    config = write_config(tmp_path, models_dir)
    assert face_edge("enroll", "rose", "--camera", "--source", str(clip), "--count", "4",
                     "--config", str(config)) == 0
    out = output(capsys)
    assert "enrolled rose: 4 new samples" in out
    assert "skipped" in out and "no face found" in out  # the blank frames were looked at and refused
    gallery = Gallery.load(tmp_path / "gallery" / "gallery.npz", "embedding", "0.1")
    assert gallery.list()[0].samples == 4


def test_camera_enrollment_does_not_use_the_demo_clip(tmp_path: Path, models_dir: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    config = write_config(tmp_path, models_dir)  # source.uri is left at its default, the demo clip
    assert face_edge("enroll", "rose", "--camera", "--config", str(config)) == 2
    assert "source.uri is the demo clip" in output(capsys)
    assert not (tmp_path / "gallery" / "gallery.npz").exists()


def test_camera_frames_are_spaced_and_capped(tmp_path: Path, models_dir: Path) -> None:
    settings = settings_from_dict({"models": {"dir": str(models_dir)}})
    enroller = make_enroller(settings, embedding_bundle(settings))
    photo = cv2.imread(str(shared_path(*KNN, "train", "obama", "obama.jpg")))
    seen: list[int] = []
    result = enroller.from_frames((photo for _ in range(100)), count=3, every=4,
                                  on_frame=lambda i, item: seen.append(i))
    assert len(result.samples) == 3 and seen == [0, 4, 8]
    blank = np.zeros_like(photo)
    result = enroller.from_frames((blank for _ in range(100)), count=3, max_frames=20)
    assert not result.samples and len(result.skipped) == 20
    with pytest.raises(GalleryError, match="no usable face"):
        add_to_gallery(Gallery("embedding", "0.1"), "x", result)


# ---- gallery commands -----------------------------------------------------------------------

def test_gallery_list_remove_export_import(tmp_path: Path, models_dir: Path, capsys: pytest.CaptureFixture) -> None:
    config = write_config(tmp_path, models_dir)
    for person in ("obama", "biden"):
        assert face_edge("enroll", person, "--from", str(person_folder(tmp_path, person)),
                         "--config", str(config)) == 0
    capsys.readouterr()
    assert face_edge("gallery", "list", "--config", str(config)) == 0
    out = output(capsys)
    assert "model embedding v0.1, 2 people" in out and "obama\t2 samples" in out and "biden\t2 samples" in out
    assert "unknown above cosine distance" in out

    backup = tmp_path / "backup" / "people.npz"
    assert face_edge("gallery", "export", str(backup), "--config", str(config)) == 0
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert face_edge("gallery", "remove", "biden", "--config", str(config)) == 0
    gallery_file = tmp_path / "gallery" / "gallery.npz"
    assert Gallery.read(gallery_file).names() == ["obama"]

    # A corrupt import is refused and the current gallery is kept byte for byte.
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(backup.read_bytes()[:300])
    before = gallery_file.read_bytes()
    capsys.readouterr()
    assert face_edge("gallery", "import", str(corrupt), "--config", str(config)) == 2
    assert "corrupt" in output(capsys)
    assert gallery_file.read_bytes() == before

    assert face_edge("gallery", "import", str(backup), "--config", str(config)) == 2  # obama is in both
    assert face_edge("gallery", "import", str(backup), "--config", str(config), "--replace") == 0
    assert sorted(Gallery.read(gallery_file).names()) == ["biden", "obama"]
    assert face_edge("gallery", "remove", "carol", "--config", str(config)) == 2
    gallery_file.unlink()  # a lost gallery comes back from the export
    assert face_edge("gallery", "import", str(backup), "--config", str(config)) == 0
    assert sorted(Gallery.load(gallery_file, "embedding", "0.1").names()) == ["biden", "obama"]
    assert stat.S_IMODE(gallery_file.stat().st_mode) == 0o600


def test_model_change_asks_to_re_enroll_or_reembeds_kept_photos(tmp_path: Path, models_dir: Path, new_model: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    folder = person_folder(tmp_path, "kit_harington")
    for keep in (False, True):
        work = tmp_path / f"keep_{keep}"
        work.mkdir()
        config = write_config(work, models_dir, keep_photos=keep)
        assert face_edge("enroll", "kit", "--from", str(folder), "--config", str(config)) == 0
        capsys.readouterr()
        status = face_edge("enroll", "kit", "--from", str(folder), "--config", str(config),
                           "--bundle", str(new_model))
        out = output(capsys)
        assert status == 2
        assert ("face-edge gallery reembed" in out) if keep else ("re-enroll everyone" in out)
        if keep:
            assert face_edge("gallery", "reembed", "--bundle", str(new_model), "--config", str(config)) == 0
            gallery = Gallery.load(work / "gallery" / "gallery.npz", "embedding", "0.2")
            settings = settings_from_dict({"models": {"dir": str(new_model.parent)}})
            enroller = make_enroller(settings, load_bundle(new_model))
            probe = enroller.sample(cv2.imread(str(folder / "john2.jpeg")), "john2")
            assert isinstance(probe, Sample)
            # Re-embedding from the kept wide crop gives (nearly) what the new model sees live.
            assert gallery.match(probe.vector).distance < 0.02


# ---- the live pipeline names people from this gallery ----------------------------------------

def run_pipeline_on(tmp_path: Path, models_dir: Path, photo: Path, **recognition: Any) -> list[Any]:
    """Run the real Pipeline over a video of 8 frames of ``photo`` and return every face summary it produced
    (each frame's look applied before the next frame; an image folder would make each copy a scene of its own)."""
    from edge.pipeline import Pipeline
    from edge.sources import VideoFile

    image = cv2.imread(str(photo))
    clip = tmp_path / f"frames_{photo.stem}.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (image.shape[1], image.shape[0]))
    for _ in range(8):
        writer.write(image)
    writer.release()
    settings = settings_from_dict({
        "models": {"dir": str(models_dir), "bundles": ["embedding"]},
        "tracker": {"refresh_every": 1, "vote_window": 5, "vote_min": 3},
        "recognition": {"gallery": str(tmp_path / "gallery" / "gallery.npz"), **recognition}})
    pipeline = Pipeline(settings, source=VideoFile(clip, loop=False, realtime=False))
    seen: list[Any] = []
    pipeline.on_frame.append(lambda p, _i: (p.drain(), seen.extend(p.summary(t) for t in p.tracker.visible())))
    pipeline.run(max_frames=8)
    return seen


def test_the_pipeline_shows_enrolled_names_and_distances(tmp_path: Path, models_dir: Path) -> None:
    folder = person_folder(tmp_path, "obama")
    config = write_config(tmp_path, models_dir)
    assert face_edge("enroll", "obama", "--from", str(folder), "--config", str(config)) == 0
    seen = run_pipeline_on(tmp_path, models_dir, folder / "obama.jpg")
    named = [s for s in seen if s.name == "obama"]
    # The vote needs 3 looks before the name shows; after that every frame names him.
    assert len(named) >= 5 and all(s.distance is not None and s.distance < 0.3 for s in named)
    assert seen[0].recognised and seen[0].name is None  # one look is not enough to show a name
    # recognition.threshold in the config overrides the gallery's: with a tiny one he is unknown.
    unknown = run_pipeline_on(tmp_path, models_dir, folder / "obama.jpg", threshold=1e-9)
    assert unknown and all(s.recognised and s.name is None for s in unknown)


def _unit(*values: float) -> np.ndarray:
    v = np.asarray(values, np.float32)
    return v / np.linalg.norm(v)


def test_a_warning_flags_a_sample_unlike_the_persons_others_not_one_that_also_looks_like_someone() -> None:
    from edge.enroll import EnrollResult, consistency_warnings

    alice, bob, carol = _unit(1, 0, 0, 0), _unit(0, 1, 0, 0), _unit(0, 0, 1, 0)
    gallery = Gallery("m", "1", dim=4, threshold=0.3)
    gallery.add("bob", np.stack([bob, bob]))
    both = _unit(1, 1, 0, 0)    # cosine distance 0.293 to alice's samples and to bob's
    bob_photo = _unit(0, 1, -0.3, 0)   # 0.042 from bob's samples, 0.323 from "both"
    samples = [Sample("a1.jpg", (0, 0, 9, 9), alice, 99.0), Sample("a2.jpg", (0, 0, 9, 9), alice, 99.0),
               Sample("both.jpg", (0, 0, 9, 9), both, 99.0), Sample("bob.jpg", (0, 0, 9, 9), bob_photo, 99.0),
               Sample("carol.jpg", (0, 0, 9, 9), carol, 99.0)]
    warnings = consistency_warnings(gallery, "alice", EnrollResult(samples))
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("bob.jpg looks unlike the other samples of alice") and "looks like bob" in warnings[0]
    assert warnings[1].startswith("carol.jpg looks unlike the other samples of alice") and "looks like" not in warnings[1]
    # A first and only sample has nothing of its own to be compared with: it is flagged when it looks like bob.
    alone = consistency_warnings(gallery, "dave", EnrollResult([Sample("d.jpg", (0, 0, 9, 9), both, 99.0)]))
    assert len(alone) == 1 and alone[0].startswith("d.jpg looks like bob"), alone
    assert consistency_warnings(gallery, "erin", EnrollResult([Sample("e.jpg", (0, 0, 9, 9), carol, 99.0)])) == []
