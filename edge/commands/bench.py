"""``face-edge bench``: what this board does: runtime, threads, detect ms, each model's ms per face,
end-to-end frames/s (demo clip by default, played as fast as possible, no window)."""
from __future__ import annotations

import argparse
import copy
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from . import add_config_options, load_config, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``bench`` sub-command."""
    p = subparsers.add_parser("bench", help="measure detect ms, each model's ms per face and end-to-end frames/s")
    add_config_options(p)
    p.add_argument("--source", metavar="URI", default=None,
                   help="what to play (default: demo; a camera runs at its own frame rate)")
    p.add_argument("--frames", type=positive_int, default=300, metavar="N", help="frames for the end-to-end run (300)")
    p.add_argument("--threads", type=positive_int, metavar="N", help="inference threads (default: models.num_threads)")
    p.set_defaults(func=run)


@dataclass
class BenchResult:
    """Figures of one bench run."""

    source: str
    size: tuple[int, int]
    runtime: str
    threads: int
    frames: int
    seconds: float
    stage_ms: dict[str, float]
    model_ms: dict[str, float] = field(default_factory=dict)
    model_errors: list[str] = field(default_factory=list)
    faces_per_frame: float = 0.0
    model_runs: int = 0
    looks: int = 0                             # looks at faces the model worker finished during the timed frames
    cpu_seconds: float = 0.0                   # CPU time of this process during the timed frames (all threads)

    @property
    def fps(self) -> float:
        """Return end-to-end frames per second."""
        return self.frames / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_frame(self) -> float:
        """Return the CPU milliseconds this process spent per frame (all its threads together)."""
        return 1000.0 * self.cpu_seconds / self.frames if self.frames else 0.0


def model_ms_per_face(models: dict[str, Any], crops: list[np.ndarray], repeats: int = 30) -> dict[str, float]:
    """Return each model's mean milliseconds per face (preprocess + invoke + decode) over ``crops``."""
    out = {}
    for name, model in models.items():
        for crop in crops[:3]:
            model.predict(crop)                    # warm-up: first invokes allocate and pack weights
        t = time.perf_counter()
        for i in range(repeats):
            model.predict(crops[i % len(crops)])
        out[name] = 1000.0 * (time.perf_counter() - t) / repeats
    return out


def measure(settings: Any, frames: int = 300, warmup: int = 10, uri: Optional[str] = None) -> BenchResult:
    """Play ``uri`` (default ``settings.source.uri``) through a headless Pipeline and return the figures.

    Files play unpaced and looped. Model ms/face are measured on crops of faces the detector
    finds in the first frames (the frame centre when it finds none).
    """
    from ..align import AlignmentError, FaceInputs
    from ..pipeline import Pipeline
    from ..sources import make_source

    settings = copy.deepcopy(settings)
    settings.source.realtime = False
    settings.source.loop = True
    source = make_source(settings.source, uri)
    pipeline = Pipeline(settings, source=source)
    pipeline.open()
    try:
        sample: list[tuple[np.ndarray, tuple[int, int, int, int]]] = []
        for _ in range(warmup):
            pipeline.step()
        pipeline.times.reset()
        start_index = pipeline.frame_index
        faces = 0
        c0 = time.process_time()
        t0 = time.perf_counter()
        while pipeline.frame_index - start_index < frames:
            if not pipeline.step():
                break
            visible = pipeline.tracker.visible()
            faces += len(visible)
            if visible and len(sample) < 8 and pipeline._last_frame is not None:
                sample.append((pipeline._last_frame.copy(), visible[0].box))
        seconds = time.perf_counter() - t0
        cpu_seconds = time.process_time() - c0
        done = pipeline.frame_index - start_index
        stage_ms = pipeline.times.mean_ms()
        looks = pipeline.times.looks
        pipeline.drain()                           # the models are idle before they are timed here
        runs = pipeline.times.model_runs
        models = pipeline.models
        crops_by_model = {}
        for name, model in models.items():
            spec = model.manifest.crop
            crops = []
            for f, box in sample:
                try:
                    crops.append(FaceInputs(f, box, pipeline.landmarker).crop(spec))
                except AlignmentError:
                    continue
            crops_by_model[name] = crops or [np.full((spec.size, spec.size, 3), 128, np.uint8)]
        model_ms = {name: model_ms_per_face({name: models[name]}, crops_by_model[name])[name] for name in models}
        runtime = next(iter(models.values())).runtime if models else None
        w, h = (sample[0][0].shape[1], sample[0][0].shape[0]) if sample else (settings.source.width,
                                                                             settings.source.height)
        return BenchResult(source=source.name, size=(w, h),
                           runtime=f"{runtime.name} {runtime.version()}" if runtime else "none (detection only)",
                           threads=settings.models.num_threads, frames=done, seconds=seconds, stage_ms=stage_ms,
                           model_ms=model_ms, model_errors=list(pipeline.model_errors),
                           faces_per_frame=faces / max(1, done), model_runs=runs, looks=looks,
                           cpu_seconds=cpu_seconds)
    finally:
        pipeline.close()


def format_table(result: BenchResult, settings: Any) -> str:
    """Return the bench figures as a small text table."""
    d = settings.detector
    rows = [("source", f"{result.source} ({result.size[0]}x{result.size[1]}), {result.frames} frames, "
                       f"{result.faces_per_frame:.2f} faces/frame"),
            ("runtime", f"{result.runtime}, {result.threads} thread(s)"),
            ("detect", f"{result.stage_ms['detect']:.2f} ms/frame ({d.cascade}, downscale {d.downscale}, "
                       f"min_size {d.min_size})")]
    for name, ms in result.model_ms.items():
        rows.append((f"model {name}", f"{ms:.2f} ms/face"))
    for err in result.model_errors:
        rows.append(("skipped", err))
    stages = ", ".join(f"{s} {result.stage_ms[s]:.2f}" for s in ("capture", "detect", "track", "models", "overlay"))
    rows.append(("end-to-end", f"{result.fps:.1f} frames/s ({stages} ms/frame; the models run on their own "
                               f"thread: {result.looks} looks at faces, {result.looks / result.seconds if result.seconds else 0:.1f}"
                               f"/s, refresh every {settings.tracker.refresh_every} frames)"))
    rows.append(("cpu", f"{result.cpu_ms_per_frame:.2f} ms of CPU per frame (all threads; wall "
                        f"{1000.0 / result.fps if result.fps else 0.0:.2f} ms)"))
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def run(args: argparse.Namespace) -> int:
    """Measure and print the table; return 0."""
    settings = load_config(args)
    if args.threads is not None:
        settings.models.num_threads = args.threads
    uri = args.source if args.source is not None else "demo"
    result = measure(settings, args.frames, uri=uri)
    print(format_table(result, settings))
    return 0
