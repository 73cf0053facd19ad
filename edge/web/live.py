"""The page's live view: a frame sink that keeps the newest annotated frame as a JPEG for the browsers watching.

The loop's only cost is :meth:`LiveView.write`: nothing while nobody watches, otherwise a copy of
the frame at most ``web.live_fps`` times a second. JPEG encoding runs on a thread of its own, and
each browser takes the newest JPEG when it is ready for one (a slow browser skips frames; it never
holds up the loop or the other browsers).
"""
from __future__ import annotations

import contextlib
import threading
import time
from typing import Iterator, Optional

import cv2
import numpy as np

MAX_VIEWERS = 4


class LiveView:
    """Frame sink ``web`` (see the module docstring)."""

    name = "web"

    def __init__(self, fps: float = 5.0, quality: int = 70):
        self.interval = 1.0 / fps
        self.quality = int(quality)
        self.viewers = 0
        self.encoded = 0
        self._cond = threading.Condition()
        self._frame: Optional[np.ndarray] = None
        self._jpeg: Optional[bytes] = None
        self._seq = 0
        self._last = 0.0
        self._closed = False
        self._thread = threading.Thread(target=self._encode_loop, name="face-edge-live", daemon=True)
        self._thread.start()

    # ---- the loop's side -----------------------------------------------------------------------
    def write(self, frame: np.ndarray) -> bool:
        """Keep a copy of ``frame`` for the encoder when someone watches and the frame-rate cap allows; True."""
        if not self.viewers:
            return True
        now = time.monotonic()
        if now - self._last < self.interval:
            return True
        self._last = now
        copy = frame.copy()
        with self._cond:
            self._frame = copy
            self._cond.notify_all()
        return True

    def close(self) -> None:
        """Stop encoding and release the browsers waiting for a frame."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # ---- the browsers' side --------------------------------------------------------------------
    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        """Count one browser as watching while inside (frames are only kept while someone watches)."""
        with self._cond:
            self.viewers += 1
        try:
            yield
        finally:
            with self._cond:
                self.viewers -= 1

    def next_jpeg(self, after: int, timeout: float) -> Optional[tuple[int, bytes]]:
        """Return (number, JPEG) of the first frame encoded after number ``after``; None on timeout or close."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or (self._jpeg is not None and self._seq > after), timeout)
            if self._closed or self._jpeg is None or self._seq <= after:
                return None
            return self._seq, self._jpeg

    @property
    def seq(self) -> int:
        """Return the number of the newest encoded frame (0: none yet)."""
        return self._seq

    @property
    def closed(self) -> bool:
        """Return True once the loop has stopped."""
        return self._closed

    # ---- inside ---------------------------------------------------------------------------------
    def _encode_loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or self._frame is not None)
                if self._closed:
                    return
                frame, self._frame = self._frame, None
            ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            if ok:
                with self._cond:
                    self._jpeg = buf.tobytes()
                    self._seq += 1
                    self.encoded += 1
                    self._cond.notify_all()
