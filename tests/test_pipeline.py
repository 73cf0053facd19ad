"""The frame loop end to end: real OpenCV, real LiteRT on tiny bundles, the shipped demo clip."""
from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.bundle import load_bundle
from edge.config import Settings
from edge.crop import crop_face
from edge.detect import HaarDetector
from edge.models import FaceModel
from edge.overlay import ALERT
from edge.pipeline import LOST_MESSAGE, Pipeline
from edge.sinks import EventSink
from edge.sources import DEMO_CLIP, UsbCamera, VideoFile
from edge.track import iou

from .helpers.tiny_bundles import (build_attributes_bundle, build_embedding_bundle, build_landmarks_bundle,
                                   build_multitask_bundle, corrupt_model, edit_manifest)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """Return a folder with the four tiny bundles (built once per module, converted once per machine)."""
    root = tmp_path_factory.mktemp("built")
    build_attributes_bundle(root / "attributes", unreliable=("Young",))
    build_multitask_bundle(root / "multitask")
    build_landmarks_bundle(root / "landmarks")
    build_embedding_bundle(root / "embedding")
    return root


@pytest.fixture
def models_dir(built, tmp_path) -> Path:
    """Return a fresh copy of the tiny bundles that a test may damage."""
    folder = tmp_path / "models"
    shutil.copytree(built, folder)
    return folder


def _settings(models_dir: Path, tmp_path: Path, **tracker) -> Settings:
    s = Settings()
    s.source.realtime = False
    s.models.dir = str(models_dir)
    s.recognition.gallery = str(tmp_path / "gallery.npz")
    for key, value in tracker.items():
        setattr(s.tracker, key, value)
    return s


class CountingClip(VideoFile):
    """The demo clip, counting how often it is opened (a reload must not reopen the source)."""

    opens = 0

    def __init__(self, loop: bool = True):
        super().__init__(DEMO_CLIP, loop=loop, realtime=False, name="demo")

    def open(self) -> None:
        CountingClip.opens += 1
        super().open()


def test_demo_with_all_models_runs_them_only_when_due(models_dir, tmp_path):
    s = _settings(models_dir, tmp_path, refresh_every=8)
    s.detector.scale_factor = 1.2                     # fewer pyramid levels: a faster test
    pipeline = Pipeline(s)
    assert sorted(pipeline.models) == ["attributes", "embedding", "landmarks", "multitask"]
    assert pipeline.runtime_label() == "ai_edge_litert x1"
    seen = []
    pipeline.on_frame.append(lambda p, i: seen.append((i, len(p.tracker.visible()))))
    pipeline.on_frame.append(lambda p, i: p.drain() if i == 31 else None)   # the last looks are applied
    assert pipeline.run(max_frames=32) == 32
    assert [i for i, _ in seen] == list(range(32))
    faces = sum(n for _, n in seen)
    tracks = pipeline.tracker._next_id - 1
    runs = pipeline.times.model_runs
    assert faces >= 25
    # each track is looked at when new and then every 8 frames: at most 4 looks in 32 frames
    assert 3 <= runs <= 3 * 4 * tracks
    assert runs < 3 * faces / 3                       # far fewer model calls than faces seen
    assert pipeline.times.frames == 32 and pipeline.times.mean_ms()["detect"] > 0


def test_tracks_carry_every_models_heads(models_dir, tmp_path):
    pipeline = Pipeline(_settings(models_dir, tmp_path))
    pipeline.open()
    try:
        for _ in range(10):
            pipeline.step()
        pipeline.drain()                                   # the looks handed to the model worker are back
        track = pipeline.tracker.visible()[0]
        heads = set(track.smoothed())
        assert {("attributes", "attributes"), ("multitask", "age"), ("multitask", "gender"),
                ("multitask", "emotion"), ("embedding", "embedding")} <= heads
        summary = pipeline.summary(track)
        assert "Young" not in summary.tags                 # the manifest marks it unreliable
        assert set(summary.values) == {"age", "gender", "emotion"}
        assert not summary.recognised                      # no gallery: no name, no "unknown"
    finally:
        pipeline.close()


def test_events_for_two_people_appearing_and_leaving(models_dir, tmp_path):
    path = tmp_path / "events.jsonl"
    s = _settings(models_dir, tmp_path)
    s.detector.scale_factor = 1.2                         # fewer pyramid levels: a faster test
    # paced at four times the clip's rate, like a camera's frames: the background search finds the second face
    # during its 4.5 s visit however fast the loop runs (unpaced, it can play the whole visit before a search lands)
    pipeline = Pipeline(s, source=VideoFile(DEMO_CLIP, loop=False, speed=4.0, name="demo"), events=EventSink(path))
    assert pipeline.run(max_frames=125) == 125            # the second face comes at 3 s and goes at 7.5 s
    events = [json.loads(line) for line in path.read_text().splitlines()]
    appear = [e for e in events if e["event"] == "appear"]
    leave = [e for e in events if e["event"] == "leave"]
    assert len({e["track"] for e in appear}) >= 2
    assert {e["track"] for e in appear} == {e["track"] for e in leave}   # everyone who came also left
    assert all("age" in e and "attributes" in e and "time" in e for e in appear)
    assert all(e["seconds"] >= 0 for e in leave)


def test_a_failing_bundle_is_skipped_and_the_others_run(models_dir, tmp_path, caplog):
    build_attributes_bundle(models_dir / "tampered")
    corrupt_model(models_dir / "tampered", "flip")                       # sha256 no longer matches
    build_attributes_bundle(models_dir / "truncated")
    corrupt_model(models_dir / "truncated", "truncate", keep_sha=True)   # passes sha, fails in the runtime
    build_attributes_bundle(models_dir / "wrongfields")
    edit_manifest(models_dir / "wrongfields", task="telepathy")
    s = _settings(models_dir, tmp_path)
    s.models.bundles = ["attributes", "missing", "tampered", "truncated", "wrongfields"]
    with caplog.at_level(logging.WARNING, logger="face-edge.pipeline"):
        pipeline = Pipeline(s)
    assert list(pipeline.models) == ["attributes"]
    errors = pipeline.model_errors
    assert len(errors) == 4 and all("\n" not in e for e in errors)
    assert "missing: no such folder" in errors[0]
    assert "tampered: model.tflite does not match its sha256" in errors[1]
    assert errors[2].startswith("truncated: ") and "model.tflite does not load" in errors[2]
    assert "task 'telepathy' is not one of" in errors[3]
    assert caplog.text.count("model skipped") == 4
    assert pipeline.run(max_frames=5) == 5


def test_no_bundles_is_detection_only(tmp_path):
    s = _settings(tmp_path, tmp_path)
    s.models.bundles = []
    pipeline = Pipeline(s)
    assert pipeline.models == {} and pipeline.runtime_label() == "detection only"
    assert pipeline.run(max_frames=5) == 5 and pipeline.times.model_runs == 0


def test_reload_swaps_models_between_frames_without_reopening_the_source(models_dir, tmp_path):
    CountingClip.opens = 0
    pipeline = Pipeline(_settings(models_dir, tmp_path), source=CountingClip())
    results = {}

    def on_frame(p: Pipeline, index: int) -> None:
        if index == 5:
            build_attributes_bundle(models_dir / "attributes", version="2", seed=1)
            results["ok"] = p.reload_models(["attributes"])
            results["at_once"] = p.models["attributes"].manifest.version    # between frames: swapped now
        if index == 6:
            results["after"] = p.models["attributes"].manifest.version
            corrupt_model(models_dir / "attributes", "flip")
            results["bad"] = p.reload_models()
        if index == 7:
            results["kept"] = p.models["attributes"].manifest.version

    pipeline.on_frame.append(on_frame)
    assert pipeline.run(max_frames=12) == 12
    assert results["ok"] == [] and results["at_once"] == "2" and results["after"] == "2"
    assert len(results["bad"]) == 1 and "sha256" in results["bad"][0]
    assert results["kept"] == "2"                          # a failed reload keeps the running model
    assert sorted(pipeline.models) == ["attributes", "embedding", "landmarks", "multitask"]
    assert CountingClip.opens == 1


def test_reload_from_another_thread_takes_over_at_the_next_frame(models_dir, tmp_path):
    import threading

    pipeline = Pipeline(_settings(models_dir, tmp_path))
    pipeline.open()
    try:
        pipeline.step()
        build_attributes_bundle(models_dir / "attributes", version="3", seed=2)
        errors = []
        worker = threading.Thread(target=lambda: errors.extend(pipeline.reload_models(["attributes"])))
        worker.start()
        worker.join()
        assert errors == [] and pipeline.models["attributes"].manifest.version == "1"   # not mid-loop
        pipeline.step()
        assert pipeline.models["attributes"].manifest.version == "3"
        assert all(t.last_run == pipeline.frame_index - 1 for t in pipeline.tracker.visible())  # re-looked
    finally:
        pipeline.close()


def test_recognition_names_an_enrolled_face_by_vote(models_dir, tmp_path):
    from edge.gallery import Gallery

    model = FaceModel(load_bundle(models_dir / "embedding"))
    detector = HaarDetector()
    cap = cv2.VideoCapture(str(DEMO_CLIP))
    vectors = []
    for _ in range(20):
        ok, frame = cap.read()
        boxes = detector.detect(frame)
        if boxes:
            crop = crop_face(frame, boxes[0], model.manifest.crop)
            vectors.append(model.predict(crop).heads["embedding"].vector)
    cap.release()
    gallery = Gallery(model.name, model.manifest.version)
    gallery.add("eileen", np.stack(vectors))
    s = _settings(models_dir, tmp_path, refresh_every=1, vote_window=5, vote_min=3)
    gallery.save(s.recognition.gallery)
    s.recognition.threshold = 0.05
    pipeline = Pipeline(s)
    assert pipeline.gallery is not None
    pipeline.open()
    try:
        names = []
        for _ in range(8):
            pipeline.step()
            names += [pipeline.summary(t).name for t in pipeline.tracker.visible()]
            pipeline.drain()                               # each frame's look is back before the next frame
        pipeline.step()
        first = pipeline.tracker.visible()[0]
        summary = pipeline.summary(first)
        assert summary.recognised and summary.name == "eileen" and summary.distance < 0.05
        assert names[0] is None                              # one look is not enough votes
    finally:
        pipeline.close()


def test_lost_camera_keeps_the_loop_and_watchdog_going(tmp_path, caplog):
    # No camera exists here: UsbCamera reads a short real file through cv2.VideoCapture, whose end
    # looks to the reader exactly like an unplugged camera.
    clip = tmp_path / "cam.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 15, (320, 240))
    for _ in range(3):
        writer.write(np.full((240, 320, 3), 90, np.uint8))
    writer.release()
    s = _settings(tmp_path, tmp_path)
    s.models.bundles = []

    class ShownFrames:
        name = "window"          # the lost-camera screen goes to the window sink
        frames: list = []

        def write(self, frame):
            self.frames.append(frame.copy())
            return True

        def close(self):
            pass

    shown = ShownFrames()
    pipeline = Pipeline(s, source=UsbCamera(str(clip), reconnect_max_s=5.0), sinks=[shown])
    callbacks = []
    pipeline.on_frame.append(lambda p, i: callbacks.append(p.source.lost))
    pipeline.open()
    try:
        deadline = time.monotonic() + 20.0   # generous: the reader thread is slow on a busy machine
        while time.monotonic() < deadline:
            pipeline.step()
            if any(callbacks) and pipeline.source.lost:
                break
        assert pipeline.source.lost and any(callbacks)     # callbacks run while lost (watchdog)
        assert pipeline.status()["lost"]
    finally:
        pipeline.close()
    assert "lost, reconnecting" in caplog.text
    banner = [f for f in shown.frames if (f == ALERT).all(axis=2).any()]
    assert banner, f"no frame showed {LOST_MESSAGE!r}"


def test_stop_ends_the_loop_and_releases_the_source(tmp_path):
    s = _settings(tmp_path, tmp_path)
    s.models.bundles = []
    source = CountingClip()
    pipeline = Pipeline(s, source=source)
    pipeline.on_frame.append(lambda p, i: p.stop() if i == 3 else None)
    assert pipeline.run() == 4
    assert source._cap is None and pipeline.stopping


def test_search_finds_the_faces_of_a_whole_frame_search_without_searching_whole_frames(tmp_path):
    """The default search (tracked faces, motion, whole frames in the background) keeps every face that
    searching the whole frame in the loop on every frame finds, and the loop itself searches only regions."""
    seen = {}
    for every in (1, 0):
        s = _settings(tmp_path, tmp_path)
        s.models.bundles = []
        s.detector.full_frame_every = every
        pipeline = Pipeline(s, source=CountingClip(loop=False))
        frames = []
        pipeline.on_frame.append(lambda p, i: frames.append(([t.box for t in p.tracker.visible()],
                                                             [r.kind for r in p.search.regions])))
        pipeline.run(max_frames=24)
        seen[every] = frames
    whole, default = seen[1], seen[0]
    assert all(kinds.count("whole") == 1 for _, kinds in whole)            # N = 1: the whole frame, every frame
    assert default[0][1].count("whole") == 1                                # the first frame of a scene
    assert all("whole" not in kinds for _, kinds in default[1:])            # then regions only
    assert all({"track", "followed"} & set(kinds) for boxes, kinds in default[1:] if boxes)   # searched, or followed
    assert sum(len(b) for b, _ in default) >= 0.95 * sum(len(b) for b, _ in whole)
    for (a, _), (b, _) in zip(whole, default):    # the main face's box stays where whole-frame search puts it
        if a and b:
            assert max(iou(a[0], box) for box in b) > 0.5


def test_the_background_search_finds_a_face_the_loop_is_not_tracking(tmp_path):
    """A face that appears without moving (a cut) is found by the whole-frame search on the background
    thread and becomes a track through a search around its box in the loop."""
    frames = tmp_path / "cut.avi"
    cap = cv2.VideoCapture(str(DEMO_CLIP))
    face = cap.read()[1]
    cap.release()
    writer = cv2.VideoWriter(str(frames), cv2.VideoWriter_fourcc(*"MJPG"), 15, (640, 480))
    for i in range(80):
        writer.write(np.full((480, 640, 3), 90, np.uint8) if i < 5 else face)
    writer.release()
    s = _settings(tmp_path, tmp_path)
    s.models.bundles = []
    s.detector.search_budget_ms = 0                      # no slices of the whole frame in the loop
    pipeline = Pipeline(s, source=VideoFile(frames, realtime=True))   # paced: the background search gets time
    kinds = []
    pipeline.on_frame.append(lambda p, i: kinds.append(({r.kind for r in p.search.regions}, len(p.tracker.visible()),
                                                        p.search.background_searches)))
    pipeline.run(max_frames=80)
    assert kinds[-1][2] > 0
    seeded = [i for i, (k, n, _) in enumerate(kinds) if "seed" in k]
    assert seeded and min(seeded) >= 5                                  # found after the cut, by a seed
    assert kinds[-1][1] >= 1 and "whole" not in kinds[-1][0]            # tracked in the loop from then on


def test_an_empty_scene_searches_less_than_the_whole_frame(tmp_path):
    blank = tmp_path / "blank"
    blank.mkdir()
    writer = cv2.VideoWriter(str(blank / "blank.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    for _ in range(9):
        writer.write(np.full((480, 640, 3), 90, np.uint8))
    writer.release()
    s = _settings(tmp_path, tmp_path)
    s.models.bundles = []
    s.detector.full_frame_every = 3                      # the loop searches the whole frame every 3rd frame
    s.detector.search_budget_ms = 0
    pipeline = Pipeline(s, source=VideoFile(str(blank / "blank.avi"), loop=False))
    kinds: list[list[str]] = []
    pipeline.on_frame.append(lambda p, i: kinds.append([r.kind for r in p.search.regions]))
    assert pipeline.run(max_frames=9) == 9
    assert [i for i, k in enumerate(kinds) if "whole" in k] == [0, 3, 6]
    assert all(k == [] for i, k in enumerate(kinds) if i % 3)           # nothing moved, nothing tracked


def test_spare_time_in_a_frame_sweeps_slices_of_the_whole_frame(tmp_path):
    """With time left in a frame's budget the loop searches the next cells of the whole frame: over a few
    frames they cover every pixel for every band of face sizes, and no frame after the first is searched whole."""
    blank = tmp_path / "blank.avi"
    writer = cv2.VideoWriter(str(blank), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    for _ in range(30):
        writer.write(np.full((480, 640, 3), 90, np.uint8))
    writer.release()
    s = _settings(tmp_path, tmp_path)
    s.models.bundles = []
    s.detector.search_budget_ms = 200                    # generous: a busy test machine still sweeps
    pipeline = Pipeline(s, source=VideoFile(blank, loop=False))
    frames: list[list] = []
    pipeline.on_frame.append(lambda p, i: frames.append(list(p.search.regions)))
    assert pipeline.run(max_frames=30) == 30
    assert [r.kind for r in frames[0]] == ["whole"]
    assert all(r.kind == "sweep" for regions in frames[1:] for r in regions)
    sweeps = [r for regions in frames[1:] for r in regions]
    for lo in sorted({r.lo for r in sweeps}):
        covered = np.zeros((480, 640), bool)
        for r in sweeps:
            if r.lo == lo:
                covered[r.y0:r.y1, r.x0:r.x1] = True
        assert covered.all(), f"band from {lo} px not swept everywhere"


def test_a_face_summary_is_worked_out_again_only_when_its_looks_change():
    """The loop keeps a track's summary between frames; a new look or vote, or other models, make a new one."""
    from edge.track import Track

    settings = Settings()
    settings.models.bundles = []
    pipeline = Pipeline(settings, load=False)
    track = Track(id=1, box=(10, 10, 60, 60), first_frame=0, first_seen=0.0)
    first = pipeline.summary(track)
    assert pipeline.summary(track) is first and not first.recognised
    track.add_identity("ada", 0.31)
    voted = pipeline.summary(track)
    assert voted is not first and voted.recognised and voted.distance == pytest.approx(0.31)
    assert pipeline.summary(track) is voted
    pipeline.generation += 1                               # a reload: other models, other heads
    assert pipeline.summary(track) is not voted
    track.forget(None)
    assert not pipeline.summary(track).recognised
