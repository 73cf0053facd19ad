"""What this device runs: installed bundles and versions, the service's state, the last error.

:func:`device_status` is what ``face-edge status --json`` prints on the Pi and what
``face-edge fleet status`` and the fleet rollout's health gate read over ssh. The install
journal (``<models.dir>/.versions/journal.jsonl``, one JSON line per ``install-bundle`` run:
time, action, bundle, version, outcome) is how "last error" survives the command that failed.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Optional

from . import __version__
from .bundle import MANIFEST, read_manifest, sha256_file
from .errors import FaceEdgeError
from .push import VERSIONS, ModelStore

JOURNAL = "journal.jsonl"
JOURNAL_KEEP = 200           # lines kept when the journal is trimmed
SERVICE_UNIT = "face-edge"


def journal_path(settings: Any) -> Path:
    """Return the install journal's path under ``settings.models.dir``."""
    return Path(settings.models.dir) / VERSIONS / JOURNAL


def record(settings: Any, action: str, name: Optional[str], version: Optional[str], ok: bool, message: str,
           previous: Optional[str] = None) -> None:
    """Append one install/rollback outcome to the journal (best effort: a journal problem never fails an install)."""
    entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "action": action, "name": name, "version": version,
             "previous": previous, "ok": ok, "message": message}
    path = journal_path(settings)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
        if path.stat().st_size > JOURNAL_KEEP * 1024:
            lines = path.read_text(encoding="utf-8").splitlines()[-JOURNAL_KEEP:]
            tmp = path.with_name(path.name + f".tmp{os.getpid()}")
            tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
            os.replace(tmp, path)
    except OSError:
        pass


def read_journal(settings: Any, last: int = 20) -> list[dict[str, Any]]:
    """Return the last ``last`` journal entries, oldest first (unreadable lines are skipped)."""
    try:
        lines = journal_path(settings).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    out = []
    for line in lines[-last:]:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def installed_bundles(settings: Any) -> dict[str, dict[str, Any]]:
    """Return {name: {version, task, previous, versions, manifest_sha256}} for every bundle in models.dir.

    A bundle whose manifest cannot be read is listed with its ``error`` instead of a version.
    """
    store = ModelStore(settings.models.dir)
    out: dict[str, dict[str, Any]] = {}
    if not store.root.is_dir():
        return out
    for entry in sorted(store.root.iterdir()):
        if entry.name.startswith(".") or not (entry.is_dir() or entry.is_symlink()):
            continue
        info: dict[str, Any] = {}
        current = store.current(entry.name)
        if current is None:
            info["error"] = "points to a missing version folder"
        else:
            try:
                manifest = read_manifest(current)
                info.update(version=manifest.version, task=manifest.task,
                            manifest_sha256=sha256_file(current / MANIFEST))
            except FaceEdgeError as exc:
                info["error"] = str(exc)
        previous = store.previous(entry.name)
        if previous is not None:
            try:
                info["previous"] = read_manifest(previous).version
            except FaceEdgeError:
                info["previous"] = previous.name
        folder = store.versions / entry.name
        info["versions"] = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.is_symlink()
                                  and not p.name.startswith(".")) if folder.is_dir() else []
        out[entry.name] = info
    return out


def service_state(settings: Any, timeout: float = 3.0) -> dict[str, Any]:
    """Return the running service's status over its control socket, plus systemd's view when there is one.

    ``state``: running | not running | not answering | no control socket.
    """
    from .service import ControlClient

    out: dict[str, Any] = {"systemd": systemd_state()}
    path = settings.service.control_socket
    if not path:
        out["state"] = "no control socket"
        return out
    if not Path(path).exists():
        out["state"] = "not running"
        return out
    try:
        answer = ControlClient(path).status(timeout=timeout)
    except (ConnectionRefusedError, FileNotFoundError):
        out["state"] = "not running"
        return out
    except (OSError, ValueError) as exc:
        reason = "timed out" if isinstance(exc, socket.timeout) else str(exc)
        out.update(state="not answering", error=f"control socket {path}: {reason}")
        return out
    out["state"] = "running"
    out.update({k: answer.get(k) for k in ("pid", "ready", "frame", "fps", "models", "reloads", "last_reload")})
    return out


def systemd_state(unit: str = SERVICE_UNIT) -> Optional[str]:
    """Return systemd's ActiveState/SubState of ``unit`` (e.g. "active/running"), or None without systemd."""
    if shutil.which("systemctl") is None or not Path("/run/systemd/system").is_dir():
        return None
    try:
        done = subprocess.run(["systemctl", "show", unit, "-p", "ActiveState", "-p", "SubState", "-p", "LoadState"],
                              capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    props = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    if props.get("LoadState") == "not-found":
        return "not installed"
    return f"{props.get('ActiveState', '?')}/{props.get('SubState', '?')}" if props else None


def last_error(service: dict[str, Any], journal: list[dict[str, Any]]) -> Optional[str]:
    """Return the newest problem: the service's failed last reload, else the newest failed journal entry."""
    reload = service.get("last_reload") or {}
    if reload and reload.get("ok") is False:
        return "reload: " + "; ".join(reload.get("errors") or ["failed"])
    if service.get("state") == "not answering":
        return service.get("error")
    for entry in reversed(journal):
        if not entry.get("ok"):
            what = " ".join(str(x) for x in (entry.get("action"), entry.get("name"), entry.get("version")) if x)
            return f"{entry.get('time')} {what}: {entry.get('message')}"
    return None


def device_status(settings: Any) -> dict[str, Any]:
    """Return this device's status: face-edge version, host name, bundles, service state, last error, journal."""
    service = service_state(settings)
    journal = read_journal(settings, last=5)
    return {"face_edge": __version__, "hostname": socket.gethostname(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "models_dir": str(Path(settings.models.dir).resolve()), "configured": list(settings.models.bundles),
            "bundles": installed_bundles(settings), "service": service,
            "last_error": last_error(service, journal), "journal": journal}
