"""Replay every bundle's golden faces the way ``face-edge install-bundle`` does; print one JSON line.

Used by scripts/arm64-check.sh inside the emulated arm64 system (with the venv install.sh made)
and runnable on any machine with face-edge installed::

    python scripts/golden_replay.py --models /var/lib/face-edge/models [--outputs replay.npz]
    python scripts/golden_replay.py --models models --count-frames out/demo.mp4
    python scripts/golden_replay.py --models models --compare x86.npz arm64.npz   # steps apart

The JSON holds the Python and runtime versions, the CPU features the int8 kernels are chosen on
(XNNPACK dispatches on them), whether the XNNPACK delegate was applied, and per bundle the verdict
of edge.push.compare_golden with its detail. ``--outputs`` saves every raw output per face, so
two machines' outputs can be compared step by step (measurements for the golden rule).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import struct
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

# aarch64 AT_HWCAP / AT_HWCAP2 bits (Linux arch/arm64/include/uapi/asm/hwcap.h) that matter for int8 kernels.
ARM_HWCAP = {1: "asimd", 9: "fphp", 10: "asimdhp", 20: "asimddp", 22: "sve"}
ARM_HWCAP2 = {1: "sve2", 13: "i8mm", 14: "bf16"}
X86_FLAGS = ("sse4_1", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni")


def cpu_features() -> list[str]:
    """Return the CPU features int8 kernels are chosen on: aarch64 from the process's auxv, x86 from cpuinfo."""
    if platform.machine() in ("aarch64", "arm64"):
        words = Path("/proc/self/auxv").read_bytes()
        aux = dict(struct.iter_unpack("<QQ", words[: len(words) // 16 * 16]))
        hw, hw2 = aux.get(16, 0), aux.get(26, 0)
        return [n for b, n in ARM_HWCAP.items() if hw >> b & 1] + [n for b, n in ARM_HWCAP2.items() if hw2 >> b & 1]
    try:
        flags = next(ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")).split()
    except (OSError, StopIteration):
        return []
    return [f for f in X86_FLAGS if f in flags]


def cpu_model() -> str:
    """Return the machine or CPU model /proc/cpuinfo names (a Pi's "Model", x86's "model name"), or ''."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return ""
    for key in ("Model", "model name"):
        for ln in lines:
            if ln.split(":")[0].strip() == key:
                return ln.split(":", 1)[1].strip()
    return ""


def kernel_family(features: list[str]) -> str:
    """Return the family of XNNPACK int8 GEMM kernels these features select (its dispatch order)."""
    if "i8mm" in features:
        return "NEON I8MM"
    if "asimddp" in features:
        return "NEON dot product"
    if "asimd" in features:
        return "NEON (no dot product)"
    for flag, name in (("avx512_vnni", "AVX512-VNNI"), ("avx_vnni", "AVX-VNNI"), ("avx512bw", "AVX512"),
                       ("avx2", "AVX2"), ("sse4_1", "SSE4.1")):
        if flag in features:
            return name
    return "scalar"


@contextlib.contextmanager
def native_stderr() -> Iterator[list[str]]:
    """Capture what native code writes to file descriptor 2 (LiteRT's and cpuinfo's messages)."""
    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode(errors="replace").splitlines())


def count_frames(path: Path) -> int:
    """Return the number of frames in a video file."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.isOpened():
        ok, _ = cap.read()
        if not ok:
            break
        n += 1
    cap.release()
    return n


def replay(models_dir: Path, outputs: Path | None) -> dict[str, Any]:
    """Return the report (see the module docstring); save raw outputs to ``outputs`` when given."""
    from edge.bundle import load_bundle
    from edge.models import FaceModel
    from edge.push import compare_golden
    from edge.runtime import dropped_native_lines, get_runtime

    runtime = get_runtime("auto")
    features = cpu_features()
    report: dict[str, Any] = {
        "machine": platform.machine(), "python": platform.python_version(),
        "runtime": f"{runtime.name} {runtime.version()}", "numpy": np.__version__,
        "cpu_model": cpu_model(), "cpu_features": features, "kernels": kernel_family(features), "qemu_cpu": os.environ.get("QEMU_CPU", ""),
        "bundles": {},
    }
    saved: dict[str, np.ndarray] = {}
    native: list[str] = []
    for folder in sorted(p for p in models_dir.iterdir() if (p / "manifest.yaml").is_file()):
        name = folder.name
        try:
            with native_stderr() as lines:
                model = FaceModel(load_bundle(folder), runtime, num_threads=1)
                result = compare_golden(model)
            native += lines
            entry = {"ok": result.ok, "faces": result.faces, "max_error": result.max_error, "detail": result.detail,
                     "version": model.manifest.version}
        except Exception as exc:  # report it in the table instead of stopping at the first bundle
            entry = {"ok": False, "faces": 0, "max_error": float("nan"), "detail": f"{type(exc).__name__}: {exc}"}
            model = None
        report["bundles"][name] = entry
        if outputs is not None and model is not None:
            with np.load(folder / "golden.npz", allow_pickle=False) as g:
                faces = g["faces"]
            for i, face in enumerate(faces):
                for spec, y in zip(model.manifest.outputs, model.raw_outputs(model.preprocess(face[..., ::-1].copy()))):
                    saved[f"{name}/{spec.name}/{i}"] = y
    native += dropped_native_lines()  # edge.runtime keeps LiteRT's XNNPACK notice off stderr
    report["xnnpack"] = any("XNNPACK delegate" in ln for ln in native)
    report["native_messages"] = sorted(set(native))[:8]
    if outputs is not None:
        np.savez(outputs, **saved)
    return report


def compare_outputs(models_dir: Path, a: Path, b: Path) -> dict[str, dict[str, float]]:
    """Return {bundle/output: {max_steps, mean_steps}}: how far two --outputs files are apart, in
    output quantization steps (1 - cosine for embeddings)."""
    from edge.bundle import load_bundle
    from edge.models import FaceModel

    steps: dict[str, dict[str, float]] = {}
    with np.load(a) as fa, np.load(b) as fb:
        keys = sorted(set(fa.files) & set(fb.files))
        for folder in sorted(p for p in models_dir.iterdir() if (p / "manifest.yaml").is_file()):
            model = FaceModel(load_bundle(folder))
            for spec, index in zip(model.manifest.outputs, model._out_indices):
                scale = model._out_quant[index][0] or 1.0
                pairs = [(fa[k], fb[k]) for k in keys if k.startswith(f"{folder.name}/{spec.name}/")]
                if not pairs:
                    continue
                if spec.kind == "embedding":
                    d = [1 - float(x @ y) / float(np.linalg.norm(x) * np.linalg.norm(y)) for x, y in pairs]
                else:
                    d = list(np.concatenate([np.abs(x - y) / scale for x, y in pairs]))
                steps[f"{folder.name}/{spec.name}"] = {"max": float(np.max(d)), "mean": float(np.mean(d))}
    return steps


def main(argv: list[str] | None = None) -> int:
    """Print the report as one JSON line; return 0 when every bundle's golden faces replay."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=Path, required=True, help="folder with one folder per bundle")
    ap.add_argument("--outputs", type=Path, help="save every raw output per golden face to this .npz")
    ap.add_argument("--compare", type=Path, nargs=2, metavar=("A.npz", "B.npz"),
                    help="print how far two --outputs files are apart (quantization steps) instead")
    ap.add_argument("--count-frames", type=Path, metavar="VIDEO", help="also count the frames of this video")
    args = ap.parse_args(argv)
    if args.compare:
        print(json.dumps(compare_outputs(args.models, *args.compare)))
        return 0
    report = replay(args.models, args.outputs)
    if args.count_frames:
        report["frames"] = count_frames(args.count_frames) if args.count_frames.is_file() else 0
    print(json.dumps(report))
    return 0 if all(b["ok"] for b in report["bundles"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
