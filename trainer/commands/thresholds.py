"""face-train thresholds RUN --data DIR: re-tune per-label thresholds on the validation split."""
from __future__ import annotations

import argparse
import json

from ..errors import RunError
from ..run import read_run
from ..tasks import task_of_run


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``thresholds``: re-tune decision thresholds and unreliable flags of a RUN, then re-evaluate."""
    parser = subparsers.add_parser("thresholds", help="re-tune a RUN's decision thresholds on validation")
    parser.add_argument("run", help="RUN folder")
    parser.add_argument("--data", required=True, help="the data set the run was trained on")
    parser.add_argument("--objective", default="accuracy", choices=["accuracy", "balanced_accuracy", "f1"])
    parser.add_argument("--min-gain", type=float, default=0.005,
                        help="keep 0.5 unless another threshold gains at least this much on validation")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--bundle", default=None,
                        help="tune on the validation scores of this converted bundle (e.g. the int8 one) instead of the Keras model")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Re-tune and print the new held-out metrics."""
    run_ = read_run(args.run)
    task = task_of_run(run_.info)
    if not hasattr(task, "retune"):
        raise RunError(f"task {task.NAME} has no threshold re-tuning")
    metrics = task.retune(run_, args.data, args.objective, args.min_gain, args.cache_dir, bundle=args.bundle)
    print(json.dumps(metrics.get("float", metrics), indent=1))
    return 0
