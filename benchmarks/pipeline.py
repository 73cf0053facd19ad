"""The full edge loop with the shipped bundles on two 640x480 clips, next to a naive loop in the same run.

    python benchmarks/pipeline.py [--frames 600] [--baseline-frames 60] [--threads 1] [--tiny] [--clip PATH ...]

Clips: ../shared's Hamilton clip resized to 640x480 (cached under .cache/bench/) when ../shared
exists, and the shipped demo clip. Bundles: every bundle folder in models/ (the configured
default bundles first: attributes, multitask, landmarks, embedding, whichever exist), so new
bundles (the landmarks model, a new recogniser) are measured as soon as they land; ``--tiny``
uses small random-weight MobileNetV2 bundles instead (tests/helpers/tiny_bundles.py, for CI speed).

For each clip:

1. reference: full-size Haar (frontal_default, no downscale, min_size 40) on every frame of the
   clip, once (cached): the faces the loop should find. With ../shared's weights, also the reference
   boxes OpenCV's res10 SSD face detector confirms (at 1x and 2x, confidence 0.2; cached): Haar's
   boxes without its false positives of a frame or two, which no search short of full-size Haar on
   every frame can repeat.
2. edge: the clip played unpaced and looped through edge.pipeline.Pipeline, headless, with the
   defaults (models on the model worker thread, ``models.num_threads`` = --threads): frames/s,
   p50/p99/max frame time, the same over the 30 frames after each new track ("while new faces
   arrive"), faces per frame against the reference (as a count, and as matched: a reference face
   counts when a face the loop shows overlaps it by IoU >= 0.3), model looks per second, CPU ms
   per frame, the process's peak RSS after the edge runs (TensorFlow not imported). Then once more,
   paced at the clip's own frame rate, as a camera delivers frames (and as files play by default),
   two plays: faces found then.
   The RSS floor applies to a fresh process per clip playing it alone (what one service holds):
   this process's own peak adds the other runs' leftovers.
3. naive baseline, same process, afterwards: full-size Haar on every frame and every model run
   on every face of every frame, on the loop's own thread (edge.look.look_at, the same int8 models).

Floors (issue 18, with one inference thread and the shipped bundles): >= 100 frames/s, >= 15x
the naive loop, p99 frame time <= 15 ms while new faces arrive, faces found >= 97 % of
full-size Haar's, RSS < 150 MB. These are figures, not a pass/fail test: timings depend on what
else runs on the machine, so the load average is printed with them.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CACHE = REPO / ".cache" / "bench"
HAMILTON = REPO.parent / "shared" / "data" / "face_recognition_examples" / "short_hamilton_clip.mp4"
SSD = REPO.parent / "shared" / "weights" / "opencv_res10_ssd_face"
SSD_SCALES = (1.0, 2.0)       # the res10 SSD at the frame's size and enlarged twice (it misses small faces at 1x)
SSD_CONFIDENCE = 0.2
PACED_PLAYS = 2               # the paced pass plays each clip this many times (one play is a few hundred frames)
TINY = ("attributes", "multitask")
NEW_FACE_WINDOW = 30          # frames after a new track that count as "while new faces arrive"
MATCH_IOU = 0.3

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

OPENCV_THREADS = cv2.getNumThreads()   # OpenCV's default here: the naive loop runs with it, whatever ran before


def peak_rss_mb() -> float:
    """Return this process's peak resident set size so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def proc_status_mb(field: str) -> float:
    """Return a memory field of /proc/self/status (VmRSS: now, VmHWM: peak of this program) in MB, or NaN."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def current_rss_mb() -> float:
    """Return this process's resident set size now, in MB (from /proc)."""
    return proc_status_mb("VmRSS")


def bench_clip(explicit: Optional[str] = None) -> Path:
    """Return one 640x480 clip: ``explicit``, the Hamilton clip resized (cached), or the demo clip."""
    clips = bench_clips([explicit] if explicit else None)
    return clips[0]


def bench_clips(explicit: Optional[list[str]] = None) -> list[Path]:
    """Return the clips to play: ``explicit``, else the Hamilton clip resized to 640x480 (when ../shared
    is there) and the shipped demo clip."""
    from edge.sources import DEMO_CLIP

    if explicit:
        return [Path(p) for p in explicit]
    clips = []
    if HAMILTON.is_file():
        clips.append(_resized_hamilton())
    clips.append(DEMO_CLIP)
    return clips


def _resized_hamilton() -> Path:
    out = CACHE / "hamilton_640x480.avi"
    if out.is_file():
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    cap = cv2.VideoCapture(str(HAMILTON))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    tmp = out.with_suffix(".tmp.avi")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), fps, (640, 480))
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        writer.write(cv2.resize(frame, (640, 480), interpolation=cv2.INTER_AREA))
    writer.release()
    cap.release()
    tmp.replace(out)
    return out


BUILD_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {repo!r})
    from tests.helpers.tiny_bundles import build_attributes_bundle, build_multitask_bundle
    build_attributes_bundle({root!r} + "/attributes", size=96, arch="mobilenet_v2")
    build_multitask_bundle({root!r} + "/multitask", size=96, arch="mobilenet_v2")
""")


def tiny_bundles() -> Path:
    """Return the folder with the tiny int8 MobileNetV2 bundles (built in a TensorFlow subprocess once)."""
    root = CACHE / "models"
    if not all((root / b / "manifest.yaml").is_file() for b in TINY):
        print("building the tiny int8 MobileNetV2 bench bundles (TensorFlow, once) ...", flush=True)
        subprocess.run([sys.executable, "-c", BUILD_SCRIPT.format(repo=str(REPO), root=str(root))],
                       check=True, cwd=REPO)
    return root


def shipped_bundles(models_dir: Path = REPO / "models") -> list[str]:
    """Return the bundle folders in ``models_dir``: the configured defaults first, then any others."""
    from edge.config import Settings

    present = sorted(p.name for p in models_dir.iterdir() if (p / "manifest.yaml").is_file())
    default = [b for b in Settings().models.bundles if b in present]
    return default + [b for b in present if b not in default]


def bench_bundles(tiny: bool = False) -> tuple[Path, list[str]]:
    """Return (models folder, bundle names) that the benchmarks run: the shipped ones, or the tiny ones."""
    if tiny:
        return tiny_bundles(), list(TINY)
    return REPO / "models", shipped_bundles()


def clip_frames(path: Path, count: Optional[int] = None) -> Iterator[np.ndarray]:
    """Yield the frames of a clip (looped until ``count`` frames when given), one at a time."""
    done = 0
    while True:
        cap = cv2.VideoCapture(str(path))
        ok, frame = cap.read()
        if not ok:
            cap.release()
            return
        while ok:
            yield frame
            done += 1
            if count is not None and done >= count:
                cap.release()
                return
            ok, frame = cap.read()
        cap.release()
        if count is None:
            return


def cached_boxes(kind: str, clip: Path, compute: Callable[[], list]) -> list[list[tuple[int, int, int, int]]]:
    """Return per-frame boxes of ``clip`` from CACHE/<kind>_<its sha256>.json, made by ``compute()`` when absent."""
    digest = hashlib.sha256(clip.read_bytes()).hexdigest()[:16]
    cached = CACHE / f"{kind}_{digest}.json"
    if cached.is_file():
        return [[tuple(b) for b in f] for f in json.loads(cached.read_text())]
    boxes = compute()
    CACHE.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(boxes))
    return boxes


def reference_faces(clip: Path) -> list[list[tuple[int, int, int, int]]]:
    """Return full-size Haar's faces on every frame of ``clip`` (cached by the clip's sha256)."""
    from edge.detect import HaarDetector

    def compute() -> list:
        detector = HaarDetector("frontal_default", downscale=1.0, min_size=40)
        return [detector.detect(frame) for frame in clip_frames(clip)]

    return cached_boxes("reference", clip, compute)


def ssd_faces(net: Any, bgr: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Return the res10 SSD's faces (x, y, w, h) in ``bgr`` at SSD_SCALES, confidence >= SSD_CONFIDENCE."""
    h, w = bgr.shape[:2]
    out = []
    for scale in SSD_SCALES:
        size = (int(w * scale), int(h * scale))
        net.setInput(cv2.dnn.blobFromImage(cv2.resize(bgr, size), 1.0, size, (104.0, 177.0, 123.0)))
        for row in net.forward()[0, 0]:
            if row[2] >= SSD_CONFIDENCE:
                x0, y0, x1, y1 = row[3] * w, row[4] * h, row[5] * w, row[6] * h
                out.append((int(x0), int(y0), int(x1 - x0), int(y1 - y0)))
    return out


def confirmed_reference(clip: Path) -> Optional[list[list[tuple[int, int, int, int]]]]:
    """Return, per frame, full-size Haar's faces that OpenCV's res10 SSD face detector also finds (IoU >= 0.3):
    the reference without Haar's one-frame false positives (cached; None without ../shared's weights)."""
    from edge.crop import iou

    prototxt, weights = SSD / "deploy.prototxt", SSD / "res10_300x300_ssd_iter_140000.caffemodel"
    if not weights.is_file():
        return None

    def compute() -> list:
        net = cv2.dnn.readNetFromCaffe(str(prototxt), str(weights))
        out = []
        for frame, boxes in zip(clip_frames(clip), reference_faces(clip)):
            ssd = ssd_faces(net, frame)
            out.append([b for b in boxes if any(iou(b, t) >= MATCH_IOU for t in ssd)])
        return out

    return cached_boxes("confirmed", clip, compute)


def matched(reference: list, found: list) -> int:
    """Return how many reference boxes a found box overlaps by IoU >= MATCH_IOU (one to one, greedy)."""
    from edge.crop import iou

    pairs = sorted(((iou(a, b), i, j) for i, a in enumerate(reference) for j, b in enumerate(found)), reverse=True)
    used_a, used_b, n = set(), set(), 0
    for score, i, j in pairs:
        if score < MATCH_IOU:
            break
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            n += 1
    return n


@dataclass
class EdgeRun:
    """Figures of one edge-loop run on one clip."""

    clip: str
    frames: int
    seconds: float
    cpu_seconds: float
    frame_ms: np.ndarray
    work_ms: np.ndarray          # frame time after the capture (what a paced frame costs)
    new_face_ms: np.ndarray
    faces: int
    reference: int
    matched: int
    looks: int
    predictions: int
    stale: int
    look_ms: float
    look_wait_ms: float
    stage_ms: dict = field(default_factory=dict)
    background_searches: int = 0
    confirmed: int = 0           # reference faces the res10 SSD confirms (0: no SSD weights)
    confirmed_matched: int = 0

    def confirmed_text(self) -> str:
        """Return the faces found among the SSD-confirmed reference faces, as text ("" without them)."""
        if not self.confirmed:
            return ""
        return (f"; of the {self.confirmed} the res10 SSD confirms: matched "
                f"{100 * self.confirmed_matched / self.confirmed:.1f} %")

    @property
    def fps(self) -> float:
        """Return frames per second."""
        return self.frames / self.seconds


def apply_overrides(settings: Any, overrides: list[str]) -> None:
    """Set ``section.key=value`` overrides (values read as YAML) on ``settings``."""
    import yaml

    for item in overrides:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        setattr(getattr(settings, section), name, yaml.safe_load(value))


def edge_run(clip: Path, models: Path, bundles: list[str], frames: int, threads: int, warmup: int = 30,
             paced: bool = False, overrides: Sequence[str] = ()) -> EdgeRun:
    """Play ``clip`` looped through the loop with the defaults, unpaced (as fast as it goes) or ``paced``
    at the clip's own frame rate (as a camera delivers frames); return its figures."""
    from edge.config import Settings
    from edge.pipeline import Pipeline

    reference = reference_faces(clip)
    confirmed = confirmed_reference(clip)
    length = len(reference)
    settings = Settings()
    settings.source.uri = str(clip)
    settings.source.realtime = paced
    settings.source.loop = True
    settings.models.dir = str(models)
    settings.models.bundles = list(bundles)
    settings.models.num_threads = threads
    settings.display.window = False
    apply_overrides(settings, list(overrides))
    pipeline = Pipeline(settings)
    if pipeline.model_errors:
        raise SystemExit(f"bundles failed to load: {pipeline.model_errors}")
    pipeline.open()
    seen: list[tuple[int, list]] = []
    try:
        for _ in range(warmup):
            pipeline.step()
        pipeline.drain()
        pipeline.times.reset()
        start = pipeline.frame_index
        new_at: list[int] = []
        known = {t.id for t in pipeline.tracker.tracks}
        c0, t0 = time.process_time(), time.perf_counter()
        while pipeline.frame_index - start < frames:
            pipeline.step()
            boxes = [t.box for t in pipeline.tracker.visible()]
            seen.append(((pipeline.frame_index - 1) % length, boxes))
            fresh = {t.id for t in pipeline.tracker.tracks} - known
            if fresh:
                new_at.append(pipeline.frame_index - 1 - start)
                known |= fresh
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        times = pipeline.times
        frame_ms = np.asarray(times.frame_s, np.float64)[-frames:] * 1000.0
        work_ms = np.asarray(times.work_s, np.float64)[-frames:] * 1000.0
        window = sorted({i for n in new_at for i in range(n, min(len(frame_ms), n + NEW_FACE_WINDOW))})
        looks, predictions, stale = times.looks, times.model_runs, times.stale
        look_ms = 1000.0 * times.look_s / max(1, looks)
        wait_ms = 1000.0 * times.look_wait_s / max(1, looks)
        stage_ms = times.mean_ms()
        searches = pipeline.search.background_searches
    finally:
        pipeline.close()
    return EdgeRun(clip=clip.name, frames=frames, seconds=seconds, cpu_seconds=cpu, frame_ms=frame_ms, work_ms=work_ms,
                   new_face_ms=frame_ms[window] if window else np.zeros(0),
                   faces=sum(len(b) for _, b in seen), reference=sum(len(reference[i]) for i, _ in seen),
                   matched=sum(matched(reference[i], b) for i, b in seen), looks=looks, predictions=predictions,
                   stale=stale, look_ms=look_ms, look_wait_ms=wait_ms, stage_ms=stage_ms,
                   background_searches=searches,
                   confirmed=sum(len(confirmed[i]) for i, _ in seen) if confirmed else 0,
                   confirmed_matched=sum(matched(confirmed[i], b) for i, b in seen) if confirmed else 0)


def baseline_run(clip: Path, models_dir: Path, bundles: list[str], frames: int, threads: int) -> dict[str, float]:
    """Return the naive loop's figures: full-size Haar on every frame, every model on every face, on one
    Python thread (OpenCV with its default threads, as a naive program runs it)."""
    from edge.config import Settings
    from edge.detect import HaarDetector
    from edge.look import landmarker_of, look_at
    from edge.pipeline import load_models

    settings = Settings()
    settings.models.dir, settings.models.bundles, settings.models.num_threads = str(models_dir), list(bundles), threads
    models, errors = load_models(settings)
    if errors:
        raise SystemExit(f"bundles failed to load: {errors}")
    landmarker = landmarker_of(models)
    detector = HaarDetector(downscale=1.0)
    faces = done = 0
    cv2.setNumThreads(OPENCV_THREADS)
    t0 = time.perf_counter()
    for frame in clip_frames(clip, frames):
        for box in detector.detect(frame):
            look_at(frame, box, models, landmarker)
            faces += 1
        done += 1
    seconds = time.perf_counter() - t0
    return {"fps": done / seconds, "frames": done, "faces_per_frame": faces / done}


FIRST_FRAME_SCRIPT = textwrap.dedent("""
    import time
    t0 = time.perf_counter()
    from edge.config import Settings
    from edge.pipeline import Pipeline
    t1 = time.perf_counter()
    s = Settings()
    s.source.uri, s.source.realtime = {clip!r}, False
    s.models.dir, s.models.bundles = {models!r}, {bundles!r}
    p = Pipeline(s)
    p.open()
    while p.frame_index < 1:
        p.step()
    t2 = time.perf_counter()
    assert len(p.models) == {n}, p.model_errors
    p.close()
    print(f"{{t1 - t0:.3f}} {{t2 - t0:.3f}}")
""")


def one_process_rss(clip: Path, args: argparse.Namespace) -> float:
    """Return the peak RSS (MB) of a fresh process that loads the bundles and plays ``clip`` through the loop
    for --frames frames: what one face-edge service holds, without the other runs of this benchmark."""
    command = [sys.executable, str(Path(__file__).resolve()), "--one-process", str(clip), "--frames",
               str(args.frames), "--threads", str(args.threads), *(["--tiny"] if args.tiny else []),
               *(f"--set={item}" for item in args.set)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(json.loads(done.stdout.strip().splitlines()[-1])["peak_rss_mb"])


def import_and_first_frame(clip: Path, models: Path, bundles: list[str]) -> tuple[float, float]:
    """Return (import s, import + load + first frame s) in a fresh interpreter."""
    script = FIRST_FRAME_SCRIPT.format(clip=str(clip), models=str(models), bundles=list(bundles), n=len(bundles))
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True)
    imp, first = (float(v) for v in done.stdout.split())
    return imp, first


def describe_bundles(models: Path, bundles: list[str]) -> str:
    """Return 'name version (MACs)' for each bundle."""
    from edge.bundle import read_manifest

    out = []
    for name in bundles:
        manifest = read_manifest(models / name)
        out.append(f"{name} {manifest.version}" + (f" ({len(manifest.views)} views)" if len(manifest.views) > 1 else ""))
    return ", ".join(out)


def percentiles(ms: np.ndarray) -> str:
    """Return 'p50 / p99 / max' of frame times in ms."""
    if not len(ms):
        return "n/a"
    p50, p99 = np.percentile(ms, [50, 99])
    return f"{p50:.1f} / {p99:.1f} / {ms.max():.1f} ms"


def main() -> int:
    """Measure the edge loop on each clip and the naive loop; print the figures and the floors."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=600, help="edge frames per clip (600)")
    parser.add_argument("--baseline-frames", type=int, default=60, help="naive-loop frames per clip (60)")
    parser.add_argument("--threads", type=int, default=1, help="inference threads per model (1)")
    parser.add_argument("--tiny", action="store_true", help="tiny random-weight bundles instead of the shipped ones")
    parser.add_argument("--clip", action="append", help="a 640x480 clip to play instead (repeatable)")
    parser.add_argument("--one-process", metavar="CLIP", help=argparse.SUPPRESS)  # the child of one_process_rss
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="a setting for the edge loop instead of its default, e.g. detector.search_budget_ms=8")
    args = parser.parse_args()

    models, bundles = bench_bundles(args.tiny)
    if args.one_process:
        edge_run(Path(args.one_process), models, bundles, args.frames, args.threads, overrides=args.set)
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss across execve, so a child would report its parent's peak.
        print(json.dumps({"peak_rss_mb": proc_status_mb("VmHWM")}))
        return 0
    clips = bench_clips(args.clip)
    load_before = os.getloadavg()
    for clip in clips:
        reference_faces(clip)                      # computed (or read) before anything is timed
        confirmed_reference(clip)
    runs = [edge_run(clip, models, bundles, args.frames, args.threads, overrides=args.set) for clip in clips]
    paced = [edge_run(clip, models, bundles, PACED_PLAYS * len(reference_faces(clip)), args.threads, paced=True,
                      overrides=args.set) for clip in clips]
    edge_rss = peak_rss_mb()
    alone = {clip.name: one_process_rss(clip, args) for clip in clips}
    imp, first = import_and_first_frame(clips[0], models, bundles)
    assert "tensorflow" not in sys.modules, "the edge measurement must not import TensorFlow"
    bases = [baseline_run(clip, models, bundles, args.baseline_frames, args.threads) for clip in clips]
    load_after = os.getloadavg()

    print(f"\nbundles: {describe_bundles(models, bundles)} ({'tiny, random weights' if args.tiny else 'shipped'}); "
          f"{args.threads} inference thread(s) per model")
    print(f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after, on {os.cpu_count()} CPUs")
    floors = []
    for run, base, live in zip(runs, bases, paced):
        all_ms = run.frame_ms
        count = run.faces / max(1, run.reference)
        recall = run.matched / max(1, run.reference)
        ratio = run.fps / base["fps"]
        st = run.stage_ms
        print(f"\n== {run.clip}: edge loop, {', '.join(args.set) or 'defaults'} ==")
        print(f"frames/s          {run.fps:.1f} ({run.frames} frames unpaced; CPU {1000 * run.cpu_seconds / run.frames:.1f} "
              f"ms/frame, all threads)")
        print(f"frame time        p50 / p99 / max {percentiles(all_ms)}; while new faces arrive "
              f"({len(run.new_face_ms)} frames) {percentiles(run.new_face_ms)}")
        print("stages (ms/frame) " + ", ".join(f"{k} {st[k]:.2f}" for k in ("capture", "detect", "track", "models",
                                                                             "overlay", "sinks")))
        print(f"faces per frame   {run.faces / run.frames:.3f} vs full-size Haar {run.reference / run.frames:.3f}: "
              f"count {100 * count:.1f} %, matched {100 * recall:.1f} % (IoU >= {MATCH_IOU}){run.confirmed_text()}")
        print(f"model results     {run.looks / run.seconds:.1f} looks/s ({run.predictions / run.seconds:.1f} model "
              f"predictions/s), {run.look_ms:.1f} ms per look on the worker, {run.look_wait_ms:.1f} ms queued; "
              f"{run.stale} stale looks dropped; {run.background_searches} background whole-frame searches")
        print(f"paced (clip fps)  {live.fps:.1f} frames/s, frame time after capture {percentiles(live.work_ms)}; faces per frame "
              f"{live.faces / live.frames:.3f} vs {live.reference / live.frames:.3f}: count "
              f"{100 * live.faces / max(1, live.reference):.1f} %, matched {100 * live.matched / max(1, live.reference):.1f} %"
              f"{live.confirmed_text()}; {live.background_searches} background searches ({PACED_PLAYS} plays)")
        print(f"naive loop        {base['fps']:.2f} frames/s ({base['faces_per_frame']:.2f} faces/frame, "
              f"{base['frames']} frames): edge is {ratio:.1f}x")
        p99_new = float(np.percentile(run.new_face_ms, 99)) if len(run.new_face_ms) else float(np.percentile(all_ms, 99))
        floors += [(f"{run.clip}: frames/s", f"{run.fps:.1f}", run.fps >= 100),
                   (f"{run.clip}: edge / naive", f"{ratio:.1f}x", ratio >= 15),
                   (f"{run.clip}: p99 while new faces arrive", f"{p99_new:.1f} ms", p99_new <= 15),
                   (f"{run.clip}: faces found (count)", f"{100 * count:.1f} %", count >= 0.97),
                   (f"{run.clip}: faces found (matched)", f"{100 * recall:.1f} %", recall >= 0.97)]
    print(f"\npeak RSS of one loop process (what the service holds), per clip: "
          + ", ".join(f"{name} {mb:.0f} MB" for name, mb in alone.items()))
    print(f"peak RSS of this process after its {2 * len(clips)} loop runs (edge, no TensorFlow): {edge_rss:.0f} MB")
    print(f"import edge: {imp * 1000:.0f} ms; import + load {len(bundles)} bundles + first frame: {first * 1000:.0f} ms")
    worst = max(alone.values())
    floors.append(("peak RSS, one loop process", f"{worst:.0f} MB", worst < 150))
    print("\n== floors (issue 18) ==")
    for name, value, ok in floors:
        print(f"{'met ' if ok else 'MISS'}  {name:<42} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
