"""Where frames come from: USB/network cameras, the Pi camera, video files, image folders, the demo clip.

Every source follows the :class:`Source` protocol: ``open()``, ``read()`` (the newest frame,
or None), ``close()``, plus ``name``, ``is_live``, ``ended`` and ``lost``. Live cameras are
read by a background thread that keeps only the newest frame, so a slow loop never falls
behind the camera; a camera that stops delivering is released and reopened with
exponential back-off (capped at ``source.reconnect_max_s``) while the loop keeps running.

Which kind of source a URI means is decided by a registry (like Frigate's detectors):
:func:`register_source` adds a kind, :func:`open_source` picks the first kind whose
matcher accepts the URI.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Protocol, runtime_checkable

import cv2
import numpy as np

from .config import SourceSettings
from .errors import SourceError

log = logging.getLogger("face-edge.source")

DEMO_CLIP = Path(__file__).parent / "assets" / "demo.mp4"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".webp", ".tif", ".tiff")
LOST_AFTER_FAILED_READS = 5       # consecutive failed grabs before a camera counts as lost
FIRST_FRAME_TIMEOUT_S = 5.0       # a camera that opens but sends nothing this long is an error
STREAM_URI = re.compile(r"(rtsp|rtmp|https?)://")


@runtime_checkable
class Source(Protocol):
    """A stream of BGR frames."""

    name: str
    is_live: bool

    def open(self) -> None:
        """Open the device or file; SourceError with one line when it cannot be opened."""

    def read(self, timeout: float = 1.0) -> Optional[np.ndarray]:
        """Return the next (for live sources: the newest) frame, or None when none is available."""

    def close(self) -> None:
        """Release the device or file; safe to call twice."""

    @property
    def ended(self) -> bool:
        """Return True when a finite source has no more frames (never for live cameras)."""

    @property
    def lost(self) -> bool:
        """Return True while a live camera is lost and being reopened."""


# ---- live cameras ------------------------------------------------------------------------

class LiveCamera:
    """Base of live sources: a reader thread keeps only the newest frame and reopens a lost device.

    A camera is *lost* when its reads fail (unplugged, stream closed) and *stalled* when it stays
    open but sends no frame for ``stall_s`` seconds (a hung driver or network stream). Both are
    logged and the device is reopened with exponential back-off; a reader stuck in a blocking
    read is abandoned (it releases its handle when the read returns) and a fresh one takes over.

    Subclasses implement ``_open_device() -> handle``, ``_grab(handle) -> frame or None``
    and ``_release(handle)``.
    """

    is_live = True
    is_still = False

    def __init__(self, name: str, reconnect_max_s: float = 10.0, stall_s: float = 5.0):
        self.name = name
        self.reconnect_max_s = float(reconnect_max_s)
        self.stall_s = float(stall_s)
        self._cond = threading.Condition()
        self._frame: Optional[np.ndarray] = None
        self._seq = 0
        self._read_seq = 0
        self._lost = False
        self._last_frame_t = time.monotonic()
        self._generation = 0           # bumped when a stalled reader is abandoned
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.reconnects = 0
        self.stalls = 0

    # subclass hooks
    def _open_device(self) -> Any:
        raise NotImplementedError

    def _grab(self, handle: Any) -> Optional[np.ndarray]:
        raise NotImplementedError

    def _release(self, handle: Any) -> None:
        raise NotImplementedError

    def open(self) -> None:
        """Open the camera, wait for its first frame and start the reader thread."""
        handle = self._open_device()        # raises SourceError when the device is not there
        deadline = time.monotonic() + FIRST_FRAME_TIMEOUT_S
        frame = self._grab(handle)
        while frame is None and time.monotonic() < deadline:
            time.sleep(0.05)
            frame = self._grab(handle)
        if frame is None:
            self._release(handle)
            raise SourceError(f"camera {self.name} opened but sent no frame within {FIRST_FRAME_TIMEOUT_S:.0f} s")
        self._publish(frame)
        self._stop.clear()
        self._start_reader(handle)

    def _start_reader(self, handle: Any) -> None:
        generation = self._generation
        self._thread = threading.Thread(target=self._run, args=(handle, generation), name=f"reader {self.name}",
                                        daemon=True)
        self._thread.start()

    def _publish(self, frame: np.ndarray) -> None:
        with self._cond:
            self._frame = frame
            self._seq += 1
            self._last_frame_t = time.monotonic()
            self._cond.notify_all()

    def _current(self, generation: int) -> bool:
        return not self._stop.is_set() and generation == self._generation

    def _run(self, handle: Any, generation: int) -> None:
        failures = 0
        while self._current(generation):
            if handle is None:
                handle = self._reconnect(generation)
                if handle is None:
                    return
            frame = None
            try:
                frame = self._grab(handle)
            except Exception as exc:  # a driver error is a lost camera, not a crash
                log.debug("camera %s: grab failed: %s", self.name, exc)
            if not self._current(generation):
                break              # abandoned while blocked in the read: a fresh reader took over
            if frame is not None and frame.size:
                failures = 0
                self._publish(frame)
                continue
            failures += 1
            if failures < LOST_AFTER_FAILED_READS:
                time.sleep(0.01)
                continue
            self._safe_release(handle)
            self._set_lost(f"camera {self.name} lost, reconnecting (back-off up to {self.reconnect_max_s:.0f} s)")
            handle = None
            failures = 0
        if handle is not None:
            self._safe_release(handle)

    def _safe_release(self, handle: Any) -> None:
        try:
            self._release(handle)
        except Exception as exc:
            log.debug("camera %s: release failed: %s", self.name, exc)

    def _set_lost(self, message: str) -> None:
        with self._cond:
            self._lost = True
            self._cond.notify_all()
        log.warning(message)

    def _reconnect(self, generation: int) -> Any:
        """Reopen the device with exponential back-off; return the handle (None when stopped or abandoned)."""
        delay = 0.25
        while not self._stop.wait(delay) and generation == self._generation:
            try:
                handle = self._open_device()
                frame = self._grab(handle)
                if frame is not None and frame.size and self._current(generation):
                    self.reconnects += 1
                    with self._cond:
                        self._lost = False
                    self._publish(frame)
                    log.warning("camera %s is back (reconnect %d)", self.name, self.reconnects)
                    return handle
                self._safe_release(handle)
            except Exception as exc:
                log.debug("camera %s: reopen failed: %s", self.name, exc)
            delay = min(self.reconnect_max_s, delay * 2)
        return None

    def _check_stall(self) -> None:
        """Abandon a reader that has sent no frame for ``stall_s`` and start reopening the camera."""
        with self._cond:
            if self._lost or self._stop.is_set() or self._thread is None:
                return
            silent = time.monotonic() - self._last_frame_t
            if silent < self.stall_s:
                return
            self._lost = True
            self._generation += 1
            self.stalls += 1
        log.warning("camera stalled: %s sent no frame for %.1f s, reopening it", self.name, silent)
        self._start_reader(None)

    def read(self, timeout: float = 1.0) -> Optional[np.ndarray]:
        """Return the newest frame not returned before; None after ``timeout`` s or while lost."""
        with self._cond:
            if self._seq == self._read_seq:
                self._cond.wait_for(lambda: self._seq != self._read_seq or self._stop.is_set(), timeout=timeout)
            if self._seq != self._read_seq:
                self._read_seq = self._seq
                return self._frame
        self._check_stall()
        return None

    @property
    def lost(self) -> bool:
        """Return True while the camera is lost or stalled and being reopened."""
        return self._lost

    @property
    def ended(self) -> bool:
        """Live cameras never end."""
        return False

    def close(self) -> None:
        """Stop the reader thread and release the camera (a reader stuck in a read releases it when that returns)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None


class UsbCamera(LiveCamera):
    """A V4L2/USB (or network) camera read with cv2.VideoCapture at a requested size and rate."""

    def __init__(self, device: int | str, width: int = 640, height: int = 480, fps: int = 30,
                 reconnect_max_s: float = 10.0, stall_s: float = 5.0):
        super().__init__(f"usb:{device}" if isinstance(device, int) else str(device), reconnect_max_s, stall_s)
        self.device = device
        self.width, self.height, self.fps = width, height, fps

    def _open_device(self) -> cv2.VideoCapture:
        dev = self.device
        if isinstance(dev, str) and dev.startswith("/dev/") and not os.path.exists(dev):
            raise SourceError(f"camera {dev} does not exist (is it plugged in? `ls /dev/video*` lists cameras)")
        if _is_v4l2(dev):
            cap = cv2.VideoCapture(dev, cv2.CAP_V4L2)
        elif _is_stream(dev):
            # A network stream's open and reads give up after stall_s instead of FFmpeg's 30 s, so a
            # reader abandoned by a stall ends soon and its connection is closed.
            ms = int(max(1.0, self.stall_s) * 1000)
            cap = cv2.VideoCapture(dev, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms,
                                                        cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
        else:
            cap = cv2.VideoCapture(dev)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"camera {self.name} cannot be opened (missing, busy, or no permission: "
                              "is the user in the 'video' group?)")
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        cap.set(cv2.CAP_PROP_FPS, self.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return cap

    def _grab(self, handle: cv2.VideoCapture) -> Optional[np.ndarray]:
        ok, frame = handle.read()
        return frame if ok else None

    def _release(self, handle: cv2.VideoCapture) -> None:
        handle.release()


def _is_v4l2(dev: int | str) -> bool:
    return os.name == "posix" and (isinstance(dev, int) or str(dev).startswith("/dev/video"))


def _is_stream(dev: int | str) -> bool:
    return isinstance(dev, str) and bool(STREAM_URI.match(dev))


class PiCamera(LiveCamera):
    """The Raspberry Pi camera through picamera2 (imported only when this source opens)."""

    def __init__(self, width: int = 640, height: int = 480, fps: int = 30, reconnect_max_s: float = 10.0,
                 stall_s: float = 5.0):
        super().__init__("picamera", reconnect_max_s, stall_s)
        self.width, self.height, self.fps = width, height, fps

    def _open_device(self) -> Any:
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise SourceError("picamera: the picamera2 package is not installed; it exists on Raspberry Pi OS "
                              "(sudo apt install python3-picamera2) - elsewhere use a USB camera index") from None
        try:
            cam = Picamera2()
            # "RGB888" in picamera2 is B,G,R byte order in memory: what OpenCV calls BGR.
            config = cam.create_video_configuration(
                main={"size": (self.width, self.height), "format": "RGB888"},
                controls={"FrameRate": float(self.fps)})
            cam.configure(config)
            cam.start()
        except Exception as exc:
            raise SourceError(f"picamera: cannot start the camera ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
        return cam

    def _grab(self, handle: Any) -> Optional[np.ndarray]:
        frame = handle.capture_array("main")
        if frame is None:
            return None
        return frame[:, :, :3] if frame.ndim == 3 and frame.shape[2] == 4 else frame

    def _release(self, handle: Any) -> None:
        try:
            handle.stop()
        finally:
            handle.close()


# ---- finite sources ----------------------------------------------------------------------

class _Pacer:
    """Sleeps so frames come out at ``fps`` (realtime playback); does nothing when fps is 0."""

    def __init__(self, fps: float):
        self.period = 1.0 / fps if fps > 0 else 0.0
        self.next_t: Optional[float] = None

    def wait(self) -> None:
        if not self.period:
            return
        now = time.monotonic()
        if self.next_t is None or now - self.next_t > 1.0:   # first frame, or we fell far behind
            self.next_t = now
        elif self.next_t > now:
            time.sleep(self.next_t - now)
        self.next_t += self.period


class VideoFile:
    """A video file, played once (or looped) and paced at its own frame rate (times ``speed``)."""

    is_live = False
    is_still = False

    def __init__(self, path: str | Path, loop: bool = False, realtime: bool = True, name: Optional[str] = None,
                 speed: float = 1.0):
        self.path = Path(path)
        self.name = name or str(path)
        self.loop = loop
        self.realtime = realtime
        self.speed = float(speed)
        self._cap: Optional[cv2.VideoCapture] = None
        self._ended = False
        self._pacer = _Pacer(0)
        self.fps = 0.0
        self.loops = 0

    def open(self) -> None:
        """Open the file and check that a first frame decodes."""
        if not self.path.is_file():
            raise SourceError(f"video {self.path} does not exist")
        cap = cv2.VideoCapture(str(self.path))
        ok = cap.isOpened() and cap.grab()
        if not ok:
            cap.release()
            raise SourceError(f"video {self.path} cannot be read (not a video OpenCV can decode, or empty)")
        cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        self._cap = cap
        self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not 1.0 <= self.fps <= 240.0:
            self.fps = 25.0
        self._pacer = _Pacer(self.fps * self.speed if self.realtime else 0)
        self._ended = False

    def read(self, timeout: float = 1.0) -> Optional[np.ndarray]:
        """Return the next frame (rewinding at the end when looping); None at the end."""
        if self._cap is None or self._ended:
            return None
        ok, frame = self._cap.read()
        if not ok and self.loop:
            # Rewinding by reopening works for every container, seeking does not.
            self._cap.release()
            self._cap = cv2.VideoCapture(str(self.path))
            self.loops += 1
            ok, frame = self._cap.read()
        if not ok:
            self._ended = True
            return None
        self._pacer.wait()
        return frame

    @property
    def ended(self) -> bool:
        """Return True when the file has been played to its end (without loop)."""
        return self._ended

    @property
    def lost(self) -> bool:
        """Files are never lost."""
        return False

    def close(self) -> None:
        """Release the file."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class ImageFolder:
    """The images of a folder in name order, each a still of its own (``is_still``): the loop treats
    every image as a new scene. Optionally looped and paced at ``fps``."""

    is_live = False
    is_still = True

    def __init__(self, folder: str | Path, loop: bool = False, realtime: bool = True, fps: float = 30.0):
        self.folder = Path(folder)
        self.name = str(folder)
        self.loop = loop
        self._pacer = _Pacer(fps if realtime else 0)
        self._files: list[Path] = []
        self._next = 0
        self._ended = False
        self._unreadable: set[Path] = set()
        self._first: Optional[np.ndarray] = None
        self.current: Optional[Path] = None      # the image the last frame came from

    def open(self) -> None:
        """List the folder's images; SourceError when there are none or none of them can be read."""
        if not self.folder.is_dir():
            raise SourceError(f"image folder {self.folder} does not exist")
        self._files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._files:
            raise SourceError(f"image folder {self.folder} has no images ({', '.join(IMAGE_SUFFIXES)})")
        self._next = 0
        self._ended = False
        self._first = self._read_next(wrap=False)
        if self._first is None:
            raise SourceError(f"image folder {self.folder}: none of its {len(self._files)} image(s) can be read "
                              "(corrupt, or not an image format OpenCV decodes)")

    def _read_next(self, wrap: bool) -> Optional[np.ndarray]:
        """Return the next readable image (skipping unreadable ones, each logged once), or None at the end."""
        tried = 0
        while tried < len(self._files):
            if self._next >= len(self._files):
                if not wrap:
                    return None
                self._next = 0
            path = self._files[self._next]
            self._next += 1
            tried += 1
            if path in self._unreadable:
                continue
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is not None and frame.size:
                self.current = path
                return frame
            self._unreadable.add(path)
            log.warning("image %s cannot be read; skipped", path)
        return None

    def read(self, timeout: float = 1.0) -> Optional[np.ndarray]:
        """Return the next readable image; None after the last one (when not looping)."""
        if self._ended or not self._files:
            return None
        if self._first is not None:
            frame, self._first = self._first, None      # decoded by open()
        else:
            frame = self._read_next(wrap=self.loop)
        if frame is None:
            self._ended = True
            return None
        self._pacer.wait()
        return frame

    @property
    def ended(self) -> bool:
        """Return True after the last image when not looping (or when no image is readable any more)."""
        return self._ended

    @property
    def lost(self) -> bool:
        """Folders are never lost."""
        return False

    def close(self) -> None:
        """Nothing to release."""
        self._files = []
        self._first = None


# ---- the registry ------------------------------------------------------------------------

@dataclass(frozen=True)
class SourceKind:
    """A kind of source: ``matches(uri)`` says whether a URI is one, ``build(uri, settings)`` makes it."""

    name: str
    matches: Callable[[str], bool]
    build: Callable[[str, SourceSettings], Source]
    describe: str


SOURCE_KINDS: list[SourceKind] = []


def register_source(name: str, matches: Callable[[str], bool],
                    build: Callable[[str, SourceSettings], Source], describe: str, first: bool = False) -> None:
    """Add a kind of source to the registry (``first`` puts it before the built-in kinds)."""
    kind = SourceKind(name, matches, build, describe)
    SOURCE_KINDS[:] = [k for k in SOURCE_KINDS if k.name != name]
    SOURCE_KINDS.insert(0, kind) if first else SOURCE_KINDS.append(kind)


def _usb_device(uri: str) -> int | str:
    return int(uri) if uri.isdigit() else uri


register_source("demo", lambda u: u == "demo",
                lambda u, s: VideoFile(DEMO_CLIP, loop=True, realtime=s.realtime, name="demo", speed=s.speed),
                "the shipped demo clip (edge/assets/demo.mp4), looped")
register_source("picamera", lambda u: u in ("picamera", "picamera2", "pi"),
                lambda u, s: PiCamera(s.width, s.height, s.fps, s.reconnect_max_s, s.stall_s),
                "the Raspberry Pi camera (picamera2)")
register_source("usb", lambda u: u.isdigit() or bool(re.fullmatch(r"/dev/video\d+", u)),
                lambda u, s: UsbCamera(_usb_device(u), s.width, s.height, s.fps, s.reconnect_max_s, s.stall_s),
                "a USB camera: index (0) or device (/dev/video0)")
register_source("stream", lambda u: bool(STREAM_URI.match(u)),
                lambda u, s: UsbCamera(u, s.width, s.height, s.fps, s.reconnect_max_s, s.stall_s),
                "a network camera stream (rtsp://, http://)")
register_source("folder", lambda u: Path(u).is_dir(),
                lambda u, s: ImageFolder(u, loop=s.loop, realtime=s.realtime, fps=s.fps * s.speed),
                "a folder of images, each its own scene")
register_source("file", lambda u: True,
                lambda u, s: VideoFile(u, loop=s.loop, realtime=s.realtime, speed=s.speed),
                "a video file")


def make_source(settings: SourceSettings, uri: Optional[str] = None) -> Source:
    """Return the (unopened) source for ``uri`` (default ``settings.uri``), chosen by the registry."""
    uri = str(settings.uri if uri is None else uri).strip()
    if not uri:
        raise SourceError("source.uri is empty: use demo, a camera index, picamera, a video file or a folder")
    for kind in SOURCE_KINDS:
        if kind.matches(uri):
            return kind.build(uri, settings)
    raise SourceError(f"source {uri!r} matches no kind of source")


def open_source(settings: SourceSettings, uri: Optional[str] = None) -> Source:
    """Return the opened source for ``uri`` (default ``settings.uri``); SourceError when it cannot open."""
    source = make_source(settings, uri)
    source.open()
    return source
