"""``face-edge info``: version, runtimes, and every bundle in the models folder with its metrics."""
from __future__ import annotations

import argparse
import platform
from pathlib import Path
from typing import Any, Mapping

from . import add_config_options, installed_runtimes, load_config


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``info`` sub-command."""
    p = subparsers.add_parser("info", help="show version, runtime and the bundles in models.dir with their metrics")
    add_config_options(p)
    p.set_defaults(func=run)


def _flat_metrics(metrics: Mapping[str, Any], prefix: str = "", depth: int = 0) -> list[str]:
    """Return ``key=value`` strings of the numeric metrics (nested dicts two levels deep)."""
    out = []
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            out.append(f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}")
        elif isinstance(value, Mapping) and depth < 1:
            out += _flat_metrics(value, f"{name}.", depth + 1)
    return out


def run(args: argparse.Namespace) -> int:
    """Print what is installed and which bundles are available; return 0."""
    import cv2

    from .. import __version__
    from ..bundle import load_bundle
    from ..errors import FaceEdgeError
    from ..runtime import get_runtime

    settings = load_config(args)
    print(f"face-edge {__version__} (python {platform.python_version()}, OpenCV {cv2.__version__}, "
          f"{platform.machine()})")
    try:
        runtime = get_runtime(settings.models.runtime)
        print(f"runtime: {runtime.name} {runtime.version()} ({settings.models.runtime}); "
              f"installed: {', '.join(installed_runtimes())}")
    except FaceEdgeError as exc:
        print(f"runtime: none ({exc})")
    folder = Path(settings.models.dir)
    configured = set(settings.models.bundles)
    folders = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if folder.is_dir() else []
    print(f"bundles in {folder}/ ({len(folders)}; configured: {', '.join(settings.models.bundles) or 'none'}):")
    for path in folders:
        mark = "*" if path.name in configured else " "
        try:
            bundle = load_bundle(path)
        except FaceEdgeError as exc:
            print(f" {mark} {path.name}: INVALID ({exc})")
            continue
        m = bundle.manifest
        outputs = ", ".join(f"{o.name}:{o.kind}" for o in m.outputs)
        print(f" {mark} {path.name}: {m.task} v{m.version} ({m.created or 'undated'}), "
              f"input {m.input.height}x{m.input.width}x{m.input.channels} {m.input.dtype}, outputs {outputs}"
              f"{', signed' if bundle.signed else ''}")
        metrics = _flat_metrics(m.metrics)
        if metrics:
            print("     metrics: " + ", ".join(metrics[:12]) + (" ..." if len(metrics) > 12 else ""))
    missing = sorted(configured - {p.name for p in folders})
    for name in missing:
        print(f" * {name}: configured but not in {folder}/")
    return 0
