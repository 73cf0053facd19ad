"""face-train eval-bundle BUNDLE --run RUN: held-out metrics of the converted model via edge's FaceModel."""
from __future__ import annotations

import argparse
import json

from ..run import read_run, update_run
from ..tasks import task_of_run


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``eval-bundle``: measure a bundle on its run's held-out faces with the device code."""
    parser = subparsers.add_parser("eval-bundle", help="held-out metrics of a converted bundle (edge FaceModel)")
    parser.add_argument("bundle", help="bundle folder (model.tflite + manifest.yaml)")
    parser.add_argument("--run", required=True, help="the RUN folder it was converted from")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--key", default="int8", help="name of the metrics block written to run.yaml (default int8)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Measure, write RUN/eval/<key>_metrics.json, merge into run.yaml metrics, and print."""
    from ..bundle_eval import bundle_metrics

    run_ = read_run(args.run, need_model=False)
    metrics = bundle_metrics(args.bundle, run_, args.limit)
    (run_.eval_dir / f"{args.key}_metrics.json").write_text(json.dumps(metrics, indent=1))
    summary = {k: ({kk: vv for kk, vv in v.items() if kk != "per_label"} if isinstance(v, dict) else v)
               for k, v in metrics.items()}
    for head, block in metrics.items():
        if isinstance(block, dict) and "per_label" in block:
            summary[head]["per_label_accuracy"] = {n: round(m["accuracy"], 4) for n, m in block["per_label"].items()}
    update_run(run_, metrics={args.key: summary})
    task = task_of_run(run_.info)
    if hasattr(task, "write_card"):
        print(f"wrote {task.write_card(run_)}")
    print(json.dumps(summary, indent=1))
    return 0
