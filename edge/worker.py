"""The model worker: every look at a face (:func:`edge.look.look_at`) runs on a thread of its own.

The frame loop detects, tracks, draws and shows every frame; when a track is due for a look it
hands the worker a :class:`LookJob` (the frame's pixels, copied once per frame, and the face box)
and goes on. The worker looks at one face at a time and leaves a :class:`LookResult` that the
loop applies at the start of a later frame. So a slow model (tens of milliseconds per face on a
Pi) delays when labels appear, never a frame.

- The queue is bounded (``capacity`` faces): a job for a face that already waits replaces it
  (the newest crop of a track wins); when the queue is full, a new face is refused and stays due,
  so the loop offers it again on a later frame. Faces never looked at go before refreshes.
- Every job carries the models, landmarker and gallery it was made for and their ``generation``:
  the loop drops results of an older generation (a hot reload happened meanwhile) and results
  for tracks that have ended.
- ``call(fn)`` runs ``fn`` on the worker thread between two looks (TFLite interpreters are not
  thread-safe: whatever else must run the loop's models, e.g. the service's golden-face check
  after a reload, goes through here) and returns a Future.
- The thread runs at a lower CPU priority than the loop (``nice`` + WORKER_NICE, Linux), so on a
  busy single core the display keeps its pace and inference takes the rest.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

import numpy as np

from .align import Landmarker
from .crop import Box
from .look import Look, look_at
from .models import FaceModel
from .threads import lower_thread_priority

log = logging.getLogger("face-edge.worker")

WORKER_NICE = 2             # the worker yields the CPU to the frame loop (Linux thread niceness)
DEFAULT_CAPACITY = 8        # faces waiting for a look at most


@dataclass
class LookJob:
    """One face to look at: the frame it is in (the worker's own copy), its box and the models to use."""

    track: int
    frame_index: int
    frame: np.ndarray
    box: Box
    models: Mapping[str, FaceModel]
    landmarker: Optional[Landmarker] = None
    gallery: Any = None
    skip: frozenset = frozenset()
    generation: int = 0
    first: bool = True          # the track has never been looked at: served before refreshes
    queued_at: float = field(default_factory=time.perf_counter)


@dataclass
class LookResult:
    """What the worker found for one job: the Look, and how long it waited and took."""

    track: int
    frame_index: int
    generation: int
    look: Look
    wait_s: float
    look_s: float


class ModelWorker:
    """A daemon thread that runs LookJobs one at a time (see the module docstring)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, nice: int = WORKER_NICE, name: str = "face-edge models"):
        self.capacity = int(capacity)
        self.nice = int(nice)
        self._cond = threading.Condition()
        self._jobs: "OrderedDict[int, LookJob]" = OrderedDict()
        self._calls: deque[tuple[Callable[[], Any], Future]] = deque()
        self._results: deque[LookResult] = deque()
        self._busy = False
        self._closed = False
        self.looks = 0               # jobs done
        self.replaced = 0            # jobs replaced by a newer crop of the same track before they ran
        self.refused = 0             # submissions refused because the queue was full
        self.busy_s = 0.0            # seconds spent looking
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # ---- the loop's side ----------------------------------------------------------------
    def submit(self, job: LookJob) -> bool:
        """Queue ``job``; return False (nothing queued) when the queue is full of other faces."""
        with self._cond:
            if self._closed:
                return False
            if job.track in self._jobs:
                old = self._jobs.pop(job.track)
                job.first = job.first or old.first
                self.replaced += 1
            elif len(self._jobs) >= self.capacity:
                self.refused += 1
                return False
            self._jobs[job.track] = job
            self._cond.notify_all()
        return True

    def cancel(self, track: int) -> None:
        """Forget the waiting job of ``track`` (it ended), if any."""
        with self._cond:
            self._jobs.pop(track, None)

    def pending(self) -> int:
        """Return the number of faces waiting or being looked at."""
        with self._cond:
            return len(self._jobs) + int(self._busy)

    def take_results(self) -> list[LookResult]:
        """Return (and forget) the results finished since the last call, oldest first."""
        with self._cond:
            out = list(self._results)
            self._results.clear()
        return out

    def wait_idle(self, timeout: Optional[float] = None) -> bool:
        """Block until no job waits or runs (e.g. a still image's faces are all looked at); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._jobs and not self._busy and not self._calls, timeout)

    def call(self, fn: Callable[[], Any]) -> Future:
        """Run ``fn()`` on the worker thread before the next look; return a Future of its result."""
        future: Future = Future()
        with self._cond:
            if self._closed:
                future.set_exception(RuntimeError("the model worker is closed"))
                return future
            self._calls.append((fn, future))
            self._cond.notify_all()
        return future

    def close(self, timeout: float = 5.0) -> None:
        """Drop waiting jobs, let the running look finish and stop the thread."""
        with self._cond:
            self._closed = True
            self._jobs.clear()
            calls = list(self._calls)
            self._calls.clear()
            self._cond.notify_all()
        for _, future in calls:
            future.cancel()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    # ---- the worker's side --------------------------------------------------------------
    def _next(self) -> Optional[Any]:
        with self._cond:
            self._cond.wait_for(lambda: self._closed or self._calls or self._jobs)
            if self._closed:
                return None
            self._busy = True
            if self._calls:
                return self._calls.popleft()
            key = next((k for k, j in self._jobs.items() if j.first), next(iter(self._jobs)))
            return self._jobs.pop(key)

    def _run(self) -> None:
        lower_thread_priority(self.nice)
        while True:
            item = self._next()
            if item is None:
                return
            try:
                if isinstance(item, LookJob):
                    self._look(item)
                else:
                    fn, future = item
                    if future.set_running_or_notify_cancel():
                        try:
                            future.set_result(fn())
                        except BaseException as exc:  # handed to whoever waits on the future
                            future.set_exception(exc)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _look(self, job: LookJob) -> None:
        started = time.perf_counter()
        try:
            look = look_at(job.frame, job.box, job.models, job.landmarker, job.gallery, job.skip)
        except Exception as exc:  # look_at catches model errors; anything else must not kill the thread
            log.exception("looking at track %d failed", job.track)
            look = Look(failed={"worker": f"{type(exc).__name__}: {exc}"})
        done = time.perf_counter()
        result = LookResult(job.track, job.frame_index, job.generation, look, started - job.queued_at, done - started)
        with self._cond:
            self.looks += 1
            self.busy_s += done - started
            self._results.append(result)
