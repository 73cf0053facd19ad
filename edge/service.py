"""systemd integration of a running pipeline: sd_notify, watchdog, hot reload, clean stop.

``attach(pipeline, settings)`` hooks a :class:`Service` onto a pipeline's ``on_frame``
callbacks. From the frame loop it sends ``READY=1`` after the first frame, ``WATCHDOG=1``
pings (so a stuck camera or loop stops pinging and systemd restarts the unit) and a
``STATUS=`` line. SIGHUP (``systemctl reload face-edge``) and the control socket ask for
a hot reload: a worker thread has the pipeline load the new bundles beside the old ones
(the loop keeps running meanwhile), the loop swaps them in between two frames, and then, on
the thread where the models run (the pipeline's model worker), each reloaded model is run on
its bundle's golden faces. So "healthy" means the model that now answers faces reproduces the
outputs recorded at conversion. The camera stays open throughout. SIGTERM stops the loop cleanly.

sd_notify is written here over the NOTIFY_SOCKET unix datagram socket (no dependency).

Control socket protocol (``service.control_socket``, a unix stream socket): the client
sends one JSON line, the service answers one JSON line.

- ``{"cmd": "status"}`` -> ``{"ok": true, "pid", "frame", "fps", "ready", "models": {name: version},
  "reloads", "last_reload"}``
- ``{"cmd": "reload", "names": [..] | null, "timeout": s}`` -> ``{"ok", "errors": [..],
  "models": {name: version}, "golden": {name: {"ok", "max_error", "detail"}}, "frame"}``
"""
from __future__ import annotations

import json
import logging
import os
import queue
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from .control import ControlClient  # noqa: F401  (re-exported: where the client used to live)
from .push import GOLDEN_MISSING, compare_golden

log = logging.getLogger("face-edge.service")

STATUS_EVERY_S = 5.0
RELOAD_WAIT_S = 60.0


def notify(message: str, socket_path: Optional[str] = None) -> bool:
    """Send one sd_notify ``message`` to ``socket_path`` or $NOTIFY_SOCKET; return False when there is none."""
    path = socket_path if socket_path is not None else os.environ.get("NOTIFY_SOCKET", "")
    if not path:
        return False
    if path.startswith("@"):  # abstract namespace socket
        path = "\0" + path[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(path)
            sock.sendall(message.encode("utf-8"))
    except OSError as exc:
        log.debug("sd_notify to %s failed: %s", path, exc)
        return False
    return True


def watchdog_interval() -> Optional[float]:
    """Return the seconds between watchdog pings systemd asks for (half of WatchdogSec), or None."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) <= 0:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None  # the variable was meant for another process (e.g. inherited by a child)
    return int(usec) / 2e6


def loaded_models(pipeline: Any) -> dict[str, Any]:
    """Return {bundle name: FaceModel} of the models the pipeline runs now."""
    models = getattr(pipeline, "models", None)
    if models is None:
        return {}
    if isinstance(models, dict):
        return dict(models)
    return {m.name: m for m in models}


def model_versions(pipeline: Any) -> dict[str, str]:
    """Return {bundle name: manifest version} of the models the pipeline runs now."""
    return {name: str(m.manifest.version) for name, m in loaded_models(pipeline).items()}


@dataclass
class _ReloadRequest:
    names: Optional[list[str]]
    done: threading.Event = field(default_factory=threading.Event)
    result: dict[str, Any] = field(default_factory=dict)


@dataclass
class _SwapCheck:
    """Run on the loop's thread once the reloaded models are swapped in."""

    names: Optional[list[str]]
    done: threading.Event = field(default_factory=threading.Event)
    models: dict[str, str] = field(default_factory=dict)
    golden: dict[str, Any] = field(default_factory=dict)


class Service:
    """The systemd side of one running pipeline (see the module docstring)."""

    def __init__(self, pipeline: Any, control_socket: Optional[str] = None, watchdog: bool = True,
                 notify_socket: Optional[str] = None, golden_faces: int = 4):
        self.pipeline = pipeline
        self.control_socket = control_socket
        self.watchdog = watchdog
        self.notify_socket = notify_socket
        self.golden_faces = golden_faces
        self.ready = False
        self.frame = -1
        self.fps = 0.0
        self.reloads = 0
        self.last_reload: dict[str, Any] = {}
        self._requests: "queue.Queue[_ReloadRequest]" = queue.Queue()
        self._checks: "queue.Queue[_SwapCheck]" = queue.Queue()
        self._worker: Optional[threading.Thread] = None
        self._interval = watchdog_interval() if watchdog else None
        self._last_ping = 0.0
        self._last_status = 0.0
        self._fps_mark = (time.monotonic(), 0)
        self._server: Optional[socket.socket] = None
        self._server_thread: Optional[threading.Thread] = None
        self._closing = threading.Event()
        self._old_handlers: dict[int, Any] = {}
        self.reporters: list[Any] = []   # integrations (edge.outputs): status() -> dict, status_line() -> str

    # --- attaching -------------------------------------------------------------------------
    def attach(self) -> "Service":
        """Hook onto the pipeline's frame loop, install SIGHUP/SIGTERM handlers, open the socket; return self."""
        self.pipeline.on_frame.append(self.on_frame)
        if threading.current_thread() is threading.main_thread():
            for sig, handler in ((signal.SIGHUP, self._on_sighup), (signal.SIGTERM, self._on_sigterm)):
                self._old_handlers[sig] = signal.signal(sig, handler)
        self._worker = threading.Thread(target=self._reload_worker, name="face-edge-reload", daemon=True)
        self._worker.start()
        if self.control_socket:
            self._open_control_socket(self.control_socket)
        return self

    def close(self) -> None:
        """Tell systemd we stop, restore signal handlers, close and remove the control socket."""
        notify("STOPPING=1", self.notify_socket)
        self._closing.set()
        for sig, handler in self._old_handlers.items():
            try:
                signal.signal(sig, handler)
            except (ValueError, TypeError):
                pass
        self._old_handlers.clear()
        if self._server is not None:
            try:
                self._server.close()
            finally:
                self._server = None
                if self.control_socket:
                    try:
                        os.unlink(self.control_socket)
                    except OSError:
                        pass
        for thread in (self._server_thread, self._worker):
            if thread is not None:
                thread.join(timeout=2)
        if self.on_frame in getattr(self.pipeline, "on_frame", []):
            self.pipeline.on_frame.remove(self.on_frame)
        # Anyone still waiting for a reload gets an answer rather than a timeout.
        for pending in (self._requests, self._checks):
            while True:
                try:
                    item = pending.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, _ReloadRequest):
                    item.result = {"ok": False, "errors": ["face-edge is stopping"]}
                item.done.set()

    # --- signals (keep handlers tiny: they run between bytecodes of the main thread) --------
    def _on_sighup(self, signum: int, frame: Any) -> None:
        self._requests.put(_ReloadRequest(names=None))

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        notify("STOPPING=1", self.notify_socket)
        self.pipeline.stop()

    # --- the frame loop ------------------------------------------------------------------------
    def on_frame(self, pipeline: Any, frame_index: int) -> None:
        """Frame-loop callback: READY after the first frame, watchdog pings, status, pending reloads."""
        now = time.monotonic()
        self.frame = frame_index
        if not self.ready:
            self.ready = True
            notify(f"READY=1\nSTATUS={self.status_line()}\nMAINPID={os.getpid()}", self.notify_socket)
            self._last_status = now
        if self._interval is not None and now - self._last_ping >= self._interval:
            notify("WATCHDOG=1", self.notify_socket)
            self._last_ping = now
        mark_t, mark_f = self._fps_mark
        if now - mark_t >= 1.0:
            self.fps = (frame_index - mark_f) / (now - mark_t)
            self._fps_mark = (now, frame_index)
        if now - self._last_status >= STATUS_EVERY_S:
            notify(f"STATUS={self.status_line()}", self.notify_socket)
            self._last_status = now
        # The pipeline swaps reloaded models in at the start of a frame: once nothing is pending,
        # the models answering frames are the new ones. Their golden faces are replayed where they
        # run (the model worker's thread; inline for a pipeline without one), not holding up the loop.
        if getattr(pipeline, "_pending", None) is None:
            while True:
                try:
                    check = self._checks.get_nowait()
                except queue.Empty:
                    break
                models = loaded_models(pipeline)
                check.models = {n: str(m.manifest.version) for n, m in models.items()}
                names = [n for n in (check.names if check.names is not None else list(models)) if n in models]
                run_on_models = getattr(pipeline, "call_on_model_thread", None)
                if run_on_models is None:
                    self._run_golden(check, models, names)
                else:
                    run_on_models(lambda c=check, m=models, n=names: self._run_golden(c, m, n))

    def _run_golden(self, check: "_SwapCheck", models: dict[str, Any], names: list[str]) -> None:
        try:
            for name in names:
                check.golden[name] = self._check_golden(models[name])
        finally:
            check.done.set()

    def _reload_worker(self) -> None:
        while not self._closing.is_set():
            try:
                req = self._requests.get(timeout=0.5)
            except queue.Empty:
                continue
            req.result = self._reload(req.names)
            req.done.set()

    def _reload(self, names: Optional[list[str]]) -> dict[str, Any]:
        notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}", self.notify_socket)
        started = time.monotonic()
        settings = getattr(self.pipeline, "settings", None)
        if names is not None and settings is not None:  # a bundle the config does not run stays unloaded
            names = [n for n in names if n in settings.models.bundles]
        try:
            errors = [str(e) for e in (self.pipeline.reload_models(names) or [])]
        except Exception as exc:  # a reload must never take the running loop down
            errors = [f"reload failed: {type(exc).__name__}: {exc}"]
        check = _SwapCheck(names)
        self._checks.put(check)
        if not check.done.wait(RELOAD_WAIT_S):
            errors.append(f"the frame loop did not swap the reloaded models in within {RELOAD_WAIT_S:g} s")
        golden = check.golden
        bad = [f"{n}: golden check failed ({g['detail']})" for n, g in golden.items() if g["ok"] is False]
        self.reloads += 1
        result = {"ok": not errors and not bad, "errors": errors + bad,
                  "models": check.models or model_versions(self.pipeline),
                  "golden": golden, "frame": self.frame,
                  "seconds": round(time.monotonic() - started, 3)}
        self.last_reload = {k: result[k] for k in ("ok", "errors", "models", "frame")}
        for err in result["errors"]:
            log.error("reload: %s", err)
        notify(f"READY=1\nSTATUS={self.status_line()}", self.notify_socket)
        return result

    def _check_golden(self, model: Any) -> dict[str, Any]:
        try:
            report = compare_golden(model, max_faces=self.golden_faces)
        except Exception as exc:
            return {"ok": False, "max_error": None, "detail": f"{type(exc).__name__}: {exc}"}
        if report is GOLDEN_MISSING:
            return {"ok": None, "max_error": None, "detail": "bundle has no golden.npz"}
        return {"ok": report.ok, "max_error": report.max_error, "detail": report.detail}

    # --- status ------------------------------------------------------------------------------
    def status_line(self) -> str:
        """Return the one-line STATUS= text: frame count, fps and model versions."""
        models = ", ".join(f"{n}@{v}" for n, v in sorted(model_versions(self.pipeline).items()))
        extra = "".join(f"; {line}" for line in (_quiet(r.status_line) for r in self.reporters) if line)
        return f"frame {max(self.frame, 0)}, {self.fps:.1f} fps, models: {models or 'none'}{extra}"

    def status(self) -> dict[str, Any]:
        """Return the status answer of the control socket."""
        out = {"ok": True, "pid": os.getpid(), "ready": self.ready, "frame": self.frame,
               "fps": round(self.fps, 2), "models": model_versions(self.pipeline),
               "reloads": self.reloads, "last_reload": self.last_reload}
        for reporter in self.reporters:
            out.setdefault("integrations", {}).update(_quiet(reporter.status) or {})
        return out

    def request_reload(self, names: Optional[list[str]] = None, timeout: float = RELOAD_WAIT_S) -> dict[str, Any]:
        """Queue a reload and return its result once the loop runs the reloaded models (or a timeout error)."""
        req = _ReloadRequest(names=names)
        self._requests.put(req)
        if not req.done.wait(timeout):
            return {"ok": False, "errors": [f"the frame loop did not pick up the reload within {timeout:g} s"],
                    "frame": self.frame}
        return req.result

    # --- control socket -------------------------------------------------------------------
    def _open_control_socket(self, path: str) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.unlink(path)  # a stale socket from a killed run
        except FileNotFoundError:
            pass
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        server.bind(path)
        # Group members (the admins who push models) may talk to it; others may not.
        os.chmod(path, 0o660)
        server.listen(4)
        server.settimeout(0.5)
        self._server = server
        self._server_thread = threading.Thread(target=self._serve, name="face-edge-control", daemon=True)
        self._server_thread.start()

    def _serve(self) -> None:
        while not self._closing.is_set() and self._server is not None:
            try:
                conn, _ = self._server.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                try:
                    self._handle(conn)
                except OSError as exc:
                    log.debug("control socket client went away: %s", exc)

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        data = b""
        while not data.endswith(b"\n") and len(data) < 65536:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        try:
            request = json.loads(data.decode("utf-8") or "{}")
            cmd = request.get("cmd")
        except (ValueError, AttributeError):
            request, cmd = {}, None
        if cmd == "status":
            answer = self.status()
        elif cmd == "reload":
            names = request.get("names")
            timeout = float(request.get("timeout") or RELOAD_WAIT_S)
            answer = self.request_reload(list(names) if names else None, timeout)
        else:
            answer = {"ok": False, "errors": ["unknown command: send {\"cmd\": \"status\"|\"reload\"}"]}
        conn.settimeout(10)
        conn.sendall((json.dumps(answer) + "\n").encode("utf-8"))


def _quiet(call: Callable[[], Any]) -> Any:
    """Return ``call()``, or None when it raises (a status report must never break the loop or the socket)."""
    try:
        return call()
    except Exception as exc:
        log.debug("status reporter failed: %s", exc)
        return None


def attach(pipeline: Any, settings: Any) -> Service:
    """Attach a Service to ``pipeline`` using ``settings.service``; return it (call ``close()`` when done)."""
    svc = settings.service
    return Service(pipeline, control_socket=svc.control_socket, watchdog=svc.watchdog).attach()
