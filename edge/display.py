"""Can a window open here? A real probe of the display, made before the first ``cv2.imshow``.

OpenCV's Qt (or GTK) backend aborts the whole process (an uncatchable abort, exit 134) when
``DISPLAY`` names a display nobody serves: an ssh session with a stale variable, a desktop not
up yet under ``install.sh --display``. So a set variable is not enough: :func:`probe_display`
connects to the X server the way the toolkit will (``XOpenDisplay`` from libX11, which honours
Xauthority; a plain socket connect when libX11 is absent), or to the Wayland socket, with a
time limit, and says why not when it cannot.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

PROBE_TIMEOUT_S = 3.0
X11_TCP_PORT = 6000


@dataclass(frozen=True)
class DisplayProbe:
    """The answer of :func:`probe_display`: ``ok`` and a short text saying which display or why not."""

    ok: bool
    detail: str


def probe_display(env: Optional[Mapping[str, str]] = None, timeout: float = PROBE_TIMEOUT_S) -> DisplayProbe:
    """Return whether a window can be opened: an X display that answers, or a Wayland socket that
    accepts a connection (when OpenCV's GUI backend can use Wayland)."""
    env = os.environ if env is None else env
    x11 = env.get("DISPLAY", "")
    wayland = env.get("WAYLAND_DISPLAY", "")
    if not x11 and not wayland:
        return DisplayProbe(False, "no display (DISPLAY and WAYLAND_DISPLAY are unset)")
    if x11:
        answered = _within(timeout, lambda: _x11_answers(x11))
        if answered:
            return DisplayProbe(True, f"X display {x11} answers")
        if not wayland:
            return DisplayProbe(False, f"DISPLAY={x11} is set but no X server answers there "
                                       "(not running, or not this user's)")
    if _opencv_needs_x11():
        return DisplayProbe(False, f"WAYLAND_DISPLAY={wayland} is set but OpenCV's Qt has only its X11 plugin: "
                                   "set DISPLAY (XWayland)")
    path = Path(wayland) if wayland.startswith("/") else Path(env.get("XDG_RUNTIME_DIR", "/run/user/0")) / wayland
    if _within(timeout, lambda: _unix_accepts(str(path))):
        return DisplayProbe(True, f"Wayland display {wayland} answers")
    return DisplayProbe(False, f"WAYLAND_DISPLAY={wayland} is set but nothing listens at {path}")


def _within(timeout: float, probe) -> bool:
    """Return probe()'s answer, or False when it takes longer than ``timeout`` (e.g. an unreachable host)."""
    answer: list[bool] = []
    thread = threading.Thread(target=lambda: answer.append(bool(probe())), name="display probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(answer and answer[0])


def _x11_answers(display: str) -> bool:
    lib = _libx11()
    if lib is not None:
        handle = lib.XOpenDisplay(display.encode())
        if handle:
            lib.XCloseDisplay(handle)
            return True
        return False
    return _x11_socket_accepts(display)


def _libx11() -> Optional[ctypes.CDLL]:
    name = ctypes.util.find_library("X11")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    lib.XOpenDisplay.restype = ctypes.c_void_p
    lib.XOpenDisplay.argtypes = [ctypes.c_char_p]
    lib.XCloseDisplay.argtypes = [ctypes.c_void_p]
    return lib


def _x11_socket_accepts(display: str) -> bool:
    """Return True when the X server socket of ``display`` ([host]:N[.S]) accepts a connection."""
    match = re.fullmatch(r"(?:unix)?(?P<host>[^:]*):(?P<num>\d+)(?:\.\d+)?", display)
    if match is None:
        return False
    host, num = match["host"], int(match["num"])
    if host in ("", "unix"):
        return _unix_accepts(f"/tmp/.X11-unix/X{num}") or _unix_accepts(f"\0/tmp/.X11-unix/X{num}")
    try:
        with socket.create_connection((host, X11_TCP_PORT + num), timeout=PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def _unix_accepts(path: str) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(PROBE_TIMEOUT_S)
            sock.connect(path)
            return True
    except OSError:
        return False


def _opencv_needs_x11() -> bool:
    """Return True when OpenCV's bundled Qt can only draw on X11 (the pip wheels ship only the xcb plugin)."""
    import cv2

    platforms = Path(cv2.__file__).parent / "qt" / "plugins" / "platforms"
    return platforms.is_dir() and not any("wayland" in p.name for p in platforms.iterdir())
