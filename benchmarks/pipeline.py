"""The full edge loop on a 640x480 clip with faces, next to a naive baseline measured in the same run.

    python benchmarks/pipeline.py [--frames 600] [--baseline-frames 120] [--threads 1] [--clip PATH]

Clip: ../shared's Hamilton clip resized to 640x480 (cached under .cache/bench/) when ../shared
exists, else the shipped demo clip. Models: a MobileNetV2 (alpha 0.35, 96 px, random weights)
attributes model and a multitask model (age/gender/emotion) of the same backbone, converted to
int8 bundles with tests/helpers/tiny_bundles.py (built once in a subprocess, cached).

1. edge: the clip played unpaced through edge.pipeline.Pipeline without a window (capture, Haar on
   the half-size frame, IoU tracker, int8 models only when a track is new or due, overlay);
   frames/s, per-stage ms, and the process's peak RSS at that point (TensorFlow not imported).
2. edge import + first frame: a fresh interpreter imports edge, loads both bundles, opens the clip
   and processes one frame.
3. naive baseline (same process, after 1 and 2): Haar on every full-size frame (no downscale), then
   each float Keras model called on every face of every frame (``model(x, training=False)``).

Floors (issue 3): edge >= 5x the baseline, >= 60 frames/s with 1 inference thread, import + first
frame < 1 s, RSS < 200 MB. Timings depend on what else runs on the machine: the load average is
printed with the figures.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CACHE = REPO / ".cache" / "bench"
HAMILTON = REPO.parent / "shared" / "data" / "face_recognition_examples" / "short_hamilton_clip.mp4"
BUNDLES = ("attributes", "multitask")

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import cv2  # noqa: E402
import numpy as np  # noqa: E402


def peak_rss_mb() -> float:
    """Return this process's peak resident set size so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    """Return this process's resident set size now, in MB (from /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def bench_clip(explicit: str | None) -> Path:
    """Return the 640x480 clip to play: ``explicit``, the Hamilton clip resized (cached), or the demo clip."""
    if explicit:
        return Path(explicit)
    if not HAMILTON.is_file():
        from edge.sources import DEMO_CLIP
        return DEMO_CLIP
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


def bench_bundles() -> Path:
    """Return the folder with the int8 MobileNetV2 bench bundles (built in a TensorFlow subprocess once)."""
    root = CACHE / "models"
    if not all((root / b / "manifest.yaml").is_file() for b in BUNDLES):
        print("building the int8 MobileNetV2 bench bundles (TensorFlow, once) ...", flush=True)
        subprocess.run([sys.executable, "-c", BUILD_SCRIPT.format(repo=str(REPO), root=str(root))],
                       check=True, cwd=REPO)
    return root


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


def import_and_first_frame(clip: Path, models: Path) -> tuple[float, float, float]:
    """Return (import s, import + load + first frame s, whole subprocess wall s) in a fresh interpreter."""
    script = FIRST_FRAME_SCRIPT.format(clip=str(clip), models=str(models), bundles=list(BUNDLES), n=len(BUNDLES))
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t
    imp, first = (float(v) for v in done.stdout.split())
    return imp, first, wall


def edge_run(clip: Path, models: Path, frames: int, threads: int, full_frame_every: int = 1):
    """Return (BenchResult, settings, peak RSS MB) of the edge loop on ``clip``."""
    from edge.commands.bench import measure
    from edge.config import Settings

    settings = Settings()
    settings.source.uri = str(clip)
    settings.models.dir = str(models)
    settings.models.bundles = list(BUNDLES)
    settings.models.num_threads = threads
    settings.detector.full_frame_every = full_frame_every
    result = measure(settings, frames=frames, warmup=20)
    if result.model_errors:
        raise SystemExit(f"bench bundles failed to load: {result.model_errors}")
    return result, settings, peak_rss_mb()


def baseline_run(clip: Path, models: Path, frames: int) -> dict[str, float]:
    """Return the naive loop's figures: full-size Haar + every float Keras model on every face of every frame."""
    import keras  # noqa: F401  (imported here only: the edge measurement is done)

    from edge.bundle import read_manifest
    from edge.crop import crop_face
    from edge.detect import HaarDetector
    from tests.helpers.tiny_bundles import BuildSpec, Head, keras_model

    nets = []
    for name in BUNDLES:
        manifest = read_manifest(models / name)
        heads = tuple(Head(o.name, o.kind, max(1, len(o.labels)), o.labels) for o in manifest.outputs)
        spec = BuildSpec(heads, size=manifest.input.height, arch="mobilenet_v2")
        nets.append((keras_model(spec), manifest.crop))       # same seed: the float twin of the int8 bundle
    detector = HaarDetector(downscale=1.0)
    cap = cv2.VideoCapture(str(clip))
    times = {"capture": 0.0, "detect": 0.0, "models": 0.0}
    faces = done = 0
    warm = np.zeros((1, 96, 96, 3), np.float32)
    for net, _ in nets:
        net(warm, training=False)
    t_start = time.perf_counter()
    while done < frames:
        t0 = time.perf_counter()
        ok, frame = cap.read()
        if not ok:
            cap.release()
            cap = cv2.VideoCapture(str(clip))
            continue
        t1 = time.perf_counter()
        boxes = detector.detect(frame)
        t2 = time.perf_counter()
        for box in boxes:
            for net, crop_spec in nets:
                crop = crop_face(frame, box, crop_spec)[:, :, ::-1].astype(np.float32) / 255.0
                outputs = net(crop[None], training=False)
                {k: np.asarray(v) for k, v in outputs.items()}
            faces += 1
        t3 = time.perf_counter()
        times["capture"] += t1 - t0
        times["detect"] += t2 - t1
        times["models"] += t3 - t2
        done += 1
    seconds = time.perf_counter() - t_start
    cap.release()
    out = {k: 1000.0 * v / done for k, v in times.items()}
    out.update(fps=done / seconds, frames=done, faces_per_frame=faces / done)
    return out


def main() -> int:
    """Measure edge, import + first frame, and the baseline; print the figures and the floors."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=600, help="edge frames (600)")
    parser.add_argument("--baseline-frames", type=int, default=120, help="baseline frames (120)")
    parser.add_argument("--threads", type=int, default=1, help="inference threads (1)")
    parser.add_argument("--clip", help="a 640x480 clip to play instead")
    parser.add_argument("--full-frame-every", type=int, default=5,
                        help="detector.full_frame_every measured beside the default (5)")
    args = parser.parse_args()

    clip = bench_clip(args.clip)
    models = bench_bundles()
    load_before = os.getloadavg()
    from edge.config import Settings

    default_every = Settings().detector.full_frame_every
    other_every = args.full_frame_every if args.full_frame_every != default_every else 1
    result, settings, _ = edge_run(clip, models, args.frames, args.threads, default_every)
    roi, roi_settings, edge_rss = edge_run(clip, models, args.frames, args.threads, other_every)
    imp, first, wall = import_and_first_frame(clip, models)
    assert "tensorflow" not in sys.modules, "the edge measurement must not import TensorFlow"
    base = baseline_run(clip, models, args.baseline_frames)
    load_after = os.getloadavg()

    from edge.commands.bench import format_table

    print(f"\nclip: {clip} | bundles: int8 MobileNetV2-0.35 96 px x {len(BUNDLES)} ({', '.join(BUNDLES)}) | "
          f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after on {os.cpu_count()} CPUs")
    print(f"\n== edge loop (defaults: detector.full_frame_every {default_every}) ==")
    print(format_table(result, settings))
    print(f"\n== edge loop, detector.full_frame_every: {other_every} ==")
    print(format_table(roi, roi_settings))
    print(f"\npeak RSS (edge, no TensorFlow): {edge_rss:.0f} MB")
    print(f"import edge: {imp * 1000:.0f} ms; import + load {len(BUNDLES)} bundles + first frame: {first * 1000:.0f} ms "
          f"(whole subprocess incl. interpreter start: {wall * 1000:.0f} ms)")
    print("\n== naive baseline (full-size Haar + float Keras model call per face per frame) ==")
    print(f"{base['fps']:.2f} frames/s over {base['frames']} frames ({base['faces_per_frame']:.2f} faces/frame): "
          f"capture {base['capture']:.2f}, detect {base['detect']:.2f}, models {base['models']:.2f} ms/frame")
    ratio = result.fps / base["fps"] if base["fps"] else float("inf")
    cpu_fps = 1000.0 / result.cpu_ms_per_frame if result.cpu_ms_per_frame else 0.0
    floors = [("edge / baseline", f"{ratio:.1f}x", ratio >= 5),
              (f"edge frames/s ({args.threads} thread)", f"{result.fps:.1f}", result.fps >= 60),
              (f"  same, full_frame_every {other_every}", f"{roi.fps:.1f}", roi.fps >= 60),
              ("  1000 / CPU ms per frame", f"{cpu_fps:.1f} (what one free core would give)", cpu_fps >= 60),
              ("import + first frame", f"{first * 1000:.0f} ms", first < 1.0),
              ("peak RSS", f"{edge_rss:.0f} MB", edge_rss < 200)]
    print("\n== floors ==")
    for name, value, ok in floors:
        print(f"{'met ' if ok else 'MISS'}  {name:<30} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
