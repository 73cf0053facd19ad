"""``face-edge push HOST BUNDLE...`` and ``face-edge push --rollback HOST NAME`` (desktop side)."""
from __future__ import annotations

import argparse

from ..push import DEFAULT_STAGING, SshTarget, push_bundles, push_rollback


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``push`` sub-command."""
    p = subparsers.add_parser(
        "push", help="copy model bundles to a Pi over ssh and install them there (verified, atomic, rolled back "
                     "when the service does not report healthy)",
        description="Copy bundles to HOST with rsync over ssh, then run `face-edge install-bundle` there. "
                    "With --rollback: switch NAME on HOST back to its previous version.")
    p.add_argument("host", metavar="HOST", help="the Pi, as [user@]host")
    p.add_argument("items", nargs="+", metavar="BUNDLE|NAME",
                   help="bundle folders to push (with --rollback: the bundle name to roll back)")
    p.add_argument("--rollback", action="store_true", help="roll NAME back to its previous version")
    p.add_argument("-p", "--port", type=int, help="ssh port on the Pi")
    p.add_argument("-i", "--identity", help="ssh private key file")
    p.add_argument("-o", "--ssh-option", action="append", default=[], metavar="OPTION",
                   help="extra ssh -o option (repeatable), e.g. -o UserKnownHostsFile=known_hosts")
    p.add_argument("--remote-face-edge", default="face-edge", metavar="COMMAND",
                   help="how to run face-edge on the Pi (default: face-edge)")
    p.add_argument("--remote-config", metavar="PATH",
                   help="config file on the Pi (default there: $FACE_EDGE_CONFIG or /etc/face-edge/edge.yaml)")
    p.add_argument("--staging", default=DEFAULT_STAGING, metavar="DIR",
                   help=f"staging folder on the Pi (default: {DEFAULT_STAGING})")
    p.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                   help="how long the reloaded service has to report healthy before it is rolled back")
    p.add_argument("--public-key", metavar="PEM", help="check the bundles' signatures locally before copying")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Push or roll back; return 0 (errors raise FaceEdgeError subclasses with their exit code)."""
    target = SshTarget(args.host, port=args.port, identity=args.identity, options=args.ssh_option)
    if args.rollback:
        if len(args.items) != 1:
            raise SystemExit("face-edge push --rollback HOST NAME: give exactly one bundle name")
        push_rollback(target, args.items[0], remote_face_edge=args.remote_face_edge,
                      remote_config=args.remote_config, timeout=args.timeout)
        return 0
    push_bundles(target, args.items, remote_face_edge=args.remote_face_edge, remote_config=args.remote_config,
                 staging=args.staging, timeout=args.timeout, public_key=args.public_key)
    return 0
