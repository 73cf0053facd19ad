"""Task registry: every module in trainer/tasks/ that defines ``NAME`` is a trainable task.

A task module provides (add a file here; nothing else needs editing):

- ``NAME``: the name typed after ``face-train fit`` (e.g. "attributes").
- ``MANIFEST_TASK``: the manifest task its runs carry (attributes|multitask|embedding|distortion).
- ``add_fit_arguments(parser)``: its own options (use :func:`add_common_fit_arguments` for the usual ones).
- ``fit(args) -> trainer.run.Run``: trains and writes the RUN folder (docs/run-format.md).
- ``evaluate(run, args) -> dict``: writes RUN/eval/ and returns the metrics (merged into run.yaml).
- optional ``add_eval_arguments(parser)``.

Runs record ``training.task`` = NAME in run.yaml, which is how ``face-train eval RUN`` finds the task.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
from types import ModuleType
from typing import Any

from ..distribute import add_device_arguments
from ..errors import RunError

_TASKS: dict[str, ModuleType] = {}
_BROKEN: dict[str, str] = {}


def tasks() -> dict[str, ModuleType]:
    """Return {task name: module} for every task module that imports cleanly."""
    if not _TASKS and not _BROKEN:
        for info in pkgutil.iter_modules(__path__):
            if info.name.startswith("_"):
                continue
            try:
                module = importlib.import_module(f"{__name__}.{info.name}")
            except Exception as exc:  # one engineer's broken task must not break the others
                _BROKEN[info.name] = f"{type(exc).__name__}: {exc}"
                continue
            name = getattr(module, "NAME", None)
            if name:
                _TASKS[name] = module
    return _TASKS


def broken_tasks() -> dict[str, str]:
    """Return {module name: import error} for task modules that failed to import."""
    tasks()
    return dict(_BROKEN)


def get_task(name: str) -> ModuleType:
    """Return the task module called ``name``; RunError lists the known tasks otherwise."""
    found = tasks()
    if name not in found:
        extra = f" (failed to import: {_BROKEN[name]})" if name in _BROKEN else ""
        raise RunError(f"unknown task {name!r}{extra}; known tasks: {', '.join(sorted(found)) or 'none'}")
    return found[name]


def task_of_run(info: dict[str, Any]) -> ModuleType:
    """Return the task module that trained a run (run.yaml training.task, else its manifest task)."""
    name = (info.get("training") or {}).get("task")
    if name:
        return get_task(name)
    for module in tasks().values():
        if getattr(module, "MANIFEST_TASK", None) == info.get("task"):
            return module
    raise RunError(f"no trainer task handles runs of task {info.get('task')!r}")


def add_common_fit_arguments(parser: argparse.ArgumentParser, size: int = 96, backbone: str = "mobilenet_v2",
                             alpha: float = 1.0, margin: float = 0.25) -> None:
    """Add the options every image task shares: data, output, backbone, crop, stages, augmentation."""
    parser.add_argument("--data", required=True, help="data set folder in its official layout")
    parser.add_argument("--out", required=True, help="RUN folder to write (docs/run-format.md)")
    parser.add_argument("--name", default=None, help="model name in the manifest (default: the task name)")
    parser.add_argument("--backbone", default=backbone, choices=["mobilenet_v2", "mobilenet_v3_small", "custom_cnn"])
    parser.add_argument("--alpha", type=float, default=alpha, help="width multiplier")
    parser.add_argument("--size", type=int, default=size, help="input side in pixels (96..160)")
    parser.add_argument("--weights", default="imagenet",
                        help="'imagenet' (the shared MobileNetV2 1.0 file when it fits), 'none', or a .weights.h5 path")
    parser.add_argument("--margin", type=float, default=margin, help="crop margin per side (edge.crop)")
    parser.add_argument("--shift-y", type=float, default=0.0, help="crop vertical shift in box heights")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--stage1-epochs", type=int, default=4, help="epochs with the backbone frozen")
    parser.add_argument("--stage2-epochs", type=int, default=6, help="fine-tuning epochs")
    parser.add_argument("--lr1", type=float, default=1e-3, help="stage-1 learning rate")
    parser.add_argument("--lr2", type=float, default=2e-4, help="stage-2 learning rate")
    parser.add_argument("--unfreeze", type=int, default=6, help="top backbone blocks trained in stage 2")
    parser.add_argument("--bn-momentum", type=float, default=0.9)
    parser.add_argument("--patience", type=int, default=3, help="early-stopping patience in epochs (0 = no early stopping)")
    parser.add_argument("--features-stage1", action="store_true",
                        help="train stage 1 on cached pooled features (fast, no augmentation)")
    parser.add_argument("--augment", default="default",
                        help="'off', 'default' or key=value,... (see trainer.augment.DEFAULT_AUGMENT)")
    parser.add_argument("--seed", type=int, default=1729)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N images (quick runs, tests)")
    parser.add_argument("--cache-dir", default=None, help="where face crops are cached (default /work/cache)")
    parser.add_argument("--no-resume", action="store_true", help="ignore checkpoints of an earlier run in --out")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch Keras progress")
    add_device_arguments(parser)
