"""``face-edge``: the command line of the device app.

Every module in :mod:`edge.commands` registers one sub-command. A FaceEdgeError (bad config,
bundle or source, ...) is printed as one line ``face-edge: error: <message>`` and its
exit code (2 for bad input) is returned; there is no traceback for user errors.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from typing import Optional, Sequence

from . import __version__
from .errors import FaceEdgeError


def build_parser() -> argparse.ArgumentParser:
    """Return the ``face-edge`` parser with every sub-command of :mod:`edge.commands` registered."""
    from . import commands

    parser = argparse.ArgumentParser(
        prog="face-edge",
        description="Live face analysis on a Raspberry Pi camera: Haar detection, tracking, quantized "
                    "TFLite face models and an OpenCV overlay.")
    parser.add_argument("--version", action="version", version=f"face-edge {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        try:
            module = importlib.import_module(f"{commands.__name__}.{info.name}")
            module.register(subparsers)
        except Exception as exc:  # one broken command must not take the others down
            print(f"face-edge: warning: command module {info.name} is broken and left out "
                  f"({type(exc).__name__}: {exc})", file=sys.stderr)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``face-edge`` with ``argv`` (default sys.argv[1:]); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(func(args) or 0)
    except FaceEdgeError as exc:
        print(f"face-edge: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("face-edge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
