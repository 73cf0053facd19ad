"""The frame loop: source -> detect (every frame) -> track -> models (when due) -> overlay -> sinks.

:class:`Pipeline` owns one source, the Haar detector, the IoU tracker, the loaded face models,
the gallery (when an embedding model and enrolled people exist) and the sinks. It keeps
per-stage timings (capture, detect, track, models, overlay, sinks) for ``face-edge bench``
and the benchmarks.

Hooks for the service (systemd) side: ``on_frame`` callbacks ``f(pipeline, frame_index)``
run after every frame on the loop's thread; ``on_tracks`` callbacks ``f(pipeline, frame, visible, ended)``
(the integrations, edge.integrations) run on it once the frame's tracks and events are known, with the
frame before anything is drawn on it, and must return at once; :meth:`Pipeline.reload_models` loads bundles
beside the running ones and swaps them in between two frames (the camera stays open);
:meth:`Pipeline.stop` ends the loop after the current frame.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import cv2
import numpy as np

from .bundle import load_bundle, load_public_key
from .config import Settings
from .align import Landmarker
from .crop import Box
from .detect import HaarDetector
from .errors import FaceEdgeError, GalleryError
from .look import embedding_model, landmarker_of, look_at
from .models import FaceModel
from .overlay import FaceSummary, draw_faces, draw_status, face_summary, status_frame
from .runtime import get_runtime
from .sinks import EventSink, FrameSink
from .sources import ImageFolder, Source, make_source
from .track import IouTracker, Track, iou
from .views import PLAIN

log = logging.getLogger("face-edge.pipeline")

STAGES = ("capture", "detect", "track", "models", "overlay", "sinks")
APPEAR_AFTER_HITS = 2        # a face seen in 2 frames "appears" (one-frame Haar false positives do not)
LOST_MESSAGE = "camera lost, reconnecting"
READ_TIMEOUT_S = 0.25
EMPTY_FRAME_LOG_EVERY = 100  # log the first empty frame and then every 100th
ROI_MAX_MISSED = 2          # between whole-frame turns, search around tracks missed at most this many frames
ROI_FACE_PX = 64            # a region is searched at the scale that makes its tracked face about this wide


@dataclass
class StageTimes:
    """Seconds spent per stage, summed over the frames processed."""

    totals: dict[str, float] = field(default_factory=lambda: {s: 0.0 for s in STAGES})
    frames: int = 0
    model_runs: int = 0          # face crops passed through the models
    align_skipped: int = 0       # looks at a face that aligned models skipped (too small, landmarks off the face)
    frame_s: deque = field(default_factory=lambda: deque(maxlen=20000))

    def mean_ms(self) -> dict[str, float]:
        """Return the mean milliseconds per frame of each stage (and ``total``)."""
        n = max(1, self.frames)
        out = {s: 1000.0 * t / n for s, t in self.totals.items()}
        out["total"] = sum(out.values())
        return out

    def reset(self) -> None:
        """Forget all timings (e.g. after a warm-up)."""
        self.totals = {s: 0.0 for s in STAGES}
        self.frames = 0
        self.model_runs = 0
        self.align_skipped = 0
        self.frame_s.clear()


def load_models(settings: Settings, names: Optional[Sequence[str]] = None) -> tuple[dict[str, FaceModel], list[str]]:
    """Return ({name: FaceModel}, errors) for the bundles ``names`` (default ``settings.models.bundles``).

    Each bundle that fails (missing folder, bad sha256 or signature, bad manifest, no runtime)
    gives one error line and is skipped; the others load.
    """
    cfg = settings.models
    names = list(cfg.bundles if names is None else names)
    models: dict[str, FaceModel] = {}
    errors: list[str] = []
    if not names:
        return models, errors
    public_key = None
    if cfg.public_key:
        try:
            public_key = load_public_key(cfg.public_key)
        except FaceEdgeError as exc:
            return models, [f"models.public_key: {exc}; no bundle loaded"]
    for name in names:
        try:
            bundle = load_bundle(Path(cfg.dir) / name, public_key)
            if not cfg.views:  # faster, at the bundle's one-call figures (its card gives both)
                bundle = replace(bundle, manifest=replace(bundle.manifest, views=PLAIN))
            runtime = get_runtime(cfg.runtime)
            models[name] = FaceModel(bundle, runtime, cfg.num_threads)
        except FaceEdgeError as exc:
            message = str(exc)
            if name not in message:   # the manifest's name differs from the configured folder's
                message = f"{name}: {message}"
            errors.append(message)
    return models, errors


class Pipeline:
    """One running loop. Build it, then ``run()``; ``stop()`` ends it from a signal or another thread."""

    def __init__(self, settings: Settings, source: Optional[Source] = None,
                 sinks: Sequence[FrameSink] = (), events: Optional[EventSink] = None,
                 load: bool = True, source_is_open: bool = False):
        self.settings = settings
        self.detector = HaarDetector(settings.detector.cascade, settings.detector.downscale,
                                     settings.detector.min_size, settings.detector.scale_factor,
                                     settings.detector.min_neighbors)
        self.tracker = IouTracker(settings.tracker)
        self.source = source
        self.sinks: list[FrameSink] = list(sinks)
        self.events = events
        self.on_frame: list[Callable[["Pipeline", int], None]] = []
        self.on_tracks: list[Callable[["Pipeline", np.ndarray, list[Track], list[Track]], None]] = []
        self.times = StageTimes()
        self.frame_index = 0
        self.fps: Optional[float] = None
        self.models: dict[str, FaceModel] = {}
        self.landmarker: Optional[Landmarker] = None
        self.gallery: Any = None
        self.model_errors: list[str] = []
        self._pending: Optional[tuple[dict[str, FaceModel], Any]] = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._opened = source is not None and source_is_open
        self._last_t: Optional[float] = None
        self._last_frame: Optional[np.ndarray] = None
        self._empty_frames = 0
        self._failed_models: set[str] = set()
        self._loop_thread: Optional[int] = None
        self._in_frame = False
        if load:
            self.model_errors = self._install(*self._prepare(None))

    # ---- models ---------------------------------------------------------------------------
    def _prepare(self, names: Optional[Sequence[str]]) -> tuple[dict[str, FaceModel], Any, list[str]]:
        """Load the bundles ``names`` beside the running ones; a failed one keeps its running model."""
        wanted = list(self.settings.models.bundles if names is None else names)
        fresh, errors = load_models(self.settings, wanted)
        for err in errors:
            log.warning("model skipped: %s", err)
        models = {}
        for name in wanted:
            if name in fresh:
                models[name] = fresh[name]
            elif name in self.models:
                log.warning("model %s: keeping the running version %s", name, self.models[name].manifest.version)
                models[name] = self.models[name]
        if names is not None:   # a partial reload keeps the models it did not name
            for name, model in self.models.items():
                models.setdefault(name, model)
        return models, self._open_gallery(models), errors

    def _install(self, models: dict[str, FaceModel], gallery: Any, errors: list[str]) -> list[str]:
        self.models, self.gallery = models, gallery
        self.landmarker = landmarker_of(models)
        aligned = [n for n, m in models.items() if m.manifest.crop.aligned]
        if aligned and self.landmarker is None:
            log.warning("%s aligns faces by their landmarks, but no landmarks bundle is loaded: it is skipped "
                        "(add 'landmarks' to models.bundles)", ", ".join(aligned))
        if models:
            log.info("models: %s (runtime %s, %d thread%s)",
                     ", ".join(f"{n} v{m.manifest.version}" for n, m in models.items()),
                     next(iter(models.values())).runtime.name, self.settings.models.num_threads,
                     "" if self.settings.models.num_threads == 1 else "s")
        else:
            log.info("no face model loaded: detection only")
        return errors

    def _open_gallery(self, models: dict[str, FaceModel]) -> Any:
        model = embedding_model(models)
        if model is None:
            return None
        path = Path(self.settings.recognition.gallery)
        if not path.is_file():
            log.info("recognition: no gallery at %s yet (enroll people with `face-edge enroll`)", path)
            return None
        try:
            from .gallery import open_gallery
            gallery = open_gallery(self.settings.recognition, model.manifest)
        except GalleryError as exc:
            log.warning("recognition off: %s", exc)
            return None
        if not len(gallery):
            log.info("recognition: gallery %s has nobody enrolled", path)
            return None
        log.info("recognition: %d people in %s, threshold %.3f", len(gallery.names()), path, gallery.threshold)
        return gallery

    def reload_models(self, names: Optional[Sequence[str]] = None) -> list[str]:
        """Load ``names`` (default: every configured bundle) beside the running models and swap them in
        between two frames; return the error lines (a bundle that fails keeps its running version).

        Called on the loop's thread between frames (an ``on_frame`` callback) the new models run
        when this returns; from another thread, or a signal handler in the middle of a frame,
        they take over at the start of the next frame.
        """
        models, gallery, errors = self._prepare(names)
        with self._lock:
            self._pending = (models, gallery)
        between_frames = threading.get_ident() == self._loop_thread and not self._in_frame
        if not self._opened or between_frames:   # e.g. from an on_frame callback: swap right away
            self._swap()
        return errors

    def _swap(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is None:
            return
        old = self.models
        self._install(*pending, [])
        changed = {n for n in set(old) | set(self.models) if old.get(n) is not self.models.get(n)}
        if changed:  # looks from the old models (and gallery matches) no longer count
            for track in self.tracker.tracks:
                track.forget(None)
        self._failed_models -= changed

    def set_gallery(self, gallery: Any) -> None:
        """Match faces against ``gallery`` from now on (None: nobody enrolled) and have every track vote its
        name afresh; call it between frames on the loop's thread (an ``on_frame`` callback)."""
        self.gallery = gallery
        for track in self.tracker.tracks:
            track.names.clear()
            track.last_run = None

    # ---- the loop -------------------------------------------------------------------------
    def open(self) -> None:
        """Open the source (``settings.source.uri`` when none was given); SourceError when it cannot."""
        if self._opened:
            return
        if self.source is None:
            self.source = make_source(self.settings.source)
        self.source.open()
        self._opened = True

    def stop(self) -> None:
        """Ask the loop to end after the current frame (safe from signal handlers and other threads)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """Return True once stop() was called."""
        return self._stop.is_set()

    def runtime_label(self) -> str:
        """Return what the overlay corner says about inference: runtime and threads, or detection only."""
        if not self.models:
            return "detection only"
        runtime = next(iter(self.models.values())).runtime.name
        return f"{runtime} x{self.settings.models.num_threads}"

    def step(self) -> bool:
        """Process one frame; return False when the source has ended or a sink asked to quit."""
        self._loop_thread = threading.get_ident()
        if self._pending is not None:
            self._swap()
        self._in_frame = True
        try:
            return self._step()
        finally:
            self._in_frame = False

    def _step(self) -> bool:
        t0 = time.perf_counter()
        frame = self.source.read(READ_TIMEOUT_S)
        t1 = time.perf_counter()
        if frame is None:
            if self.source.ended:
                return False
            if self.source.lost:
                return self._show_lost()
            return True
        if frame.size == 0:
            self._empty_frames += 1
            if self._empty_frames % EMPTY_FRAME_LOG_EVERY == 1:
                log.warning("source %s gave an empty frame; skipped (%d so far)", self.source.name, self._empty_frames)
            return True
        now = time.time()
        boxes = self._detect(frame)
        t2 = time.perf_counter()
        ended = self.tracker.update(boxes, self.frame_index, now)
        t3 = time.perf_counter()
        visible = self.tracker.visible()
        self._run_models(frame, visible)
        t4 = time.perf_counter()
        self._events(visible, ended, now)
        for callback in list(self.on_tracks):
            callback(self, frame, visible, ended)
        summaries = [(t, self.summary(t)) for t in visible]
        draw_faces(frame, summaries)
        self._tick_fps(t0)
        draw_status(frame, self.fps, self.runtime_label(), None, self.settings.display.show_fps)
        t5 = time.perf_counter()
        keep_going = True
        for sink in self.sinks:
            if not sink.write(frame):
                log.info("%s: quit requested", sink.name)
                keep_going = False
        t6 = time.perf_counter()
        self._last_frame = frame
        tt = self.times
        for stage, dt in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)):
            tt.totals[stage] += dt
        tt.frames += 1
        tt.frame_s.append(t6 - t0)
        index = self.frame_index
        self.frame_index += 1
        self._in_frame = False
        for callback in list(self.on_frame):
            callback(self, index)
        return keep_going

    def _detect(self, frame: np.ndarray) -> list[Box]:
        """Return this frame's face boxes: the whole frame, or only the regions around live tracks
        when ``detector.full_frame_every`` > 1 and this is not a whole-frame turn (none when no
        face is being tracked: a newcomer is found on the next whole-frame turn, within N frames)."""
        every = self.settings.detector.full_frame_every
        if every <= 1 or self.frame_index % every == 0 or isinstance(self.source, ImageFolder):
            return self.detector.detect(frame)
        tracks = [t for t in self.tracker.tracks if t.missed <= ROI_MAX_MISSED]
        if not tracks:
            return []
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
        fh, fw = grey.shape[:2]
        boxes: list[Box] = []
        for track in tracks:
            x, y, w, h = track.box
            side = max(w, h)
            pad = side // 2                       # search twice the box, for faces of 0.7x to 1.5x its size
            x0, y0 = max(0, x - pad), max(0, y - pad)
            x1, y1 = min(fw, x + w + pad), min(fh, y + h + pad)
            region = grey[y0:y1, x0:x1]
            low = max(self.detector.min_size, int(side * 0.7))
            # A region is small: search it at a finer scale than the whole frame (the tracked
            # face ~ROI_FACE_PX wide), which finds small faces the coarse whole-frame pass misses.
            scale = min(1.0, max(self.detector.downscale, ROI_FACE_PX / side))
            for bx, by, bw, bh in self.detector.detect(region, grey=region, min_size=low,
                                                       max_size=int(side * 1.5), downscale=scale):
                box = (bx + x0, by + y0, bw, bh)
                if all(iou(box, b) < 0.5 for b in boxes):   # regions of nearby faces overlap
                    boxes.append(box)
        return sorted(boxes, key=lambda b: b[2] * b[3], reverse=True)

    def _tick_fps(self, t: float) -> None:
        if self._last_t is not None and t > self._last_t:
            inst = 1.0 / (t - self._last_t)
            self.fps = inst if self.fps is None else 0.9 * self.fps + 0.1 * inst
        self._last_t = t

    def _show_lost(self) -> bool:
        """Show "camera lost, reconnecting" while a live source is reopened; the loop goes on."""
        if self._last_frame is not None:
            frame = (self._last_frame // 3).astype(np.uint8)
            draw_status(frame, None, self.runtime_label(), LOST_MESSAGE, self.settings.display.show_fps)
        else:
            frame = status_frame(self.settings.source.width, self.settings.source.height, LOST_MESSAGE)
        self._last_t = None
        self.fps = None
        keep_going = True
        for sink in self.sinks:
            if sink.name == "window" and not sink.write(frame):
                keep_going = False
        self._in_frame = False
        for callback in list(self.on_frame):   # keeps the watchdog fed while the camera is away
            callback(self, self.frame_index)
        return keep_going

    def _run_models(self, frame: np.ndarray, tracks: list[Track]) -> None:
        if not self.models:
            return
        refresh = self.settings.tracker.refresh_every
        landmarker = self.landmarker
        if landmarker is not None and landmarker.model.name in self._failed_models:
            landmarker = None
        for track in tracks:
            if not track.due(self.frame_index, refresh):
                continue
            track.last_run = self.frame_index
            look = look_at(frame, track.box, self.models, landmarker, self.gallery, frozenset(self._failed_models))
            for name, error in look.failed.items():
                self._failed_models.add(name)
                log.error("model %s failed on a face and is switched off until a reload: %s", name, error)
            for name, reason in look.skipped.items():
                log.debug("track %d: %s skipped this look: %s", track.id, name, reason)
            self.times.align_skipped += int(bool(look.skipped))
            for prediction in look.predictions:
                track.add_prediction(prediction)
                self.times.model_runs += 1
            if look.match is not None:
                track.add_identity(look.match.name, look.match.distance)

    def manifests(self) -> dict[str, Any]:
        """Return {model name (as its predictions name it): manifest} of the running models."""
        return {m.manifest.name: m.manifest for m in self.models.values()}

    def summary(self, track: Track) -> FaceSummary:
        """Return what is shown and logged for ``track`` now."""
        return face_summary(track, self.manifests(), self.settings.tracker.vote_min)

    def _events(self, visible: list[Track], ended: list[Track], now: float) -> None:
        if self.events is None:
            return
        for track in visible:
            if not track.appeared and track.hits >= APPEAR_AFTER_HITS:
                track.appeared = True
                self.events.emit("appear", now, frame=self.frame_index, **self.summary(track).to_dict())
        for track in ended:
            self._leave(track)

    def _leave(self, track: Track) -> None:
        if self.events is None or not track.appeared:
            return
        self.events.emit("leave", track.last_seen, frame=self.frame_index, **self.summary(track).to_dict(),
                         first_seen=round(track.first_seen, 3), seconds=round(track.last_seen - track.first_seen, 3))

    def run(self, max_frames: Optional[int] = None) -> int:
        """Run until the source ends, a sink quits, stop() or ``max_frames``; return frames processed.

        Always releases the source and closes the sinks, also on an exception.
        """
        try:
            self.open()
            log.info("running on %s (%s)", self.source.name, "live" if self.source.is_live else "file")
            while not self._stop.is_set():
                if not self.step():
                    break
                if max_frames is not None and self.frame_index >= max_frames:
                    break
        finally:
            self.close()
        return self.frame_index

    def close(self) -> None:
        """End every track ("leave" events), release the source and close the sinks."""
        for track in self.tracker.end_all():
            self._leave(track)
        if self.source is not None:
            self.source.close()
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:
                log.warning("%s: close failed: %s", sink.name, exc)
        if self.events is not None:
            self.events.close()
        self._opened = False

    def status(self) -> dict[str, Any]:
        """Return a snapshot: frames, fps, source state, models and their versions."""
        return {"frame": self.frame_index, "fps": None if self.fps is None else round(self.fps, 2),
                "source": None if self.source is None else self.source.name,
                "lost": bool(self.source is not None and self.source.lost),
                "models": {n: str(m.manifest.version) for n, m in self.models.items()},
                "recognition": self.gallery is not None, "align_skipped": self.times.align_skipped}


def stop_on_signals(pipeline: Pipeline, signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT)) -> dict[int, Any]:
    """Make SIGTERM/SIGINT stop ``pipeline`` cleanly (camera released); return the previous handlers."""
    def handler(signum: int, _frame: Any) -> None:
        log.info("%s: stopping", signal.Signals(signum).name)
        pipeline.stop()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in signals:
            previous[sig] = signal.signal(sig, handler)
    return previous
