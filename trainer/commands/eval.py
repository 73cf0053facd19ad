"""face-train eval RUN [--data DIR]: evaluate a run on held-out data, write RUN/eval/."""
from __future__ import annotations

import argparse
import json

from ..run import read_run, update_run
from ..tasks import task_of_run, tasks


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``eval``: task-specific evaluation of a RUN folder."""
    parser = subparsers.add_parser("eval", help="evaluate a RUN on held-out data (files under RUN/eval)",
                                   conflict_handler="resolve")
    parser.add_argument("run", help="RUN folder")
    parser.add_argument("--data", default=None, help="data set to evaluate on (default: RUN/samples held-out faces)")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"])
    parser.add_argument("--limit", type=int, default=0, help="evaluate only the first N faces")
    parser.add_argument("--cache-dir", default=None)
    for module in tasks().values():
        if hasattr(module, "add_eval_arguments"):
            module.add_eval_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate the run with its own task; print the headline metrics."""
    run_ = read_run(args.run)
    metrics = task_of_run(run_.info).evaluate(run_, args)
    update_run(run_, metrics=metrics)
    print(json.dumps(metrics, indent=1, default=str)[:4000])
    print(f"evaluation files in {run_.eval_dir}")
    return 0
