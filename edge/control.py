"""The client side of a running face-edge's control socket (status and hot reload).

The service (:mod:`edge.service`) serves the socket; ``face-edge install-bundle`` (:mod:`edge.push`)
and other tools talk to it through :class:`ControlClient`. The protocol is one JSON line each
way; see :mod:`edge.service` for the commands and answers.
"""
from __future__ import annotations

import json
import os
import socket
import time
from typing import Any, Callable, Optional


class ControlClient:
    """Talks to a running face-edge over its control socket (used by install-bundle)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = str(path)

    def request(self, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send one request and return the answer; OSError when the service is not there."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(timeout)
            sock.connect(self.path)
            sock.sendall((json.dumps(payload) + "\n").encode("utf-8"))
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        if not data:
            raise ConnectionError("the service closed the control socket without answering")
        return json.loads(data.decode("utf-8"))

    def status(self, timeout: float = 5.0) -> dict[str, Any]:
        """Return the service's status answer."""
        return self.request({"cmd": "status"}, timeout)

    def reload(self, names: Optional[list[str]], timeout: float) -> dict[str, Any]:
        """Ask for a hot reload of ``names`` (all when None) and return its result."""
        # The service gives up waiting for its loop after ``timeout``; one more second for the answer.
        return self.request({"cmd": "reload", "names": names, "timeout": timeout}, timeout + 1)

    def wait_frames(self, after: int, count: int, timeout: float,
                    sleep: Callable[[float], None] = time.sleep) -> Optional[dict[str, Any]]:
        """Return the status once the loop is ``count`` frames past ``after``; None on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                st = self.status(timeout=max(0.5, deadline - time.monotonic()))
            except (OSError, ValueError):
                st = None
            if st and st.get("frame", -1) >= after + count:
                return st
            sleep(0.1)
        return None
