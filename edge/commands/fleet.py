"""``face-edge fleet status --inventory FILE [--group G] [--json]``: what every Pi of a fleet runs."""
from __future__ import annotations

import argparse
import json

from . import positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``fleet`` sub-command (``fleet status``)."""
    p = subparsers.add_parser("fleet", help="the Pis of an inventory: bundles and versions, service, fps, last error")
    sub = p.add_subparsers(dest="fleet_command", metavar="COMMAND")
    sub.required = True
    st = sub.add_parser("status", help="ask every host (in parallel, with timeouts) what it runs; one table",
                        description="Run `face-edge status --json` on every host of the inventory over ssh and "
                                    "show each host's bundles and versions, service state, fps and last error.")
    st.add_argument("--inventory", required=True, metavar="FILE",
                    help="face-edge YAML inventory, or an Ansible inventory (INI or YAML)")
    st.add_argument("--group", metavar="GROUP[,GROUP]", help="only these groups or hosts")
    st.add_argument("--json", action="store_true", help="print JSON (a list of hosts) instead of the table")
    st.add_argument("-i", "--identity", help="ssh private key file for every host (default: the inventory's)")
    st.add_argument("-o", "--ssh-option", action="append", default=[], metavar="OPTION", help="extra ssh -o option")
    st.add_argument("--connect-timeout", type=positive_int, default=10, metavar="SECONDS",
                    help="ssh connect timeout per host (default 10)")
    st.set_defaults(func=run_status)


def run_status(args: argparse.Namespace) -> int:
    """Print the fleet's status; return 0 when every host answered, 3 when some were unreachable."""
    from ..fleet import RolloutOptions, probe_all, status_rows, status_table
    from ..inventory import load_inventory

    inventory = load_inventory(args.inventory)
    hosts = inventory.select(args.group)
    options = RolloutOptions(connect_timeout=args.connect_timeout, ssh_options=tuple(args.ssh_option),
                             identity=args.identity)
    probes = probe_all(hosts, options)
    rows = status_rows([probes[h.name] for h in hosts])
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(status_table(rows))
    return 0 if all(r["reachable"] for r in rows) else 3
