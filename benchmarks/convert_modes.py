"""Size and per-face latency of every conversion mode, printed as the README's markdown table.

For each shipped bundle in models/ whose manifest names its source run (``source.run``) and
whose run folder is on this machine, and for any RUN given with --run, the run's Keras model
is converted in float32, float16, dynamic and int8; each is timed through
edge.models.FaceModel.predict on one thread (median over held-out faces) and compared with
the float Keras model (lowest head agreement). With no runs found, or with --synthetic,
small MobileNetV2 / MobileNetV3-Small models (untrained, 96 px) are built under runs/bench/.
The naive baseline is the float Keras model called on one face at a time.

    python benchmarks/convert_modes.py [--run RUN ...] [--synthetic] [--repeats 100]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from converters.convert import staged_model, strip_unit_normalization  # noqa: E402
from converters.errors import ConvertError  # noqa: E402
from converters.parity import parity_report, tflite_outputs  # noqa: E402
from converters.quantize import MODES, QuantConfig, convert_keras, representative_set  # noqa: E402
from converters.run import keras_predict, load_keras_model, load_run  # noqa: E402
from edge.models import FaceModel  # noqa: E402


def shipped_runs(models_dir: Path) -> list[tuple[str, Path]]:
    """Return (bundle name, run folder) for each bundle whose source run exists here."""
    found = []
    for manifest in sorted(models_dir.glob("*/manifest.yaml")):
        data = yaml.safe_load(manifest.read_text()) or {}
        run = (data.get("source") or {}).get("run")
        if not run:
            continue
        for base in (REPO, manifest.parent):
            path = (base / run).resolve()
            if (path / "run.yaml").is_file():
                found.append((manifest.parent.name, path))
                break
        else:
            print(f"# {manifest.parent.name}: source run {run} is not on this machine, skipped", file=sys.stderr)
    return found


def synthetic_runs() -> list[tuple[str, Path]]:
    """Return small untrained MobileNet runs (built once under runs/bench/)."""
    from converters.synthetic import make_run

    runs = []
    for backbone in ("mobilenet_v2", "mobilenet_v3_small"):
        path = REPO / "runs" / "bench" / f"{backbone}-96"
        if not (path / "run.yaml").is_file():
            make_run(path, "multitask", backbone=backbone, size=96, n_train=300, n_heldout=60, epochs=0)
        runs.append((f"synthetic {backbone} 96px (untrained)", path))
    return runs


def keras_face_ms(model, faces: np.ndarray, repeats: int) -> float:
    """Return the median ms of the float Keras model on one face (the naive baseline)."""
    times = []
    for i in range(repeats + 3):
        t0 = time.perf_counter()
        model(faces[i % len(faces)][None].astype(np.float32), training=False)
        if i >= 3:
            times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000)


def interleaved_latency(models: dict[str, FaceModel], faces: np.ndarray, repeats: int) -> dict[str, float]:
    """Return each model's median ms per face, timing the modes in turn so load drift hits all alike."""
    crops = [np.ascontiguousarray(f[:, :, ::-1]) for f in faces[:20]]
    times: dict[str, list[float]] = {m: [] for m in models}
    for i in range(repeats + 5):
        for mode, model in models.items():
            t0 = time.perf_counter()
            model.predict(crops[i % len(crops)])
            if i >= 5:
                times[mode].append(time.perf_counter() - t0)
    return {m: float(np.median(t) * 1000) for m, t in times.items()}


def bench_run(label: str, run_dir: Path, repeats: int, scratch: Path) -> list[str]:
    """Return the markdown rows of every mode of one run."""
    run = load_run(run_dir)
    heldout = run.heldout_faces()[:100]
    model = load_keras_model(run)
    float_outs = keras_predict(model, heldout)
    labels = {k: v[:len(heldout)] for k, v in run.heldout_labels().items()}
    baseline = keras_face_ms(model, heldout, max(10, repeats // 4))
    model, _ = strip_unit_normalization(model, run.manifest)
    try:
        rep = representative_set(run.train_faces(), 300, 0)
    except ConvertError:
        rep = None
    sizes, agreement, models = {}, {}, {}
    for mode in MODES:
        if mode == "int8" and rep is None:
            continue
        flat = convert_keras(model, QuantConfig(mode=mode), rep)
        folder = scratch / f"{run_dir.name}-{mode}"
        folder.mkdir(parents=True)
        models[mode] = staged_model(folder, run.manifest, flat, threads=1)
        report = parity_report(models[mode].manifest, float_outs, tflite_outputs(models[mode], heldout), labels)
        sizes[mode], agreement[mode] = len(flat), f"{report['min_agreement']:.3f} ({report['worst_head']})"
    latency = interleaved_latency(models, heldout, repeats)
    rows = []
    for mode in models:
        rows.append(f"| {label} | {mode} | {sizes[mode] / 1024:.0f} | {sizes[mode] / sizes['float32']:.2f} | "
                    f"{latency[mode]:.2f} | {latency['float32'] / latency[mode]:.2f}x | "
                    f"{baseline / latency[mode]:.0f}x | {agreement[mode]} |")
        print(rows[-1], file=sys.stderr)
    return rows


def main() -> int:
    """Print the table; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", default=[], help="a RUN folder (repeatable)")
    parser.add_argument("--models", default=str(REPO / "models"), help="shipped bundles folder")
    parser.add_argument("--synthetic", action="store_true", help="also bench small built MobileNets")
    parser.add_argument("--repeats", type=int, default=100, help="timed faces per mode")
    args = parser.parse_args()
    runs = [(Path(r).name, Path(r)) for r in args.run] + shipped_runs(Path(args.models))
    if args.synthetic or not runs:
        runs += synthetic_runs()
    import platform

    print(f"Measured by `python benchmarks/convert_modes.py` on {platform.machine()} "
          f"({os.cpu_count()} cores, one interpreter thread, ai_edge_litert, FaceModel.predict median per face):\n")
    print(f"Load average at start: {os.getloadavg()[0]:.1f}. Naive baseline: the float Keras model called "
          "eagerly on one face.\n")
    print("| model | mode | KiB | size vs float32 | ms / face | speed vs float32 | speed vs Keras float "
          "| min head agreement with Keras |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="convert-modes-") as scratch:
        for label, path in runs:
            for row in bench_run(label, path, args.repeats, Path(scratch)):
                print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
