"""Roll bundles out to a fleet of Pis: canary, batches, verification, health gate, rollback, resume.

``face-edge push --inventory fleet.yaml BUNDLE`` runs :func:`rollout`:

1. **Probe** every selected host in parallel (``face-edge status --json`` over ssh, with
   connect and command timeouts): what it runs now, whether its service is up. Unreachable
   hosts stop the rollout before anything changes (``--skip-unreachable`` leaves them out).
2. **Plan**: the canary host alone, then batches of ``--batch`` hosts (pushed in parallel).
   Hosts already running the exact bundle (same manifest sha256) are left alone.
3. **Each host**: the single-host push (:func:`edge.push.push_bundles`): rsync, then
   ``face-edge install-bundle`` on the Pi verifies sha256, signature and golden faces, switches
   atomically, hot-reloads and switches back by itself when the reload is unhealthy.
4. **Health gate**: after ``--soak`` seconds the service must report (within ``--health-timeout``)
   that it runs the new version, in the same process as before the update, with frames processed
   since and no failed reload. A host that fails is rolled back (``install-bundle --rollback``)
   and the rollout stops: later hosts are not touched.
5. **Summary** table (host, old version, new version, result, seconds) and a state file
   written after every host, so ``--resume`` continues an interrupted or stopped rollout.

Nothing here needs Ansible; ``systemd/ansible/push-bundle.yml`` is the same procedure for
people who already run it.
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import shlex
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from .bundle import MANIFEST, load_bundle, load_public_key, sha256_file
from .errors import FaceEdgeError
from .inventory import Host, Inventory
from .push import PushError, SshTarget, explain_failure, push_bundles, push_rollback

Echo = Callable[[str], None]
PROBE_SLACK_S = 30.0     # on top of the ssh connect timeout: remote Python start and the status query
DONE = ("updated", "already")


class RolloutError(FaceEdgeError):
    """A fleet rollout stopped: a host failed its install or health gate, or hosts were unreachable."""

    exit_code = 4


@dataclass(frozen=True)
class BundleRef:
    """A bundle being rolled out: its folder, name, version and manifest sha256 (its identity)."""

    path: Path
    name: str
    version: str
    manifest_sha256: str

    def label(self) -> str:
        """Return "name version"."""
        return f"{self.name} {self.version}"


@dataclass
class RolloutOptions:
    """How a rollout proceeds (the ``face-edge push --inventory`` options)."""

    batch: int = 1
    canary: Optional[str] = None          # host name; default: the first selected host
    connect_timeout: int = 10
    install_timeout: float = 60.0         # install-bundle --timeout: the reload must be healthy within it
    health_timeout: float = 30.0
    soak: float = 5.0
    dry_run: bool = False
    resume: bool = False
    skip_unreachable: bool = False
    ssh_options: Sequence[str] = ()
    identity: Optional[str] = None        # overrides the inventory's key for every host
    public_key: Optional[str] = None      # check signatures locally before copying


@dataclass
class Probe:
    """A host's answer to ``face-edge status --json`` (``status``), or why there was none (``error``)."""

    host: Host
    status: Optional[dict[str, Any]] = None
    error: Optional[str] = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Return True when the host answered."""
        return self.status is not None

    def version(self, name: str) -> Optional[str]:
        """Return the installed version of bundle ``name`` (None when absent or unknown)."""
        return ((self.status or {}).get("bundles") or {}).get(name, {}).get("version")

    def runs_exactly(self, bundle: BundleRef) -> bool:
        """Return True when the host's active ``bundle.name`` has the same manifest as ``bundle``."""
        info = ((self.status or {}).get("bundles") or {}).get(bundle.name) or {}
        return info.get("manifest_sha256") == bundle.manifest_sha256


@dataclass
class HostResult:
    """One row of the summary: what a host ran before and after, and what happened."""

    host: str
    address: str
    old: dict[str, Optional[str]] = field(default_factory=dict)
    new: dict[str, Optional[str]] = field(default_factory=dict)
    result: str = "planned"     # updated | already | rolled back | refused | failed | unreachable | skipped | planned
    seconds: float = 0.0
    detail: str = ""
    stage: str = ""
    earlier: bool = False       # done by an earlier (resumed) run


@dataclass
class RolloutReport:
    """Every host's result in plan order, and whether the rollout completed."""

    bundles: list[BundleRef]
    results: list[HostResult]
    completed: bool
    stopped_at: Optional[str] = None
    state_file: Optional[Path] = None
    seconds: float = 0.0


# --- talking to one host ------------------------------------------------------------------------
def host_target(host: Host, options: RolloutOptions) -> SshTarget:
    """Return the SshTarget for ``host`` with the rollout's extra ssh options and key."""
    target = host.target(options.connect_timeout, options.ssh_options)
    if options.identity:
        target.identity = options.identity
    return target


def probe(host: Host, options: RolloutOptions) -> Probe:
    """Return the host's ``face-edge status --json``; a Probe with ``error`` when it cannot be had in time."""
    started = time.monotonic()
    target = host_target(host, options)
    cmd = shlex.split(host.command) + ["status", "--json"]
    if host.config:
        cmd += ["--config", host.config]
    try:
        done = target.run(cmd, timeout=options.connect_timeout + PROBE_SLACK_S)
    except PushError as exc:
        return Probe(host, error=str(exc), seconds=time.monotonic() - started)
    seconds = time.monotonic() - started
    if done.returncode == 255:
        return Probe(host, error=explain_failure(target, done.stderr, "ssh"), seconds=seconds)
    if done.returncode == 127:
        return Probe(host, error=f"{host.command!r} is not installed on {host.where()}: run systemd/install.sh "
                                 "there (or set command / face_edge_command in the inventory)", seconds=seconds)
    try:
        status = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        last = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        return Probe(host, error=f"face-edge status failed on {host.where()}: {last}", seconds=seconds)
    return Probe(host, status=status, seconds=seconds)


def probe_all(hosts: Sequence[Host], options: RolloutOptions) -> dict[str, Probe]:
    """Return {host name: Probe} for every host, probed in parallel (at most 16 at a time)."""
    if not hosts:
        return {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(hosts))) as pool:
        probes = list(pool.map(lambda h: probe(h, options), hosts))
    return {p.host.name: p for p in probes}


def health_problem(status: dict[str, Any], bundles: Sequence[BundleRef]) -> Optional[str]:
    """Return why the device is not healthy on ``bundles`` (None when it is).

    Healthy: the service answers and has shown frames, every bundle is installed at its new
    version, the service runs that version of each bundle its config runs, and its last reload
    did not fail.
    """
    service = status.get("service") or {}
    state = service.get("state")
    if state != "running":
        return f"service {state}" + (f" ({service['error']})" if service.get("error") else "")
    if not service.get("ready"):
        return "the service has not processed a frame yet"
    installed = status.get("bundles") or {}
    running = service.get("models") or {}
    for bundle in bundles:
        have = (installed.get(bundle.name) or {}).get("version")
        if have != bundle.version:
            return f"{bundle.name} is at {have!r} on disk, not {bundle.version}"
        if bundle.name in (status.get("configured") or []) and running.get(bundle.name) != bundle.version:
            return f"the service runs {bundle.name} {running.get(bundle.name)!r}, not {bundle.version}"
    reload = service.get("last_reload") or {}
    if reload.get("ok") is False:
        return "the last reload failed: " + "; ".join(reload.get("errors") or [])
    return None


def wait_healthy(host: Host, bundles: Sequence[BundleRef], before: Probe, options: RolloutOptions,
                 sleep: Callable[[float], None] = time.sleep) -> tuple[Optional[str], Optional[Probe]]:
    """Watch the host for ``options.soak`` seconds after an install, then until it is healthy (``health_timeout``).

    Healthy (:func:`health_problem`) and, compared with ``before`` (the probe taken before the
    update), the same service process (a crash restarted by systemd is a failure) with frames
    processed since. Returns (None, last probe) or (the problem, last probe).
    """
    first = (before.status or {}).get("service") or {}
    sleep(max(0.0, options.soak))
    deadline = time.monotonic() + options.health_timeout
    while True:
        last = probe(host, options)
        problem = last.error if not last.ok else health_problem(last.status or {}, bundles)
        now = (last.status or {}).get("service") or {}
        if problem is None and now.get("pid") != first.get("pid"):
            return f"the service restarted (pid {first.get('pid')} -> {now.get('pid')})", last
        if problem is None and int(now.get("frame") or 0) <= int(first.get("frame") or 0):
            problem = f"no frames since the update (frame {now.get('frame')})"
        if problem is None:
            return None, last
        if time.monotonic() >= deadline:
            return f"not healthy within {options.health_timeout:g} s: {problem}", last
        sleep(0.5)


def versions_of(p: Optional[Probe], bundles: Sequence[BundleRef]) -> dict[str, Optional[str]]:
    """Return {bundle name: installed version} as ``p`` saw it (None when unknown)."""
    return {b.name: (p.version(b.name) if p is not None and p.ok else None) for b in bundles}


def roll_host(host: Host, bundles: Sequence[BundleRef], before: Probe, options: RolloutOptions,
              echo: Echo) -> HostResult:
    """Install ``bundles`` on one host, gate on its health, roll it back on failure; return its row."""
    started = time.monotonic()
    row = HostResult(host.name, host.where(), old=versions_of(before, bundles))
    target = host_target(host, options)
    say = lambda line: echo(f"[{host.name}] {line}")  # noqa: E731
    todo = [b for b in bundles if not before.runs_exactly(b)]
    installed: list[BundleRef] = []

    def finish(result: str, detail: str = "", after: Optional[Probe] = None) -> HostResult:
        if after is None and result not in ("updated",):
            after = probe(host, options)   # what the host really runs now, for the summary
        row.new = versions_of(after, bundles) if after is not None else dict(row.old)
        row.result, row.detail, row.seconds = result, detail, time.monotonic() - started
        return row

    if todo:
        service = (before.status or {}).get("service") or {}
        if service.get("state") != "running":
            return finish("failed", f"service {service.get('state')} before the update, so its health cannot be "
                                    "checked: nothing installed; start it (sudo systemctl start face-edge) or leave "
                                    "the host out (--group)", after=before)
    for bundle in todo:
        say(f"installing {bundle.label()}")
        try:
            push_bundles(target, [bundle.path], remote_face_edge=host.command, remote_config=host.config,
                         staging=host.staging, timeout=options.install_timeout, echo=say)
        except PushError as exc:
            undone = _undo(target, host, installed, options, say)
            return finish("failed", f"copy: {exc}{undone}")
        except FaceEdgeError as exc:
            undone = _undo(target, host, installed, options, say)
            kind = "rolled back" if exc.exit_code == 4 and "rolled back" in str(exc) else "refused"
            return finish(kind, f"{_strip_host(str(exc), target, bundle.name)}{undone}")
        installed.append(bundle)
    if not todo:
        problem = health_problem(before.status or {}, bundles)
        return finish("already", f"already runs {', '.join(b.label() for b in bundles)}"
                      + (f" (not healthy: {problem})" if problem else ""), after=before)
    say(f"watching the service for {options.soak:g} s")
    problem, last = wait_healthy(host, bundles, before, options)
    if problem is not None:
        say(f"health gate failed: {problem}; rolling back")
        undone = _undo(target, host, installed, options, say)
        return finish("rolled back", f"health gate: {problem}{undone}")
    return finish("updated", after=last)


def _undo(target: SshTarget, host: Host, installed: Sequence[BundleRef], options: RolloutOptions,
          say: Echo) -> str:
    """Roll back the bundles installed on this host in this rollout (newest first); return a note for the summary."""
    notes = []
    for bundle in reversed(installed):
        try:
            push_rollback(target, bundle.name, remote_face_edge=host.command, remote_config=host.config,
                          timeout=options.install_timeout, echo=say)
            notes.append(f"{bundle.name} rolled back")
        except FaceEdgeError as exc:
            notes.append(f"rollback of {bundle.name} FAILED: {exc}")
    return f"; {', '.join(notes)}" if notes else ""


def _strip_host(message: str, target: SshTarget, name: str) -> str:
    """Return the device's message without push's "HOST refused NAME: " prefix (the table names the host)."""
    for prefix in (f"{target.where()} refused {name}: ", f"{target.where()}: "):
        if message.startswith(prefix):
            return message[len(prefix):]
    return message


# --- plan ----------------------------------------------------------------------------------------
def plan_stages(hosts: Sequence[Host], batch: int, canary: Optional[str]) -> list[tuple[str, list[Host]]]:
    """Return [(stage label, hosts)]: the canary alone, then batches of ``batch`` hosts in inventory order."""
    if not hosts:
        return []
    names = [h.name for h in hosts]
    if canary is not None and canary not in names:
        raise RolloutError(f"--canary {canary}: not among the selected hosts ({', '.join(names)})")
    first = next(h for h in hosts if h.name == (canary or names[0]))
    rest = [h for h in hosts if h is not first]
    stages = [("canary", [first])]
    for i in range(0, len(rest), max(1, batch)):
        stages.append((f"batch {i // max(1, batch) + 1}", rest[i:i + max(1, batch)]))
    return stages


def bundle_refs(paths: Sequence[str | os.PathLike[str]], public_key: Optional[str] = None) -> list[BundleRef]:
    """Return the bundles to roll out, each checked locally first (sha256, and the signature with ``public_key``)."""
    key = load_public_key(public_key) if public_key else None
    refs = []
    for path in paths:
        bundle = load_bundle(Path(path), key)
        refs.append(BundleRef(bundle.path.resolve(), bundle.name, bundle.manifest.version,
                              sha256_file(bundle.path / MANIFEST)))
    names = [r.name for r in refs]
    if len(set(names)) != len(names):
        raise RolloutError(f"two bundles named {sorted(n for n in names if names.count(n) > 1)[0]!r}: push one of them")
    return refs


# --- state (resume) ------------------------------------------------------------------------------
def default_state_file(inventory: Inventory, group: Optional[str]) -> Path:
    """Return where the rollout state of this inventory and group is kept (under $XDG_STATE_HOME/face-edge)."""
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "face-edge" / "rollouts"
    key = hashlib.sha1(f"{inventory.path.resolve()}|{group or 'all'}".encode()).hexdigest()[:10]
    return base / f"{inventory.path.stem}-{group or 'all'}-{key}.json"


class RolloutState:
    """The JSON state file of a rollout: its bundles and every host's result, rewritten atomically after each host."""

    def __init__(self, path: Path, inventory: Inventory, group: Optional[str], bundles: Sequence[BundleRef]):
        self.path = path
        self.lock = threading.Lock()
        self.data: dict[str, Any] = {
            "schema": 1, "inventory": str(inventory.path.resolve()), "group": group,
            "bundles": [{"name": b.name, "version": b.version, "manifest_sha256": b.manifest_sha256} for b in bundles],
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "finished": False, "hosts": {}}

    @staticmethod
    def read(path: Path) -> Optional[dict[str, Any]]:
        """Return the saved state at ``path``, or None when there is none (or it is unreadable)."""
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def adopt(self, saved: dict[str, Any]) -> None:
        """Continue a saved rollout of the same bundles: keep its start time and host results."""
        if saved.get("bundles") != self.data["bundles"]:
            was = ", ".join(f"{b['name']} {b['version']}" for b in saved.get("bundles") or [])
            raise RolloutError(f"--resume: the saved rollout in {self.path} is of {was or 'other bundles'}, not of "
                               f"{', '.join(b['name'] + ' ' + b['version'] for b in self.data['bundles'])}: "
                               "push without --resume to start a new rollout")
        self.data["started"] = saved.get("started", self.data["started"])
        self.data["hosts"] = dict(saved.get("hosts") or {})

    def done(self, host: str) -> Optional[HostResult]:
        """Return the saved row of ``host`` when an earlier run updated it (or found it up to date)."""
        row = self.data["hosts"].get(host)
        if row and row.get("result") in DONE:
            return HostResult(**{k: row[k] for k in HostResult.__dataclass_fields__ if k in row})
        return None

    def save(self, row: Optional[HostResult] = None, finished: Optional[bool] = None) -> None:
        """Record ``row`` (and whether the rollout finished) and rewrite the file atomically."""
        with self.lock:
            if row is not None:
                self.data["hosts"][row.host] = asdict(row)
            if finished is not None:
                self.data["finished"] = finished
            self.data["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(self.data, indent=1), encoding="utf-8")
            os.replace(tmp, self.path)


# --- the rollout ---------------------------------------------------------------------------------
def rollout(inventory: Inventory, bundle_paths: Sequence[str | os.PathLike[str]], options: RolloutOptions,
            group: Optional[str] = None, state_file: Optional[Path] = None, echo: Echo = print) -> RolloutReport:
    """Roll the bundles out to the selected hosts (module docstring); return the report (summary rows).

    Raises nothing for a host that fails: the report says where it stopped (``completed`` False).
    InventoryError/RolloutError for bad input; KeyboardInterrupt after saving the state.
    """
    started = time.monotonic()
    lock = threading.Lock()

    def say(line: str) -> None:
        with lock:
            echo(line)

    bundles = bundle_refs(bundle_paths, options.public_key)
    hosts = inventory.select(group)
    stages = plan_stages(hosts, options.batch, options.canary)
    state = RolloutState(state_file or default_state_file(inventory, group), inventory, group, bundles)
    saved = RolloutState.read(state.path)
    if options.resume:
        if saved is None:
            raise RolloutError(f"--resume: no saved rollout in {state.path}")
        state.adopt(saved)
    elif saved is not None and not saved.get("finished") and not options.dry_run:
        say(f"note: an unfinished rollout saved in {state.path} is replaced by this one (--resume continues it)")

    what = ", ".join(b.label() for b in bundles)
    say(f"rollout of {what} to {len(hosts)} host(s) of {inventory.path.name}"
        f"{f' (group {group})' if group else ''}: canary {stages[0][1][0].name}, then batches of {options.batch}")
    probes = probe_all(hosts, options)
    results = {h.name: HostResult(h.name, h.where(), old=versions_of(probes[h.name], bundles),
                                  new=versions_of(probes[h.name], bundles)) for h in hosts}
    for label, members in stages:
        for h in members:
            results[h.name].stage = label
    unreachable = [p for p in probes.values() if not p.ok]
    for p in unreachable:
        results[p.host.name].result, results[p.host.name].detail = "unreachable", p.error or ""
        results[p.host.name].seconds = p.seconds
    # Hosts an earlier run finished, still on the new bundles, are not touched again.
    for h in hosts:
        earlier = state.done(h.name) if options.resume else None
        if earlier is not None and probes[h.name].ok and all(probes[h.name].runs_exactly(b) for b in bundles):
            earlier.earlier, earlier.stage = True, results[h.name].stage
            results[h.name] = earlier

    ordered = [results[h.name] for _, members in stages for h in members]
    if options.dry_run:
        for row in ordered:
            if row.result == "planned":
                p = probes[row.host]
                state_now = ((p.status or {}).get("service") or {}).get("state")
                row.detail = ("already runs it: left alone" if all(p.runs_exactly(b) for b in bundles)
                              else "install" if state_now == "running"
                              else f"service {state_now}: the rollout would stop here")
        return RolloutReport(bundles, ordered, False, None, None, time.monotonic() - started)
    if unreachable and not options.skip_unreachable:
        names = ", ".join(p.host.name for p in unreachable)
        for row in ordered:
            if row.result == "planned":
                row.result, row.detail = "skipped", "not started: unreachable hosts"
        report = RolloutReport(bundles, ordered, False, unreachable[0].host.name, None, time.monotonic() - started)
        raise UnreachableHosts(f"{len(unreachable)} host(s) unreachable ({names}): nothing was changed; bring them "
                               "back or pass --skip-unreachable", report)

    state.save()
    stopped_at = None
    try:
        for label, members in stages:
            todo = [h for h in members if results[h.name].result == "planned"]
            if not todo:
                continue
            say(f"{label}: {', '.join(h.name for h in todo)}")
            with concurrent.futures.ThreadPoolExecutor(max_workers=len(todo)) as pool:
                futures = {pool.submit(roll_host, h, bundles, probes[h.name], options, say): h for h in todo}
                for future in concurrent.futures.as_completed(futures):
                    row = future.result()
                    row.stage = label
                    results[row.host] = row
                    state.save(row)
                    say(f"[{row.host}] {row.result}" + (f": {row.detail}" if row.detail and row.result not in DONE
                                                         else "") + f" ({row.seconds:.1f} s)")
            failed = [results[h.name] for h in todo if results[h.name].result not in DONE]
            if failed:
                stopped_at = failed[0].host
                break
    except KeyboardInterrupt:
        for row in results.values():
            if row.result == "planned":
                row.result, row.detail = "skipped", "interrupted: --resume continues"
        state.save()
        raise
    for row in results.values():
        if row.result == "planned":
            row.result, row.detail = "skipped", f"rollout stopped at {stopped_at}"
    completed = stopped_at is None and all(r.result in DONE for r in results.values())
    state.save(finished=completed)
    ordered = [results[h.name] for _, members in stages for h in members]
    return RolloutReport(bundles, ordered, completed, stopped_at, state.path, time.monotonic() - started)


class UnreachableHosts(RolloutError):
    """Some selected hosts did not answer the probe; nothing was changed. Carries the report."""

    exit_code = 3

    def __init__(self, message: str, report: RolloutReport):
        super().__init__(message)
        self.report = report


# --- tables --------------------------------------------------------------------------------------
def text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Return ``rows`` as a left-aligned plain-text table under ``headers``."""
    cells = [[str(c) for c in headers]] + [["-" if c is None or c == "" else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _versions_text(versions: dict[str, Optional[str]]) -> str:
    if len(versions) == 1:
        return str(next(iter(versions.values())) or "-")
    return ", ".join(f"{n} {v or '-'}" for n, v in versions.items())


def summary_table(report: RolloutReport) -> str:
    """Return the summary: host, address, stage, old, new, result, seconds; then one line per problem."""
    rows = [(r.host, r.address, r.stage, _versions_text(r.old), _versions_text(r.new),
             r.result + (" (earlier run)" if r.earlier else ""), f"{r.seconds:.1f}") for r in report.results]
    text = text_table(("host", "address", "stage", "old", "new", "result", "seconds"), rows)
    notes = [f"  {r.host}: {r.detail}" for r in report.results
             if r.detail and r.result not in ("updated", "planned", "skipped") and not r.earlier]
    return text + ("\n" + "\n".join(notes) if notes else "")


def status_rows(probes: Sequence[Probe]) -> list[dict[str, Any]]:
    """Return one flat dict per host for ``face-edge fleet status`` (table and --json)."""
    rows = []
    for p in probes:
        row: dict[str, Any] = {"host": p.host.name, "address": p.host.where(), "groups": list(p.host.groups),
                               "reachable": p.ok, "seconds": round(p.seconds, 2)}
        if not p.ok:
            row.update(service="unreachable", last_error=p.error, bundles={})
        else:
            st = p.status or {}
            service = st.get("service") or {}
            row.update(face_edge=st.get("face_edge"), hostname=st.get("hostname"),
                       service=service.get("state"), systemd=service.get("systemd"), pid=service.get("pid"),
                       frame=service.get("frame"), fps=service.get("fps"), running=service.get("models") or {},
                       configured=st.get("configured") or [],
                       bundles={n: {k: v for k, v in info.items() if k in ("version", "previous", "task", "error")}
                                for n, info in (st.get("bundles") or {}).items()},
                       last_error=st.get("last_error"))
        rows.append(row)
    return rows


def status_table(rows: Sequence[dict[str, Any]]) -> str:
    """Return the ``fleet status`` table: host, address, service, fps, bundles (version, previous), last error."""
    table = []
    for r in rows:
        bundles = []
        for name, info in (r.get("bundles") or {}).items():
            version = info.get("version") or "error"
            running = (r.get("running") or {}).get(name)
            live = "" if running in (None, version) else f" (service runs {running})"
            prev = f" (prev {info['previous']})" if info.get("previous") else ""
            bundles.append(f"{name} {version}{prev}{live}")
        service = r.get("service") or "-"
        if r.get("systemd"):
            service += f", systemd {r['systemd']}"
        error = r.get("last_error") or ""
        table.append((r["host"], r["address"], service, "" if r.get("fps") is None else f"{r['fps']:.1f}",
                      "; ".join(bundles), error[:160] + ("..." if len(error) > 160 else "")))
    return text_table(("host", "address", "service", "fps", "bundles", "last error"), table)
