"""face-train gradcam RUN [IMAGES...] --label NAME: Grad-CAM heatmaps for one label."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..errors import RunError
from ..run import read_run


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``gradcam``: heatmaps of where the model looks for one label."""
    parser = subparsers.add_parser("gradcam", help="Grad-CAM heatmaps for one label of a RUN")
    parser.add_argument("run", help="RUN folder")
    parser.add_argument("images", nargs="*", help="image files or folders (default: 8 held-out faces of the run)")
    parser.add_argument("--output", default=None, help="model output name (default: the first)")
    parser.add_argument("--label", default=None, help="label of that output (default: its first)")
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--out", default=None, help="PNG to write (default RUN/eval/gradcam_<label>.png)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Compute and save the Grad-CAM figure."""
    from ..evaluate.gradcam import gradcam_figure

    run_ = read_run(args.run)
    spec = run_.output(args.output) if args.output else run_.info["outputs"][0]
    labels = spec.get("labels") or [spec["name"]]
    label = args.label or labels[0]
    if label not in labels:
        raise RunError(f"--label {label!r} is not a label of output {spec['name']!r}: {', '.join(labels)}")
    if args.images:
        from ..infer import crop_files
        from .predict import expand_images
        crops, _ = crop_files(expand_images(args.images)[: args.count], run_)
        names = [Path(p).name for p in expand_images(args.images)[: args.count]]
    else:
        _, crops, _ = run_.samples()
        crops = crops[: args.count]
        names = [f"held-out {i}" for i in range(len(crops))]
    out = Path(args.out) if args.out else run_.eval_dir / f"gradcam_{label}.png"
    gradcam_figure(run_.load_model(), np.asarray(crops), out, spec["name"], labels.index(label), label, names)
    print(f"wrote {out}")
    return 0
