"""``face-edge install-bundle STAGED`` and ``--rollback NAME`` (device side, run by ``face-edge push``)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..errors import FaceEdgeError
from ..push import install_bundle, rollback
from . import add_config_options, load_config


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``install-bundle`` sub-command."""
    p = subparsers.add_parser(
        "install-bundle", help="verify a staged bundle, test it on its golden faces, switch to it atomically "
                               "and hot-reload the running service (rolled back when unhealthy)")
    p.add_argument("staged", nargs="?", metavar="FOLDER", help="the staged bundle folder (removed afterwards)")
    p.add_argument("--rollback", metavar="NAME", help="switch NAME back to its previous version instead")
    add_config_options(p)
    p.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                   help="how long the reloaded service has to report healthy")
    p.add_argument("--keep-staged", action="store_true", help="do not delete the staged folder afterwards")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Install or roll back; print one line per step; return 0 (errors raise FaceEdgeError).

    Every outcome is appended to the device's install journal (read by ``face-edge status``).
    """
    from ..device_status import record

    # Versions are shared by group face-edge: the service reads them, every admin may replace them.
    os.umask(0o007)
    settings = load_config(args)
    if args.rollback:
        try:
            result = rollback(args.rollback, settings, timeout=args.timeout)
        except FaceEdgeError as exc:
            record(settings, "rollback", args.rollback, None, False, str(exc))
            raise
        record(settings, "rollback", result.name, result.version, True, result.service, result.previous)
        print(f"rolled back {result.name} to {result.version} (from {result.previous}); {result.service}")
        return 0
    if not args.staged:
        raise SystemExit("face-edge install-bundle: give the staged bundle FOLDER or --rollback NAME")
    name, version = _staged_identity(Path(args.staged))
    try:
        result = install_bundle(args.staged, settings, timeout=args.timeout, keep_staged=args.keep_staged)
    except FaceEdgeError as exc:
        record(settings, "install", name, version, False, str(exc))
        raise
    record(settings, "install", result.name, result.version, True, result.service, result.previous)
    was = f" (was {result.previous})" if result.previous else ""
    print(f"installed {result.name} {result.version}{was}; golden: {result.golden}; {result.service}")
    return 0


def _staged_identity(staged: Path) -> tuple[str | None, str | None]:
    """Return (name, version) from a staged bundle's manifest, or the folder name and None when unreadable."""
    from ..bundle import read_manifest

    try:
        manifest = read_manifest(staged)
        return manifest.name, manifest.version
    except FaceEdgeError:
        return staged.name, None
