"""``face-edge push HOST BUNDLE...``, ``push --rollback HOST NAME`` and ``push --inventory FLEET BUNDLE...``."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..push import DEFAULT_STAGING, SshTarget, push_bundles, push_rollback
from . import positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``push`` sub-command."""
    p = subparsers.add_parser(
        "push", usage="face-edge push [options] HOST BUNDLE...\n"
                      "       face-edge push --rollback [options] HOST NAME\n"
                      "       face-edge push --inventory FILE [--group G] [--batch N] [--dry-run] [options] BUNDLE...",
        help="copy model bundles to a Pi (or a fleet of Pis) over ssh and install them there (verified, "
                     "atomic, rolled back when the service does not report healthy)",
        description="Copy bundles to HOST with rsync over ssh, then run `face-edge install-bundle` there. "
                    "With --rollback: switch NAME on HOST back to its previous version. With --inventory: roll "
                    "the bundles out to every host of the inventory (or --group): a canary first, then batches, "
                    "each host verified and health-gated before the next; the first failure stops the rollout "
                    "and rolls that host back.")
    # HOST, bundles and options may come in any order (`push HOST --rollback NAME` as well as
    # `push --inventory FILE BUNDLE`): argparse's intermixed parsing, for this sub-command only.
    p.__class__ = _IntermixedParser
    p.add_argument("items", nargs="+", metavar="ARG",
                   help="HOST then bundle folders (with --rollback: HOST then the bundle name; with --inventory: "
                        "only bundle folders)")
    p.add_argument("--rollback", action="store_true", help="roll NAME back to its previous version")
    p.add_argument("-p", "--port", type=int, help="ssh port on the Pi")
    p.add_argument("-i", "--identity", help="ssh private key file")
    p.add_argument("-o", "--ssh-option", action="append", default=[], metavar="OPTION",
                   help="extra ssh -o option (repeatable), e.g. -o UserKnownHostsFile=known_hosts")
    p.add_argument("--remote-face-edge", default=None, metavar="COMMAND",
                   help="how to run face-edge on the Pi (default: face-edge; with --inventory: the inventory's)")
    p.add_argument("--remote-config", metavar="PATH",
                   help="config file on the Pi (default there: $FACE_EDGE_CONFIG or /etc/face-edge/edge.yaml)")
    p.add_argument("--staging", default=None, metavar="DIR",
                   help=f"staging folder on the Pi (default: {DEFAULT_STAGING})")
    p.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                   help="how long the reloaded service has to report healthy before it is rolled back")
    p.add_argument("--public-key", metavar="PEM", help="check the bundles' signatures locally before copying")
    fleet = p.add_argument_group("fleet rollout (--inventory)")
    fleet.add_argument("--inventory", metavar="FILE",
                       help="roll out to the hosts of this inventory (face-edge YAML, or Ansible INI/YAML)")
    fleet.add_argument("--group", metavar="GROUP[,GROUP]", help="only these groups or hosts of the inventory")
    fleet.add_argument("--batch", type=positive_int, default=1, metavar="N",
                       help="hosts updated at the same time after the canary (default 1)")
    fleet.add_argument("--canary", metavar="HOST", help="the host updated first, alone (default: the first one)")
    fleet.add_argument("--dry-run", action="store_true", help="probe the hosts and show the plan; change nothing")
    fleet.add_argument("--resume", action="store_true",
                       help="continue the last rollout of these bundles to this inventory and group")
    fleet.add_argument("--skip-unreachable", action="store_true",
                       help="roll out to the hosts that answer and report the others (default: change nothing)")
    fleet.add_argument("--soak", type=float, default=5.0, metavar="SECONDS",
                       help="how long a host's service is watched after its install before its health is judged "
                            "(default 5)")
    fleet.add_argument("--health-timeout", type=float, default=30.0, metavar="SECONDS",
                       help="then how long it has to report healthy: the new version, the same process as before, "
                            "frames flowing (default 30)")
    fleet.add_argument("--connect-timeout", type=positive_int, default=10, metavar="SECONDS",
                       help="ssh connect timeout per host (default 10)")
    fleet.add_argument("--state", metavar="FILE",
                       help="rollout state file (default: under ~/.local/state/face-edge/rollouts/)")
    p.set_defaults(func=run)


class _IntermixedParser(argparse.ArgumentParser):
    """An ArgumentParser whose positionals may be split by options (``parse_known_intermixed_args``)."""

    _intermixed = False

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        if self._intermixed:   # the intermixed parser calls back into parse_known_args twice
            return super().parse_known_args(args, namespace)
        self._intermixed = True
        try:
            return super().parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixed = False


def run(args: argparse.Namespace) -> int:
    """Push, roll back or roll out; return 0 (errors raise FaceEdgeError subclasses with their exit code)."""
    if args.inventory:
        return run_fleet(args)
    if len(args.items) < 2:
        raise SystemExit("face-edge push HOST BUNDLE...: give the Pi and at least one bundle "
                         "(or --inventory FILE BUNDLE... for a fleet)")
    host, items = args.items[0], args.items[1:]
    target = SshTarget(host, port=args.port, identity=args.identity, options=args.ssh_option)
    remote = args.remote_face_edge or "face-edge"
    if args.rollback:
        if len(items) != 1:
            raise SystemExit("face-edge push --rollback HOST NAME: give exactly one bundle name")
        push_rollback(target, items[0], remote_face_edge=remote, remote_config=args.remote_config,
                      timeout=args.timeout)
        return 0
    push_bundles(target, items, remote_face_edge=remote, remote_config=args.remote_config,
                 staging=args.staging or DEFAULT_STAGING, timeout=args.timeout, public_key=args.public_key)
    return 0


def run_fleet(args: argparse.Namespace) -> int:
    """Roll the bundles out to the inventory's hosts, print the plan or the summary; return 0 when complete."""
    from dataclasses import replace

    from ..fleet import RolloutError, RolloutOptions, UnreachableHosts, rollout, summary_table
    from ..inventory import load_inventory

    if args.rollback or args.port:
        raise SystemExit("face-edge push --inventory: --rollback and --port are per host; set ports in the inventory")
    inventory = load_inventory(args.inventory)
    overrides = {k: v for k, v in (("command", args.remote_face_edge), ("config", args.remote_config),
                                   ("staging", args.staging)) if v}
    if overrides:
        inventory.hosts = {n: replace(h, **overrides) for n, h in inventory.hosts.items()}
    options = RolloutOptions(batch=args.batch, canary=args.canary, connect_timeout=args.connect_timeout,
                             install_timeout=args.timeout, health_timeout=args.health_timeout, soak=args.soak,
                             dry_run=args.dry_run, resume=args.resume, skip_unreachable=args.skip_unreachable,
                             ssh_options=tuple(args.ssh_option), identity=args.identity, public_key=args.public_key)
    try:
        report = rollout(inventory, args.items, options, group=args.group,
                         state_file=Path(args.state) if args.state else None, echo=lambda line: print(line, flush=True))
    except UnreachableHosts as exc:
        print(summary_table(exc.report), flush=True)
        raise
    print(summary_table(report), flush=True)
    what = ", ".join(b.label() for b in report.bundles)
    if args.dry_run:
        print(f"dry run: nothing was changed ({len(report.results)} hosts, {report.seconds:.1f} s)")
        return 0
    done = sum(r.result in ("updated", "already") for r in report.results)
    if report.completed:
        print(f"rollout of {what} complete: {done} of {len(report.results)} hosts on it ({report.seconds:.1f} s)")
        return 0
    unreachable = [r.host for r in report.results if r.result == "unreachable"]
    if report.stopped_at is None and unreachable:
        err = RolloutError(f"rollout of {what}: {done} of {len(report.results)} hosts on it; unreachable, "
                           f"not updated: {', '.join(unreachable)} (--resume once they are back)")
        err.exit_code = 3
        raise err
    raise RolloutError(f"rollout of {what} stopped at {report.stopped_at}: {done} of {len(report.results)} hosts on "
                       f"it, the rest left as they were (state: {report.state_file}; --resume continues)")
