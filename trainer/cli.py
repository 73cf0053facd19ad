"""face-train: fit, evaluate, predict with and explain face models (desktop, TensorFlow).

Every module in :mod:`trainer.commands` that defines ``register(subparsers)`` adds one
sub-command; a handler returns an exit code. FaceEdgeError is printed as one line.
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from typing import Optional, Sequence

from edge.errors import FaceEdgeError


def build_parser() -> argparse.ArgumentParser:
    """Return the face-train parser with every command module of trainer.commands registered."""
    from . import commands

    parser = argparse.ArgumentParser(prog="face-train", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run face-train with ``argv``; return the exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except FaceEdgeError as exc:
        print(f"face-train: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("face-train: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
