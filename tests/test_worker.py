"""The model worker: the frame loop never waits for a model. Real OpenCV, real LiteRT on tiny bundles,
the shipped demo clip; the worker is held busy with a call that waits on an event (no mock)."""
from __future__ import annotations

import shutil
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.config import Settings
from edge.pipeline import Pipeline
from edge.sources import DEMO_CLIP, VideoFile

from .helpers.tiny_bundles import build_attributes_bundle, build_multitask_bundle


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("worker-models")
    build_attributes_bundle(root / "attributes")
    build_multitask_bundle(root / "multitask")
    return root


def _pipeline(models_dir: Path, tmp_path: Path, source=None, **tracker) -> Pipeline:
    s = Settings()
    s.source.realtime = False
    s.models.dir, s.models.bundles = str(models_dir), ["attributes", "multitask"]
    s.recognition.gallery = str(tmp_path / "gallery.npz")
    for key, value in tracker.items():
        setattr(s.tracker, key, value)
    pipeline = Pipeline(s, source=source or VideoFile(DEMO_CLIP, realtime=False))
    pipeline.open()
    pipeline.drain()                              # the models' warm-up call is done
    return pipeline


def _hold(pipeline: Pipeline) -> tuple[threading.Event, object]:
    """Keep the model worker busy until the returned event is set (a call that waits on it)."""
    gate = threading.Event()
    started = threading.Event()
    future = pipeline.call_on_model_thread(lambda: (started.set(), gate.wait(30)))
    assert started.wait(10)
    return gate, future


def test_frames_go_on_while_the_models_are_busy_and_the_newest_crop_wins(models_dir, tmp_path):
    pipeline = _pipeline(models_dir, tmp_path, refresh_every=1)     # every frame offers a new crop
    try:
        gate, held = _hold(pipeline)
        for _ in range(12):
            assert pipeline.step()                # the loop never waits for the busy worker
        tracks = pipeline.tracker.visible()
        assert tracks and all(t.looks == 0 and not t.heads for t in tracks)   # no labels yet
        assert pipeline.worker.replaced >= 11 * len(tracks) - 1            # each frame replaced the waiting crop
        assert pipeline.worker.pending() == 1 + len(tracks)                 # the held call + one crop per face
        gate.set()
        held.result(10)
        assert pipeline.worker.wait_idle(30)
        results = pipeline.worker.take_results()
        assert sorted(r.track for r in results) == sorted(t.id for t in tracks)   # one look per face
        assert {r.frame_index for r in results} == {pipeline.frame_index - 1}     # of the newest frame
        for result in results:
            pipeline._apply(next(t for t in tracks if t.id == result.track), result)
        summary = pipeline.summary(tracks[0])
        assert "age" in summary.values and "gender" in summary.values           # labels once it is back
    finally:
        pipeline.close()


def test_looks_of_ended_tracks_and_of_replaced_models_are_dropped(models_dir, tmp_path):
    clip = tmp_path / "leaves.avi"
    cap = cv2.VideoCapture(str(DEMO_CLIP))
    face = cap.read()[1]
    cap.release()
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 15, (640, 480))
    for i in range(40):
        writer.write(face if i < 4 else np.full((480, 640, 3), 90, np.uint8))   # the face leaves at frame 4
    writer.release()
    pipeline = _pipeline(models_dir, tmp_path, VideoFile(clip, realtime=False), max_missed=3)
    try:
        gate, held = _hold(pipeline)
        for _ in range(3):
            pipeline.step()
        ended_id = pipeline.tracker.visible()[0].id
        for _ in range(25):                       # the track ends while its look still waits
            pipeline.step()
        assert all(t.id != ended_id for t in pipeline.tracker.tracks)
        gate.set()
        held.result(10)
        pipeline.drain()
        assert pipeline.times.stale == 0          # its waiting job was cancelled when it ended ...
        assert pipeline.worker.looks == 0         # ... so the worker never looked at a gone face
    finally:
        pipeline.close()

    pipeline = _pipeline(models_dir, tmp_path)
    try:
        gate, held = _hold(pipeline)
        for _ in range(3):
            pipeline.step()
        generation = pipeline.generation
        assert pipeline.reload_models(["attributes"]) == []     # between frames: swapped at once
        assert pipeline.generation == generation + 1
        gate.set()
        held.result(10)
        assert pipeline.worker.wait_idle(30)
        pipeline.step()                           # the look made with the old models comes back stale
        assert pipeline.times.stale >= 1
        assert all(t.last_run == pipeline.frame_index - 1 for t in pipeline.tracker.visible())   # looked at again
        pipeline.drain()
        assert pipeline.times.looks >= 1
    finally:
        pipeline.close()


def test_calls_run_on_the_model_thread_not_the_loops(models_dir, tmp_path):
    pipeline = _pipeline(models_dir, tmp_path)
    try:
        names = pipeline.call_on_model_thread(lambda: threading.current_thread().name).result(10)
        assert names == pipeline.worker._thread.name != threading.current_thread().name
    finally:
        pipeline.close()
