"""Sub-commands of ``face-edge``: every module here defines ``register(subparsers)``.

:mod:`edge.cli` imports each module of this package and calls its ``register``; the module
adds one sub-command whose handler (``set_defaults(func=handler)``) returns an exit code.
The helpers below give every command the same ``--config`` / ``--log-level`` behaviour.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Optional

from ..config import Settings, load_settings

DEVICE_CONFIG = "/etc/face-edge/edge.yaml"
LOG_LEVELS = ("debug", "info", "warning", "error")


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--config PATH`` and ``--log-level LEVEL`` to a sub-command's parser."""
    parser.add_argument("--config", metavar="PATH",
                        help=f"edge.yaml to read (default: $FACE_EDGE_CONFIG, else {DEVICE_CONFIG} when present, "
                             "else the built-in defaults)")
    parser.add_argument("--log-level", choices=LOG_LEVELS, metavar="LEVEL",
                        help="debug | info | warning | error (default: log_level from the config)")


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1 (a bad value is a usage error, exit code 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number above 0 (a bad value is a usage error, exit code 2)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def config_path(explicit: Optional[str]) -> Optional[str]:
    """Return the config file to read: ``explicit``, $FACE_EDGE_CONFIG, /etc/face-edge/edge.yaml, or None."""
    if explicit:
        return explicit
    if os.environ.get("FACE_EDGE_CONFIG"):
        return os.environ["FACE_EDGE_CONFIG"]
    return DEVICE_CONFIG if Path(DEVICE_CONFIG).is_file() else None


def installed_runtimes() -> list[str]:
    """Return the TFLite runtimes whose package is installed, found without importing them
    (importing ``tensorflow`` just to list it would take seconds and hundreds of MB)."""
    from importlib.util import find_spec

    from ..runtime import RUNTIME_ORDER

    names = []
    for name in RUNTIME_ORDER:
        module = "ai_edge_litert" if name == "ai_edge_litert" else name
        try:
            if find_spec(module) is not None:
                names.append(name)
        except (ImportError, ValueError):
            continue
    return names


def setup_logging(level: str) -> None:
    """Send log lines to stderr as ``face-edge LEVEL: message`` at ``level``."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s", "%H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(level.upper())


def load_config(args: argparse.Namespace) -> Settings:
    """Return the Settings a command runs with (``--config`` etc.) and set up logging.

    ``--log-level`` overrides the config's ``log_level``. A missing file or a bad key raises
    ConfigError (exit code 2).
    """
    path = config_path(getattr(args, "config", None))
    settings = load_settings(path)
    level = getattr(args, "log_level", None) or settings.log_level
    settings.log_level = level
    setup_logging(level)
    logging.getLogger("face-edge").debug("config: %s", path or "built-in defaults")
    return settings
