"""A small real setup for the integration tests (MQTT, web page, hub): tiny bundles, the demo clip, a gallery.

Everything is real: the four tiny TFLite bundles of tests/helpers/tiny_bundles.py (the embedding one
aligned by the landmarks one, as the coming dlib-ResNet port is), OpenCV on the shipped public-domain
demo clip (Eileen Collins' NASA portrait; a mirrored copy slides in from 3 s to 7.5 s), and a gallery
enrolled through edge.enroll from frames of that clip.
"""
from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any, Iterator, Sequence

import cv2
import numpy as np

from edge.config import Settings
from edge.crop import CropSpec
from edge.sources import DEMO_CLIP

from .tiny_bundles import (build_attributes_bundle, build_embedding_bundle, build_landmarks_bundle,
                           build_multitask_bundle)

BUNDLES = ["attributes", "multitask", "landmarks", "embedding"]


def build_models(root: Path) -> Path:
    """Build the four tiny bundles under ``root`` (embedding: aligned 32 px chips, threshold 0.35); return root."""
    build_attributes_bundle(root / "attributes")
    build_multitask_bundle(root / "multitask")
    build_landmarks_bundle(root / "landmarks")
    build_embedding_bundle(root / "embedding", dim=16, threshold=0.35,
                           crop=CropSpec(size=32, margin=0.25, kind="aligned"))
    return root


def make_settings(models: Path, folder: Path, **sections: Any) -> Settings:
    """Return Settings that play the demo clip at four times its frame rate, headless, with ``models`` and a
    gallery in ``folder``. Paced, like a camera's frames, so the background search finds each face during its
    visit however fast the loop runs (unpaced, a loop can play a face's whole visit before a search lands)."""
    s = Settings()
    s.source.realtime = True
    s.source.speed = 4.0
    s.source.loop = True
    s.display.window = False
    s.models.dir = str(models)
    s.models.bundles = list(BUNDLES)
    s.recognition.gallery = str(folder / "gallery" / "gallery.npz")
    s.tracker.vote_min = 2
    s.tracker.refresh_every = 5
    for section, values in sections.items():
        for key, value in values.items():
            setattr(getattr(s, section), key, value)
    return s


def demo_frames(indexes: Sequence[int]) -> list[np.ndarray]:
    """Return the demo clip's frames at ``indexes`` (BGR)."""
    cap = cv2.VideoCapture(str(DEMO_CLIP))
    frames, wanted, i = [], set(indexes), 0
    try:
        while len(frames) < len(wanted):
            ok, frame = cap.read()
            if not ok:
                break
            if i in wanted:
                frames.append(frame)
            i += 1
    finally:
        cap.release()
    assert len(frames) == len(wanted), "the demo clip is shorter than expected"
    return frames


def jpeg(frame: np.ndarray, quality: int = 92) -> bytes:
    """Return ``frame`` encoded as JPEG bytes."""
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def enroll_astronaut(settings: Settings, name: str = "Eileen", frames: Sequence[int] = (0, 10, 20, 30)) -> Any:
    """Enroll the demo clip's astronaut (one face in frames before 3 s) as ``name``; return the saved gallery."""
    from edge.enroll import EnrollResult, Sample, embedding_bundle, make_enroller
    from edge.people import save_enrollment

    bundle = embedding_bundle(settings)
    enroller = make_enroller(settings, bundle)
    result = EnrollResult()
    for i, frame in zip(frames, demo_frames(frames)):
        item = enroller.sample(frame, f"frame {i}")
        (result.samples if isinstance(item, Sample) else result.skipped).append(item)
    assert result.samples, [s.message() for s in result.skipped]
    return save_enrollment(settings, bundle.manifest, name, result).gallery


@contextlib.contextmanager
def served_loop(settings: Settings) -> Iterator[tuple[Any, Any]]:
    """Run the loop of ``settings`` with its outputs (MQTT, web page) on a thread; yield (pipeline, outputs),
    then stop the loop and close the outputs."""
    from edge.outputs import attach_outputs
    from edge.pipeline import Pipeline

    pipeline = Pipeline(settings)
    outputs = attach_outputs(pipeline, settings)
    thread = threading.Thread(target=pipeline.run, daemon=True)
    thread.start()
    try:
        yield pipeline, outputs
    finally:
        pipeline.stop()
        thread.join(10)
        outputs.close()
