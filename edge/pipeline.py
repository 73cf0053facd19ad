"""The frame loop: source -> search (edge.search) -> track -> looks handed to the model worker -> overlay -> sinks.

:class:`Pipeline` owns one source, the face search, the IoU tracker, the loaded face models, the
gallery (when an embedding model and enrolled people exist), the model worker and the sinks.
Every frame is detected, tracked, drawn and shown on the loop's thread; the faces that are due
for a look (new tracks, then every ``tracker.refresh_every`` frames) go to the model worker
(edge.worker), whose results are applied at the start of a later frame. The loop never waits
for a model, except for a still image (an image folder): each image is a scene of its own, its
faces are looked at before it is drawn, and no track or label carries over to the next image.

Time: a track ends after ``tracker.max_missed`` frames without its face or that many frames'
worth of time (so a stalled camera ends its tracks), and ``leave`` events count only seconds
with frames (a :class:`FrameClock` leaves gaps out).

It keeps per-stage timings (capture, detect, track, models, overlay, sinks; "models" is only
the hand-over to the worker) for ``face-edge bench`` and the benchmarks.

Hooks for the service (systemd) side: ``on_frame`` callbacks ``f(pipeline, frame_index)``
run after every frame on the loop's thread; ``on_tracks`` callbacks ``f(pipeline, frame, visible, ended)``
(the integrations, edge.integrations) run on it once the frame's tracks and events are known, with the
frame before anything is drawn on it, and must return at once; :meth:`Pipeline.reload_models` loads bundles
beside the running ones and swaps them in between two frames (the camera stays open);
:meth:`Pipeline.call_on_model_thread` runs a function where the models run;
:meth:`Pipeline.stop` ends the loop after the current frame.
"""
from __future__ import annotations

import logging
import signal
import statistics
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from .align import Landmarker, shape_predictor_of
from .bundle import load_bundle, load_public_key
from .config import Settings
from .crop import Box
from .detect import HaarDetector, PhotoDetector
from .errors import FaceEdgeError, GalleryError
from .look import embedding_model, landmarker_of
from .models import FaceModel
from .overlay import FaceSummary, draw_faces, draw_status, face_summary, status_frame
from .runtime import get_runtime
from .search import FaceSearch
from .sinks import EventSink, FrameSink
from .sources import Source, make_source
from .track import IouTracker, Track
from .views import PLAIN
from .worker import LookJob, LookResult, ModelWorker

log = logging.getLogger("face-edge.pipeline")

STAGES = ("capture", "detect", "track", "models", "overlay", "sinks")
APPEAR_AFTER_HITS = 2        # a face seen in 2 frames "appears" (one-frame Haar false positives do not)
APPEAR_WAIT_S = 2.0          # ... once its first look is back, or after this long without one
LOST_MESSAGE = "camera lost, reconnecting"
READ_TIMEOUT_S = 0.25
EMPTY_FRAME_LOG_EVERY = 100  # log the first empty frame and then every 100th
STILL_LOOK_TIMEOUT_S = 60.0  # a still image waits this long at most for its faces' looks
GAP_FACTOR = 3.0             # a pause between frames longer than this many typical intervals is a gap
MIN_MISSED_BUDGET_S = 0.25   # a track survives at least this long without its face (unpaced playback)


@dataclass
class StageTimes:
    """Seconds spent per stage, summed over the frames processed, and the model worker's figures."""

    totals: dict[str, float] = field(default_factory=lambda: {s: 0.0 for s in STAGES})
    frames: int = 0
    model_runs: int = 0          # model predictions applied to tracks (one per model per look)
    looks: int = 0               # looks at a face applied to a live track
    stale: int = 0               # looks dropped: their track had ended or the models were reloaded meanwhile
    look_s: float = 0.0          # worker seconds of the applied looks
    look_wait_s: float = 0.0     # seconds those looks waited in the queue
    align_skipped: int = 0       # looks at a face that aligned models skipped (too small, landmarks off the face)
    frame_s: deque = field(default_factory=lambda: deque(maxlen=20000))   # each frame, capture included
    work_s: deque = field(default_factory=lambda: deque(maxlen=20000))    # each frame, after its capture

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
        self.model_runs = self.looks = self.stale = self.align_skipped = 0
        self.look_s = self.look_wait_s = 0.0
        self.frame_s.clear()
        self.work_s.clear()


class FrameClock:
    """Seconds of frames: advances with the time between frames, except over a gap (a pause of more than
    GAP_FACTOR typical intervals, e.g. a stalled camera), which counts as one typical interval."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._last: Optional[float] = None
        self._intervals: deque[float] = deque(maxlen=60)

    def typical(self) -> Optional[float]:
        """Return the mean interval between recent frames, gaps left out (None before the second frame)."""
        return statistics.fmean(self._intervals) if self._intervals else None

    def tick(self, t: float) -> float:
        """Record a frame at monotonic time ``t``; return the clock (seconds of frames so far)."""
        if self._last is not None:
            dt = max(0.0, t - self._last)
            typical = self.typical()
            if typical is not None and dt > GAP_FACTOR * typical:
                dt = typical
            else:
                self._intervals.append(dt)
            self.seconds += dt
        self._last = t
        return self.seconds

    def missed_budget_s(self, max_missed: int) -> float:
        """Return how long a track survives without its face: ``max_missed`` typical frame intervals."""
        typical = self.typical()
        return max(MIN_MISSED_BUDGET_S, max_missed * (typical if typical is not None else 1 / 15))


def load_models(settings: Settings, names: Optional[Sequence[str]] = None) -> tuple[dict[str, FaceModel], list[str]]:
    """Return ({name: FaceModel}, errors) for the bundles ``names`` (default ``settings.models.bundles``).

    Each bundle that fails (missing folder, bad sha256 or signature, bad manifest, no runtime, an unusable
    shape predictor) gives one error line and is skipped; the others load.
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
        folder = Path(cfg.dir) / name
        if not folder.is_dir():      # name the path: a relative models.dir is easy to get wrong
            errors.append(f"{name}: no such folder {folder.resolve()} (models.dir: {cfg.dir})")
            continue
        try:
            bundle = load_bundle(folder, public_key)
            if not cfg.views:  # faster, at the bundle's one-call figures (its card gives both)
                bundle = replace(bundle, manifest=replace(bundle.manifest, views=PLAIN))
            runtime = get_runtime(cfg.runtime)
            model = FaceModel(bundle, runtime, cfg.num_threads)
            if model.task == "landmarks":
                shape_predictor_of(model)   # read with its bundle: a bad one is this bundle's error
            models[name] = model
        except FaceEdgeError as exc:
            message = str(exc)
            if name not in message:   # the manifest's name differs from the configured folder's
                message = f"{name}: {message}"
            errors.append(message)
    return models, errors


def warm_up(models: dict[str, FaceModel]) -> None:
    """Run every model once on a grey crop, so the first face does not pay for their first call."""
    for model in models.values():
        size = model.manifest.crop.size
        try:
            model.predict(np.full((size, size, 3), 128, np.uint8))
        except Exception as exc:  # a broken model shows up (and is switched off) on the first face
            log.debug("warm-up of %s failed: %s", model.name, exc)


class Pipeline:
    """One running loop. Build it, then ``run()``; ``stop()`` ends it from a signal or another thread."""

    def __init__(self, settings: Settings, source: Optional[Source] = None,
                 sinks: Sequence[FrameSink] = (), events: Optional[EventSink] = None,
                 load: bool = True, source_is_open: bool = False):
        self.settings = settings
        d = settings.detector
        self.detector = HaarDetector(d.cascade, d.downscale, d.min_size, d.scale_factor, d.min_neighbors)
        self.search = FaceSearch(self.detector, d.full_frame_every, d.search_budget_ms)
        self.tracker = IouTracker(settings.tracker)
        self.source = source
        self.sinks: list[FrameSink] = list(sinks)
        self.events = events
        self.on_frame: list[Callable[["Pipeline", int], None]] = []
        self.on_tracks: list[Callable[["Pipeline", np.ndarray, list[Track], list[Track]], None]] = []
        self.times = StageTimes()
        self.clock = FrameClock()
        self.frame_index = 0
        self.fps: Optional[float] = None
        self.models: dict[str, FaceModel] = {}
        self.landmarker: Optional[Landmarker] = None
        self.gallery: Any = None
        self.generation = 0                   # bumped whenever other models (or gallery) take over
        self.model_errors: list[str] = []
        self.worker = ModelWorker()
        self._still_detector: Optional[PhotoDetector] = None
        self._pending: Optional[tuple[dict[str, FaceModel], Any]] = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._opened = source is not None and source_is_open
        self._last_t: Optional[float] = None
        self._last_frame: Optional[np.ndarray] = None
        self._empty_frames = 0
        self._failed_models: set[str] = set()
        self._summaries: dict[int, tuple[tuple[int, int, int], FaceSummary]] = {}   # track id -> (key, summary)
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
        self.generation += 1                 # looks under way with the old models are dropped when they come back
        if models:                           # a model's first call is slow (weights packed): not on a face
            self.worker.call(lambda: warm_up(models))
        aligned = [n for n, m in models.items() if m.manifest.crop.aligned]
        if aligned and self.landmarker is None:
            log.warning("%s aligns faces by their landmarks, but no landmarks bundle is loaded: it is skipped "
                        "(add 'landmarks' to models.bundles)", ", ".join(aligned))
        if models:
            log.info("models: %s (runtime %s, %d thread%s each, on the model worker)",
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
        they take over at the start of the next frame. Looks already under way with the old
        models are dropped when they come back.
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
        self.generation += 1                 # looks under way matched the old gallery: dropped when they return
        for track in self.tracker.tracks:
            track.names.clear()
            track.last_run = None

    def call_on_model_thread(self, fn: Callable[[], Any]) -> Future:
        """Run ``fn()`` on the model worker's thread, between two looks (where the models run: TFLite
        interpreters must not be used by two threads at once); return a Future of its result."""
        return self.worker.call(fn)

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

    @property
    def still(self) -> bool:
        """Return True when the source gives still images (each frame its own scene)."""
        return bool(getattr(self.source, "is_still", False))

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
        now = time.time()
        if frame is None:
            if self.source.ended:
                return False
            self._end(self.tracker.expire(now, self.clock.missed_budget_s(self.settings.tracker.max_missed)))
            if self.source.lost:
                return self._show_lost()
            return True
        if frame.size == 0:
            self._empty_frames += 1
            if self._empty_frames % EMPTY_FRAME_LOG_EVERY == 1:
                log.warning("source %s gave an empty frame; skipped", self.source.name)
            return True
        still = self.still
        if still:
            self._new_scene()
        else:
            self._apply_looks()
        boxes = self._detect(frame, still)
        t2 = time.perf_counter()
        clock = self.clock.tick(time.monotonic())
        ended = self.tracker.update(boxes, self.frame_index, now, clock)
        ended += self.tracker.expire(now, self.clock.missed_budget_s(self.settings.tracker.max_missed))
        t3 = time.perf_counter()
        visible = self.tracker.visible()
        self._submit_looks(frame, visible)
        if still:              # a still is shown once: its faces are looked at before it is drawn
            self.worker.wait_idle(STILL_LOOK_TIMEOUT_S)
            self._apply_looks()
        t4 = time.perf_counter()
        self._end(ended)
        self._events(visible, now)
        for callback in list(self.on_tracks):
            callback(self, frame, visible, ended)
        summaries = [(t, self.summary(t)) for t in visible]
        self._tick_fps(t0)
        reserved = draw_status(frame, self.fps, self.runtime_label(), None, self.settings.display.show_fps)
        draw_faces(frame, summaries, reserved)
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
        tt.work_s.append(t6 - t1)
        index = self.frame_index
        self.frame_index += 1
        self._in_frame = False
        for callback in list(self.on_frame):
            callback(self, index)
        return keep_going

    def _detect(self, frame: np.ndarray, still: bool) -> list[Box]:
        """Return this frame's face boxes: a still image is searched as ``face-edge recognize`` searches a
        photo (edge.detect.PhotoDetector); a video frame by the face search (edge.search)."""
        if still:
            if self._still_detector is None:
                self._still_detector = PhotoDetector(self.settings.detector)
            return self._still_detector.faces(frame)
        return self.search.find(frame, self.tracker.tracks)

    def _new_scene(self) -> None:
        """Start a scene: every track ends without a trace (no leave event, no label carried over)."""
        for track in self.tracker.end_all():
            self.worker.cancel(track.id)
        self._summaries.clear()
        self.worker.take_results()
        self.search.reset()

    def _submit_looks(self, frame: np.ndarray, tracks: list[Track]) -> None:
        """Hand the due tracks' faces to the model worker (one copy of the frame for all of them)."""
        if not self.models:
            return
        refresh = self.settings.tracker.refresh_every
        due = [t for t in tracks if t.due(self.frame_index, refresh)]
        if not due:
            return
        pixels = frame.copy()                      # the loop draws on its frame; the worker keeps this one
        landmarker = self.landmarker
        if landmarker is not None and landmarker.model.name in self._failed_models:
            landmarker = None
        skip = frozenset(self._failed_models)
        for track in due:
            job = LookJob(track.id, self.frame_index, pixels, track.box, self.models, landmarker, self.gallery,
                          skip, self.generation, first=track.looks == 0)
            if self.worker.submit(job):
                track.last_run = self.frame_index

    def _apply_looks(self) -> None:
        """Apply the looks the worker finished to their tracks; drop those of ended tracks or old models."""
        results = self.worker.take_results()
        if not results:
            return
        alive = {t.id: t for t in self.tracker.tracks}
        for result in results:
            track = alive.get(result.track)
            if track is None or result.generation != self.generation:
                self.times.stale += 1
                continue
            self._apply(track, result)

    def _apply(self, track: Track, result: LookResult) -> None:
        look = result.look
        for name, error in look.failed.items():
            if name not in self._failed_models:
                self._failed_models.add(name)
                log.error("model %s failed on a face and is switched off until a reload: %s", name, error)
        for name, reason in look.skipped.items():
            log.debug("track %d: %s skipped this look: %s", track.id, name, reason)
        tt = self.times
        tt.align_skipped += int(bool(look.skipped))
        for prediction in look.predictions:
            track.add_prediction(prediction)
            tt.model_runs += 1
        if look.match is not None:
            track.add_identity(look.match.name, look.match.distance)
        track.looks += 1
        tt.looks += 1
        tt.look_s += result.look_s
        tt.look_wait_s += result.wait_s

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

    def manifests(self) -> dict[str, Any]:
        """Return {model name (as its predictions name it): manifest} of the running models."""
        return {m.manifest.name: m.manifest for m in self.models.values()}

    def summary(self, track: Track) -> FaceSummary:
        """Return what is shown and logged for ``track`` now (a still's one look decides its name).

        Kept per track until its looks or votes change (``Track.revision``) or other models take over:
        the loop draws every face every frame, and working it out again each time was a tenth of a
        frame's time with two faces."""
        vote_min = 1 if self.still else self.settings.tracker.vote_min
        key = (track.revision, self.generation, vote_min)
        cached = self._summaries.get(track.id)
        if cached is None or cached[0] != key:
            cached = (key, face_summary(track, self.manifests(), vote_min))
            self._summaries[track.id] = cached
        return cached[1]

    def _events(self, visible: list[Track], now: float) -> None:
        """Emit "appear" for faces seen in APPEAR_AFTER_HITS frames once their first look is back (or
        after APPEAR_WAIT_S without one); a still's faces appear at once, with the image's name."""
        if self.events is None:
            return
        still = self.still
        for track in visible:
            if track.appeared:
                continue
            if still:
                image = getattr(self.source, "current", None)
                track.appeared = True
                self.events.emit("appear", now, frame=self.frame_index, image=None if image is None else image.name,
                                 **self.summary(track).to_dict())
                continue
            looked = track.looks > 0 or not self.models or now - track.first_seen >= APPEAR_WAIT_S
            if track.hits >= APPEAR_AFTER_HITS and looked:
                track.appeared = True
                self.events.emit("appear", now, frame=self.frame_index, **self.summary(track).to_dict())

    def _end(self, ended: list[Track]) -> None:
        for track in ended:
            self.worker.cancel(track.id)
            self._leave(track)
            self._summaries.pop(track.id, None)

    def _leave(self, track: Track) -> None:
        if self.events is None or not track.appeared or self.still:
            return
        self.events.emit("leave", track.last_seen, frame=self.frame_index, **self.summary(track).to_dict(),
                         first_seen=round(track.first_seen, 3), seconds=round(track.active_s, 3))

    def run(self, max_frames: Optional[int] = None) -> int:
        """Run until the source ends, a sink quits, stop() or ``max_frames``; return frames processed.

        Always releases the source and closes the sinks, also on an exception.
        """
        try:
            self.open()
            kind = "live" if self.source.is_live else ("stills" if self.still else "file")
            log.info("running on %s (%s)", self.source.name, kind)
            while not self._stop.is_set():
                if not self.step():
                    break
                if max_frames is not None and self.frame_index >= max_frames:
                    break
        finally:
            self.close()
        return self.frame_index

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until the model worker has finished every look handed to it and apply them; False on timeout."""
        done = self.worker.wait_idle(timeout)
        self._apply_looks()
        return done

    def close(self) -> None:
        """End every track ("leave" events), stop the workers, release the source and close the sinks."""
        for track in self.tracker.end_all():
            self._leave(track)
        self.worker.close()
        self.search.close()
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
        """Return a snapshot: frames, fps, source state, models and their versions, the model worker."""
        return {"frame": self.frame_index, "fps": None if self.fps is None else round(self.fps, 2),
                "source": None if self.source is None else self.source.name,
                "lost": bool(self.source is not None and self.source.lost),
                "models": {n: str(m.manifest.version) for n, m in self.models.items()},
                "recognition": self.gallery is not None, "align_skipped": self.times.align_skipped,
                "looks_pending": self.worker.pending()}


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
