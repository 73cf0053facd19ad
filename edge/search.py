"""Where to look for faces in each frame, so that no frame pays for a whole-frame search.

A whole-frame Haar search at full resolution costs several times everything else a frame does,
and a half-size one misses many faces that full-size Haar finds (small ones, and the many that
are only just detectable). :class:`FaceSearch` splits the work:

1. **Tracked faces**, every frame, in the loop: a region a quarter of the face's size wider on each
   side around each live track, for faces of 0.85x to 1.18x its size, with fewer neighbours than a
   cold search (the face was just there), which keeps a face that full-size Haar finds only every
   other frame. (Over consecutive frames of the benchmark clips where full-size Haar found a face
   in both, this found it again in 97.9 % on Hamilton and 100 % on the demo, against 97.4 % and
   100 % with a third, 0.8x-1.25x and one neighbour more, in 62 % and 68 % of the time: a face
   near the camera made most of a frame's search.) The region is shrunk first until its smallest face
   is two Haar windows wide (``TRACK_WINDOWS``): OpenCV slides its window a pixel at a time on levels
   scaled by more than 2, so a large face searched at full size paid for a finer grid than a small one.
   A face found in the last frame after a search there, and not moving fast, is *followed* for one
   frame instead: its patch of the last frame is matched in this frame's region around it (normalised
   correlation on a 32 px wide copy, a tenth of a search's time); a match under FOLLOW_MIN_SCORE is
   searched after all. Each face is searched at least every other frame.
2. **Motion**, every frame, in the loop: the parts of a 1/8-size difference image that changed
   and are not around a track (someone walking in) are searched at once, within a budget.
3. **The whole frame**, on a background thread (:class:`WholeFrameSearch`, ``full_frame_every:
   0``): full-size Haar on the newest frame, again as soon as it is done, at a lower CPU priority
   than the loop. The faces it finds come back a few frames later as *seeds*: a tracked-face
   search around each, in the current frame, turns them into tracks. With ``full_frame_every: N``
   the loop itself searches the whole frame every Nth frame instead (1: every frame, what
   full-size Haar finds, at its cost). On a machine busy with other work the background search
   runs less often and new faces are found later; the loop's frames stay as short.
4. **Slices of the whole frame**, in the loop, while no face is tracked and a frame's own search
   took less than ``detector.search_budget_ms``: the whole frame is cut into cells (per band of face sizes, a
   grid of tiles overlapping by the band's largest face; bands overlap a little so Haar's grouping
   of neighbouring hits is not cut at a band edge) and the frame searches the next cells that fit
   in what is left of the budget (their time learnt from the searches made). A loop with no face
   to follow so sweeps the whole frame itself every few frames, with fresh results; frames with
   faces (where the labels and the models' work are) stay short.

Everything runs on one histogram-equalised grey frame (at ``detector.downscale``), equalised once
for the whole frame as a whole-frame search would, so a region finds what the whole-frame search
finds there. The first frame of a scene is searched whole, in the loop.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import cv2
import numpy as np

from .crop import Box, iou
from .detect import HaarDetector, cascade_path
from .threads import lower_thread_priority

WINDOW = 24                  # the Haar cascades' window side
TRACK_MAX_MISSED = 5         # search around a track missed at most this many frames in a row
TRACK_SIZES = (0.85, 1.18)   # face sizes searched around a track, relative to its box
TRACK_PAD = 0.25             # the region around a track reaches this many face sides beyond its box
TRACK_NEIGHBOURS_LESS = 3    # min_neighbors minus this around tracks and seeds
TRACK_WINDOWS = 2.0          # a region around a track is shrunk until its smallest face is this many windows wide
FOLLOW_MAX_SHIFT = 0.25      # a face that moved less than this share of its side may be followed a frame unsearched
FOLLOW_MIN_SCORE = 0.6       # normalised correlation a followed face's patch needs (else the region is searched)
FOLLOW_WIDTH = 32            # the patch and its region are matched at this width of the face
SEED_IOU = 0.3               # a background face overlapping a live track this much is that track
SEED_FRAMES = 10             # a background face not found around its box is searched for this many frames
MOTION_CELL = 8              # the motion image is 1/8 of the frame
MOTION_LEVEL = 20            # grey-level change that counts as motion
MOTION_BUDGET = 0.03         # motion regions may cost this share of a whole-frame search per frame
MOTION_MAX_SHARE = 0.4       # more of the frame than this moved: a pan or a cut, left to the whole-frame search
BAND_EDGES = (1.5, 2.4, 3.75)  # sweep bands: [min, 1.5 min), [1.5 min, 2.4 min), ... in units of min_size
BAND_OVERLAP = 1.25          # each sweep band reaches this factor into its neighbours
MAX_GRID = 6                 # a band's tiles: at most this many across and down
MAX_OVERLAP_COST = 2.0       # tiles' overlaps may add this much to a band's cost
SWEEP_IDLE_ONLY = True       # slices only while no face is tracked (frames with faces stay short)
BACKGROUND_NICE = 4          # the whole-frame search yields the CPU to the loop and to the model worker


@dataclass(frozen=True)
class Region:
    """A searched rectangle of the scaled frame (x0, y0, x1, y1), for faces of side lo..hi (None: any)."""

    x0: int
    y0: int
    x1: int
    y1: int
    lo: int
    hi: Optional[int]
    kind: str                # "track", "followed" (matched, not searched), "seed", "motion", "sweep" or "whole"


def search_cost(width: float, height: float, lo: float, hi: Optional[float], scale_factor: float) -> float:
    """Return the window positions a Haar search of a width x height image for faces lo..hi visits
    (the summed size of the pyramid levels it scans): what its time is proportional to."""
    total, factor = 0.0, 1.0
    while width / factor >= WINDOW and height / factor >= WINDOW:
        side = WINDOW * factor
        if hi is not None and side > hi:
            break
        if side >= lo:
            total += (width / factor) * (height / factor)
        factor *= scale_factor
    return total


def sweep_cells(width: int, height: int, min_size: int, scale_factor: float) -> list[tuple[Region, float]]:
    """Return the whole frame cut into sweep cells, with their costs: per band of face sizes, the grid of
    overlapping tiles with the cheapest tile whose overlaps add at most MAX_OVERLAP_COST to the band."""
    edges = [float(min_size)] + [min_size * e for e in BAND_EDGES] + [None]
    cells = []
    for low, high in zip(edges[:-1], edges[1:]):
        lo = max(float(min_size), low / BAND_OVERLAP)
        hi = None if high is None else high * BAND_OVERLAP
        whole = search_cost(width, height, lo, hi, scale_factor)
        if whole <= 0:
            continue                           # faces this large do not fit in the frame
        overlap = int(hi if hi is not None else max(width, height)) + 2
        best = (whole, 1, 1)
        for cols in range(1, MAX_GRID + 1):
            for rows in range(1, MAX_GRID + 1):
                tile = search_cost(min(width, width / cols + overlap), min(height, height / rows + overlap),
                                   lo, hi, scale_factor)
                if tile * cols * rows <= MAX_OVERLAP_COST * whole and tile < best[0]:
                    best = (tile, cols, rows)
        _, cols, rows = best
        for j in range(rows):
            for i in range(cols):
                x0, x1 = _span(i, cols, width, overlap)
                y0, y1 = _span(j, rows, height, overlap)
                cells.append((Region(x0, y0, x1, y1, int(lo), None if hi is None else int(hi), "sweep"),
                              search_cost(x1 - x0, y1 - y0, lo, hi, scale_factor)))
    return cells


def region_around(box: Sequence[float], width: int, height: int, min_size: int, kind: str,
                  pad: float = TRACK_PAD, sizes: tuple[float, float] = TRACK_SIZES) -> Region:
    """Return the region searched for a face last seen at ``box`` (pixels of the searched image): ``pad`` face
    sides beyond the box on each side, for faces of ``sizes`` times its side."""
    x, y, w, h = box
    side = max(w, h)
    reach = side * pad
    lo = max(min_size, int(side * sizes[0]))
    return Region(max(0, int(x - reach)), max(0, int(y - reach)), min(width, int(x + w + reach)),
                  min(height, int(y + h + reach)), lo, max(lo + 1, int(side * sizes[1])), kind)


def search_region(classifier: Any, grey: np.ndarray, region: Region, scale_factor: float, min_neighbors: int,
                  neighbours_less: int = TRACK_NEIGHBOURS_LESS, windows: float = TRACK_WINDOWS) -> list[Box]:
    """Return the faces ``classifier`` finds in ``region`` of ``grey`` (pixels of ``grey``).

    Around a track or a seed (where a face just was) it asks for ``neighbours_less`` fewer neighbours, and
    first shrinks the region until its smallest face is ``windows`` Haar windows wide. OpenCV moves its
    window one pixel at a time on pyramid levels scaled by more than 2 and two pixels below, so a large face
    searched at full size costs about four times as many window positions, for the same grid relative to
    the face."""
    part = grey[region.y0:region.y1, region.x0:region.x1]
    if min(part.shape[:2]) < max(WINDOW, region.lo):
        return []
    near = region.kind in ("track", "seed")
    shrink = WINDOW * windows / region.lo if near and windows and region.lo > WINDOW * windows else 1.0
    lo, hi = region.lo, region.hi
    if shrink != 1.0:
        part = cv2.resize(part, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
        lo = max(WINDOW, int(round(lo * shrink)))
        hi = None if hi is None else max(lo + 1, int(round(hi * shrink)))
    found = classifier.detectMultiScale(
        part, scaleFactor=scale_factor,
        minNeighbors=max(1, min_neighbors - neighbours_less) if near else min_neighbors,
        minSize=(lo, lo), maxSize=(0, 0) if hi is None else (hi, hi))
    return [(int(round(x / shrink)) + region.x0, int(round(y / shrink)) + region.y0, int(round(w / shrink)),
             int(round(h / shrink))) for x, y, w, h in (found if len(found) else [])]


def _span(i: int, n: int, length: int, overlap: int) -> tuple[int, int]:
    """Return the i-th of n overlapping spans of 0..length (each reaching overlap/2 into its neighbours)."""
    return max(0, int(i * length / n - overlap / 2)), min(length, int((i + 1) * length / n + overlap / 2))


class WholeFrameSearch:
    """A daemon thread that searches the newest offered frame whole, again and again.

    ``offer(grey, index)`` hands it the loop's equalised frame (kept, not copied: the loop never
    changes it); ``take()`` returns the faces of the last finished search with its frame index.
    """

    def __init__(self, classifier: Any, min_size: int, scale_factor: float, min_neighbors: int,
                 nice: int = BACKGROUND_NICE):
        self.classifier = classifier
        self.min_size, self.scale_factor, self.min_neighbors = min_size, scale_factor, min_neighbors
        self.nice = nice
        self.searches = 0
        self._cond = threading.Condition()
        self._offered: Optional[tuple[np.ndarray, int]] = None
        self._done: Optional[tuple[int, list[Box]]] = None
        self._closed = False
        self._using = threading.Lock()     # the classifier, held while it searches (its thread or the loop)
        self._thread = threading.Thread(target=self._run, name="face-edge search", daemon=True)
        self._thread.start()

    def search_now(self, grey: np.ndarray) -> list[Box]:
        """Return the faces of ``grey`` searched whole on the calling thread (after the search under way).

        The loop's own whole-frame searches (a scene's first frame) use this classifier too: OpenCV keeps
        a classifier's pyramid buffers at the largest size it has searched, about 7 MB for a 640x480
        frame, and the loop's classifier otherwise searches only small regions."""
        with self._using:
            return self._detect(grey)

    def _detect(self, grey: np.ndarray) -> list[Box]:
        found = self.classifier.detectMultiScale(grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                                                 minSize=(self.min_size, self.min_size))
        return [tuple(int(v) for v in b) for b in (found if len(found) else [])]

    def offer(self, grey: np.ndarray, index: int) -> None:
        """Make ``grey`` (frame ``index``) the next frame to search; an older one not yet started is dropped."""
        with self._cond:
            self._offered = (grey, index)
            self._cond.notify_all()

    def take(self) -> Optional[tuple[int, list[Box]]]:
        """Return (frame index, faces) of the search finished since the last call, or None."""
        with self._cond:
            done, self._done = self._done, None
        return done

    def close(self) -> None:
        """Stop the thread after the search under way."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=10.0)

    def _run(self) -> None:
        lower_thread_priority(self.nice)
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or self._offered is not None)
                if self._closed:
                    return
                (grey, index), self._offered = self._offered, None
            with self._using:
                boxes = self._detect(grey)
            with self._cond:
                self.searches += 1
                self._done = (index, boxes)


class FaceSearch:
    """``find(frame, tracks)`` returns this frame's face boxes (full-frame pixels), largest first."""

    def __init__(self, detector: HaarDetector, full_frame_every: int = 0, budget_ms: float = 0.0):
        self.detector = detector
        self.full_frame_every = max(0, int(full_frame_every))
        self.budget_s = max(0.0, float(budget_ms)) / 1000.0
        self.scale = float(detector.downscale)
        self.regions: list[Region] = []            # what the last find() searched (for tests and the benchmark)
        self._previous: Optional[np.ndarray] = None
        self._frames = 0
        self._background: Optional[WholeFrameSearch] = None
        self._seeds: list[tuple[Box, int]] = []    # background faces not tracked yet (scaled box, frames left)
        self._cells: list[tuple[Region, float]] = []
        self._cells_for: tuple[int, int] = (0, 0)
        self._turn = 0
        self._s_per_cost = 0.0                     # seconds per window position, learnt from the searches made
        self._track_boxes: dict[Any, tuple[Box, bool]] = {}   # track id -> (its box last frame, followed then)
        self._last_grey: Optional[np.ndarray] = None

    def reset(self) -> None:
        """Forget the previous frame (a new scene): the next frame is searched whole, in the loop."""
        self._previous = None
        self._frames = 0
        self._seeds = []
        self._track_boxes = {}
        self._last_grey = None
        if self._background is not None:
            self._background.take()      # faces of the old scene are no seeds for the new one

    def close(self) -> None:
        """Stop the background search (if it runs)."""
        if self._background is not None:
            self._background.close()
            self._background = None

    @property
    def background_searches(self) -> int:
        """Return how many whole-frame searches the background thread finished."""
        return 0 if self._background is None else self._background.searches

    def find(self, frame: np.ndarray, tracks: Sequence = ()) -> list[Box]:
        """Return the faces of ``frame``: around ``tracks`` (objects with ``box`` and ``missed``), around
        the background search's newest faces, where the picture moved, and the whole frame when due."""
        if frame is None or frame.size == 0:
            return []
        started = time.perf_counter()
        grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        if self.scale != 1.0:
            grey = cv2.resize(grey, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_AREA)
        grey = cv2.equalizeHist(grey)
        height, width = grey.shape[:2]
        min_size = max(WINDOW, int(round(self.detector.min_size * self.scale)))
        live = [t for t in tracks if t.missed <= TRACK_MAX_MISSED]
        small = cv2.resize(grey, (max(1, width // MOTION_CELL), max(1, height // MOTION_CELL)),
                           interpolation=cv2.INTER_AREA)
        every = self.full_frame_every
        due = bool(every) and self._frames % every == 0
        first = self._previous is None or self._previous.shape != small.shape
        followed = {} if due or first else self._follow(live, grey, min_size)
        regions = [self._around(t.box, width, height, min_size, "followed" if id(t) in followed else "track")
                   for t in live]
        self._track_boxes = {t.id: (tuple(t.box), id(t) in followed) for t in live if hasattr(t, "id")}
        self._last_grey = grey
        seeds = [] if every else self._seed_regions(live, width, height, min_size)
        if due or first:
            regions.append(Region(0, 0, width, height, min_size, None, "whole"))
        else:
            regions += seeds
            regions += self._motion_regions(small, regions, width, height, min_size)
        whole = due or first             # the whole frame is among the regions
        if not every and not whole:      # a frame the loop searches whole needs no search in the background
            self._background_search().offer(grey, self._frames)
        self._previous = small
        self._frames += 1
        boxes: list[Box] = list(followed.values())
        for region in regions:
            if region.kind != "followed":
                self._add(boxes, self._timed_search(grey, region))
        if self.budget_s and not whole and not (SWEEP_IDLE_ONLY and live):
            regions += self._sweep(grey, boxes, started, min_size)
        self.regions = regions
        if self.scale != 1.0:
            boxes = [tuple(int(round(v / self.scale)) for v in b) for b in boxes]
        return sorted(boxes, key=lambda b: b[2] * b[3], reverse=True)

    @staticmethod
    def _add(boxes: list[Box], found: list[Box]) -> None:
        for box in found:
            if all(iou(box, other) < 0.5 for other in boxes):   # regions overlap: one box per face
                boxes.append(box)

    def _timed_search(self, grey: np.ndarray, region: Region) -> list[Box]:
        """Search ``region`` and learn how long a window position takes (for the sweep's budget)."""
        t0 = time.perf_counter()
        found = self._search(grey, region)
        cost = search_cost(region.x1 - region.x0, region.y1 - region.y0, region.lo, region.hi,
                           self.detector.scale_factor)
        if cost > 1000:
            rate = (time.perf_counter() - t0) / cost
            self._s_per_cost = rate if not self._s_per_cost else 0.8 * self._s_per_cost + 0.2 * rate
        return found

    def _sweep(self, grey: np.ndarray, boxes: list[Box], started: float, min_size: int) -> list[Region]:
        """Search the next sweep cells that fit in what is left of this frame's budget; return them."""
        height, width = grey.shape[:2]
        if self._cells_for != (width, height):
            self._cells = sweep_cells(width, height, min_size, self.detector.scale_factor)
            self._cells_for = (width, height)
        done: list[Region] = []
        for _ in range(len(self._cells)):
            left = self.budget_s - (time.perf_counter() - started)
            region, cost = self._cells[self._turn % len(self._cells)]
            if not self._s_per_cost or cost * self._s_per_cost > left:
                break
            self._turn += 1
            self._add(boxes, self._timed_search(grey, region))
            done.append(region)
        return done

    def _follow(self, live: Sequence, grey: np.ndarray, min_size: int) -> dict[int, Box]:
        """Return, by ``id()`` of the track, the boxes (scaled frame pixels) of the faces followed this frame:
        found in the last frame after a search there, moved less than FOLLOW_MAX_SHIFT of their side since
        the frame before, and whose last-frame patch matches here with at least FOLLOW_MIN_SCORE."""
        if self._last_grey is None or self._last_grey.shape != grey.shape:
            return {}
        height, width = grey.shape[:2]
        out: dict[int, Box] = {}
        for track in live:
            before = self._track_boxes.get(getattr(track, "id", None))
            if track.missed or before is None or before[1]:
                continue
            x, y, w, h = (int(round(v * self.scale)) for v in track.box)
            (x0, y0, w0, h0) = (int(round(v * self.scale)) for v in before[0])
            limit = FOLLOW_MAX_SHIFT * max(w, h)
            if (abs((x + w / 2) - (x0 + w0 / 2)) >= limit or abs((y + h / 2) - (y0 + h0 / 2)) >= limit
                    or abs(w - w0) >= limit or w < min_size or x < 0 or y < 0 or x + w > width or y + h > height):
                continue
            region = region_around((x, y, w, h), width, height, min_size, "followed")
            shrink = FOLLOW_WIDTH / w
            patch = cv2.resize(self._last_grey[y:y + h, x:x + w], None, fx=shrink, fy=shrink,
                               interpolation=cv2.INTER_AREA)
            around = cv2.resize(grey[region.y0:region.y1, region.x0:region.x1], None, fx=shrink, fy=shrink,
                                interpolation=cv2.INTER_AREA)
            if around.shape[0] < patch.shape[0] or around.shape[1] < patch.shape[1]:
                continue
            _, score, _, (px, py) = cv2.minMaxLoc(cv2.matchTemplate(around, patch, cv2.TM_CCOEFF_NORMED))
            if score >= FOLLOW_MIN_SCORE:
                out[id(track)] = (region.x0 + int(round(px / shrink)), region.y0 + int(round(py / shrink)), w, h)
        return out

    def _background_search(self) -> WholeFrameSearch:
        if self._background is None:
            d = self.detector
            # A classifier of its own: OpenCV's CascadeClassifier must not be used by two threads at once.
            self._background = WholeFrameSearch(cv2.CascadeClassifier(str(cascade_path(d.cascade))), max(WINDOW, int(round(d.min_size * self.scale))),
                                                d.scale_factor, d.min_neighbors)
        return self._background

    def _around(self, box: Sequence[float], width: int, height: int, min_size: int, kind: str) -> Region:
        """Return the region searched for a face last seen at ``box`` (frame pixels for a track)."""
        return region_around(tuple(v * self.scale for v in box) if kind in ("track", "followed") else box, width,
                             height, min_size, kind)

    def _seed_regions(self, live: Sequence, width: int, height: int, min_size: int) -> list[Region]:
        """Return the regions around the background search's faces that no live track covers yet; each is
        searched for SEED_FRAMES frames (a face Haar finds only now and then still becomes a track)."""
        done = None if self._background is None else self._background.take()
        if done is not None:
            self._seeds = [(box, SEED_FRAMES) for box in done[1]]
        tracked = [tuple(v * self.scale for v in t.box) for t in live]
        self._seeds = [(box, left - 1) for box, left in self._seeds
                       if left > 0 and all(iou(box, t) < SEED_IOU for t in tracked)]
        return [self._around(box, width, height, min_size, "seed") for box, _ in self._seeds]

    def _motion_regions(self, small: np.ndarray, searched: list[Region], width: int, height: int,
                        min_size: int) -> list[Region]:
        moved = (cv2.absdiff(small, self._previous) > MOTION_LEVEL).astype(np.uint8)
        for r in searched:                     # a tracked face moving is searched already
            moved[r.y0 // MOTION_CELL:(r.y1 + MOTION_CELL - 1) // MOTION_CELL,
                  r.x0 // MOTION_CELL:(r.x1 + MOTION_CELL - 1) // MOTION_CELL] = 0
        if moved.mean() > MOTION_MAX_SHARE:
            return []
        count, _, stats, _ = cv2.connectedComponentsWithStats(cv2.dilate(moved, np.ones((3, 3), np.uint8)),
                                                             connectivity=8)
        budget = MOTION_BUDGET * search_cost(width, height, min_size, None, self.detector.scale_factor)
        regions = []
        for x, y, w, h, area in sorted(stats[1:], key=lambda s: -s[4]):
            if area < 3:
                continue
            cx, cy = (x + w / 2) * MOTION_CELL, (y + h / 2) * MOTION_CELL
            half = max(w, h) * MOTION_CELL / 2 + min_size
            region = Region(max(0, int(cx - half)), max(0, int(cy - half)), min(width, int(cx + half)),
                            min(height, int(cy + half)), min_size, None, "motion")
            cost = search_cost(region.x1 - region.x0, region.y1 - region.y0, min_size, None,
                               self.detector.scale_factor)
            if cost <= budget:
                budget -= cost
                regions.append(region)
        return regions

    def _search(self, grey: np.ndarray, region: Region) -> list[Box]:
        if region.kind == "whole" and not self.full_frame_every:
            return self._background_search().search_now(grey)
        return search_region(self.detector.classifier, grey, region, self.detector.scale_factor,
                             self.detector.min_neighbors, TRACK_NEIGHBOURS_LESS, TRACK_WINDOWS)
