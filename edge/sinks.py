"""Where annotated frames and events go: an OpenCV window, an annotated video file, JSON-lines events.

Running headless means having no window sink. ``cv2.imshow`` without a reachable X or Wayland
display aborts the whole process (an uncatchable Qt/GTK abort), so :func:`make_window` probes the
display first (:mod:`edge.display`) and runs headless, with one warning, when nobody answers.

A recording keeps every frame's aspect: a frame of another size than the first (the next photo of
an image folder, a camera that changed mode) is scaled to fit and padded, never stretched.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
from pathlib import Path
from typing import Any, Optional, Protocol, TextIO

import cv2
import numpy as np

from .display import probe_display
from .errors import ConfigError

log = logging.getLogger("face-edge.sink")

QUIT_KEYS = (ord("q"), ord("Q"), 27)   # q or Esc


class FrameSink(Protocol):
    """Takes annotated frames."""

    name: str

    def write(self, frame: np.ndarray) -> bool:
        """Show or store ``frame``; return False when the user asked to quit."""

    def close(self) -> None:
        """Release the window or file."""


def display_available() -> bool:
    """Return True when a window can be opened: an X11 or Wayland display is set and answers."""
    return probe_display().ok


class WindowSink:
    """An OpenCV window; q or Esc (or closing the window) asks to quit."""

    name = "window"

    def __init__(self, title: str = "face-edge", fullscreen: bool = False):
        self.title = title
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        if fullscreen:
            cv2.setWindowProperty(title, cv2.WND_PROP_FULLSCREEN, cv2.WINDOW_FULLSCREEN)
        self._shown = False

    def write(self, frame: np.ndarray) -> bool:
        """Show ``frame``; return False on q/Esc or when the window was closed."""
        cv2.imshow(self.title, frame)
        key = cv2.waitKey(1) & 0xFF
        if key in QUIT_KEYS:
            return False
        if self._shown and cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            return False
        self._shown = True
        return True

    def close(self) -> None:
        """Close the window."""
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass


def make_window(title: str, fullscreen: bool = False) -> Optional[WindowSink]:
    """Return a window sink, or None (one warning) when there is no display that answers."""
    probe = probe_display()
    if not probe.ok:
        log.warning("%s: running headless", probe.detail)
        return None
    try:
        sink = WindowSink(title, fullscreen)
    except cv2.error as exc:
        log.warning("cannot open a window (%s): running headless", str(exc).strip().splitlines()[-1])
        return None
    log.info("window sink: showing frames in window %r (q or Esc quits)", title)
    return sink


def fourcc_for(path: Path) -> str:
    """Return the FourCC used for a video file name: MJPG for .avi, mp4v otherwise."""
    return "MJPG" if path.suffix.lower() == ".avi" else "mp4v"


class VideoWriterSink:
    """Writes annotated frames to a video file (opened on the first frame, at its size)."""

    name = "record"

    def __init__(self, path: str | Path, fps: float = 15.0):
        self.path = Path(path)
        self.fps = float(fps) if fps and fps > 0 else 15.0
        self._writer: Optional[cv2.VideoWriter] = None
        self._size: Optional[tuple[int, int]] = None
        self.frames = 0
        if self.path.parent and not self.path.parent.exists():
            raise ConfigError(f"output.record: folder {self.path.parent} does not exist")

    def write(self, frame: np.ndarray) -> bool:
        """Append ``frame`` (resized to the first frame's size if it differs)."""
        h, w = frame.shape[:2]
        if self._writer is None:
            self._size = (w, h)
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*fourcc_for(self.path)),
                                           self.fps, self._size)
            if not self._writer.isOpened():
                self._writer = None
                raise ConfigError(f"output.record: OpenCV cannot write {self.path} "
                                  "(use .mp4 or .avi in a writable folder)")
            log.info("recording annotated video to %s (%dx%d, %.0f fps)", self.path, w, h, self.fps)
        if (w, h) != self._size:
            frame = letterbox(frame, self._size)
        self._writer.write(frame)
        self.frames += 1
        return True

    def close(self) -> None:
        """Finish the file."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None


def letterbox(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Return ``frame`` scaled to fit ``size`` (width, height) with its aspect kept, centred on black."""
    width, height = size
    h, w = frame.shape[:2]
    scale = min(width / w, height / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    out = np.zeros((height, width, 3), np.uint8)
    x0, y0 = (width - new_w) // 2, (height - new_h) // 2
    scaled = cv2.resize(frame, (new_w, new_h), interpolation=interp)
    out[y0:y0 + new_h, x0:x0 + new_w] = scaled if scaled.ndim == 3 else scaled[:, :, None]
    return out


def iso_time(t: float) -> str:
    """Return the UTC ISO-8601 time of a time.time() value, to the millisecond."""
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).isoformat(timespec="milliseconds")


class EventSink:
    """Appends one JSON object per line to a file: a person ``appear``s or ``leave``s."""

    name = "events"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self._fh: Optional[TextIO] = open(self.path, "a", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"output.events: cannot write {self.path} ({exc.strerror})") from None
        self.count = 0
        log.info("writing person events to %s", self.path)

    def emit(self, event: str, t: float, **fields: Any) -> None:
        """Write one event line: {"event", "time" (ISO UTC), "t" (unix s), **fields}."""
        if self._fh is None:
            return
        record = {"event": event, "time": iso_time(t), "t": round(t, 3), **fields}
        self._fh.write(json.dumps(record, default=_jsonable) + "\n")
        self._fh.flush()
        self.count += 1

    def close(self) -> None:
        """Close the file."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
