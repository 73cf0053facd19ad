"""``face-edge status [--json]``: bundles and versions on this device, the service's state, the last error."""
from __future__ import annotations

import argparse
import json

from . import add_config_options, load_config


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``status`` sub-command."""
    p = subparsers.add_parser("status", help="installed bundles and versions, the running service (frames, fps, "
                                             "models) and the last install or reload error")
    add_config_options(p)
    p.add_argument("--json", action="store_true", help="one JSON object (what `face-edge fleet status` reads)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the device status; return 0 (1 when the service does not answer its control socket)."""
    from ..device_status import device_status

    settings = load_config(args)
    status = device_status(settings)
    if args.json:
        print(json.dumps(status))
        return 0
    service = status["service"]
    state = service["state"]
    if state == "running":
        state += f" (pid {service.get('pid')}, frame {service.get('frame')}, {service.get('fps')} fps)"
    if service.get("systemd"):
        state += f"; systemd {service['systemd']}"
    print(f"face-edge {status['face_edge']} on {status['hostname']}; service: {state}")
    running = service.get("models") or {}
    for name, info in status["bundles"].items():
        mark = "*" if name in status["configured"] else " "
        version = info.get("version") or f"error: {info.get('error')}"
        extra = f", previous {info['previous']}" if info.get("previous") else ""
        live = f", service runs {running[name]}" if name in running else ""
        print(f" {mark} {name:<14} {version}{extra}{live}")
    print(f"last error: {status['last_error'] or 'none'}")
    return 0 if service["state"] != "not answering" else 1
