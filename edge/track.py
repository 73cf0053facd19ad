"""IoU tracking of face boxes, and per-track smoothing of what the models say about each face.

Boxes update every frame; the models run on a track only when it is new or every
``refresh_every`` frames (:meth:`Track.due`). A track ends after ``max_missed`` frames without
its face, or (:meth:`IouTracker.expire`) after that many frames' worth of time, so a camera that
stops sending frames ends its tracks too; ``active_s`` counts only time with frames (the
frame loop's clock skips gaps). Each model run is one "look": identity is
decided by voting (a name is shown only when it wins ``vote_min`` of the last
``vote_window`` looks, otherwise the face is "unknown") and attribute scores are the mean
of the last ``vote_window`` looks.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Iterable, Optional

import numpy as np

from .config import TrackerSettings
from .crop import Box, iou
from .distance import check_distance, model_vector
from .models import HeadResult, Prediction


@dataclass
class Identity:
    """The voted identity of a track: ``name`` None means unknown; ``distance`` to the gallery."""

    name: Optional[str]
    distance: Optional[float]
    votes: int = 0
    looks: int = 0


@dataclass
class Track:
    """One face followed across frames, with its recent model looks."""

    id: int
    box: Box
    first_frame: int
    first_seen: float
    vote_window: int = 5
    last_seen: float = 0.0
    hits: int = 1
    missed: int = 0
    last_run: Optional[int] = None
    appeared: bool = False             # an "appear" event was emitted for it
    looks: int = 0                     # model looks applied to it
    revision: int = 0                  # bumped whenever its looks or name votes change (what it shows may change)
    active_s: float = 0.0              # seconds of frames from its first to its last detection
    last_clock: float = 0.0            # the frame clock at its last detection
    heads: dict[tuple[str, str], deque] = field(default_factory=dict)
    names: deque = field(default_factory=deque)

    def __post_init__(self) -> None:
        self.names = deque(self.names, maxlen=self.vote_window)

    def due(self, frame_index: int, refresh_every: int) -> bool:
        """Return True when the models should run on this track in frame ``frame_index``."""
        return self.last_run is None or frame_index - self.last_run >= refresh_every

    def add_prediction(self, prediction: Prediction) -> None:
        """Record one model's look at this face (every head of ``prediction``)."""
        self.revision += 1
        for head in prediction.heads.values():
            key = (prediction.model, head.name)
            if key not in self.heads:
                self.heads[key] = deque(maxlen=self.vote_window)
            self.heads[key].append(head)

    def add_identity(self, name: Optional[str], distance: float) -> None:
        """Record one gallery match (name None = unknown) for voting."""
        self.revision += 1
        self.names.append((name, float(distance)))

    def forget(self, model: Optional[str] = None) -> None:
        """Drop the looks of ``model`` (all models when None) and make the track due again."""
        self.revision += 1
        for key in [k for k in self.heads if model is None or k[0] == model]:
            del self.heads[key]
        self.names.clear()
        self.last_run = None

    def identity(self, vote_min: int) -> Optional[Identity]:
        """Return the voted identity, or None when no gallery match has been made yet."""
        if not self.names:
            return None
        counts: dict[str, int] = {}
        for name, _ in self.names:
            if name is not None:
                counts[name] = counts.get(name, 0) + 1
        if counts:
            best = max(counts, key=counts.__getitem__)
            if counts[best] >= vote_min:
                dists = [d for n, d in self.names if n == best]
                return Identity(best, float(np.mean(dists)), counts[best], len(self.names))
        return Identity(None, self.names[-1][1], 0, len(self.names))

    def smoothed(self) -> dict[tuple[str, str], HeadResult]:
        """Return every (model, head) result averaged over the recent looks."""
        return {key: smooth(list(looks)) for key, looks in self.heads.items() if looks}


def smooth(looks: list[HeadResult]) -> HeadResult:
    """Return the mean of several looks of one head (scores, value, or vector: re-normalised when the model's
    vectors are unit vectors, edge.distance)."""
    last = looks[-1]
    if last.scores:
        labels = last.scores.keys()
        scores = {label: float(np.mean([h.scores.get(label, 0.0) for h in looks])) for label in labels}
        return HeadResult(last.name, last.kind, scores=scores, unit=last.unit)
    if last.value is not None:
        values = [h.value for h in looks if h.value is not None]
        return HeadResult(last.name, last.kind, value=float(np.mean(values)), unit=last.unit)
    if last.vector is not None:
        mean = np.mean([h.vector for h in looks if h.vector is not None], axis=0)
        return HeadResult(last.name, last.kind, vector=model_vector(mean, check_distance(last.unit)), unit=last.unit)
    return last


class IouTracker:
    """Greedy IoU matching of detections to tracks; ``update`` returns the tracks that ended."""

    def __init__(self, settings: Optional[TrackerSettings] = None):
        self.settings = settings or TrackerSettings()
        self.tracks: list[Track] = []
        self._next_id = 1

    def update(self, boxes: Iterable[Box], frame_index: int, now: float, clock: Optional[float] = None) -> list[Track]:
        """Match this frame's boxes to the tracks, start new tracks, and return those that ended.

        ``now`` is the wall time; ``clock`` the frame clock (seconds of frames, gaps left out) that
        ``active_s`` is counted in (``now`` when not given).
        """
        clock = now if clock is None else clock
        boxes = list(boxes)
        pairs = sorted(((iou(t.box, b), ti, bi) for ti, t in enumerate(self.tracks) for bi, b in enumerate(boxes)),
                       reverse=True)
        used_t: set[int] = set()
        used_b: set[int] = set()
        for score, ti, bi in pairs:
            if score < self.settings.iou:
                break
            if ti in used_t or bi in used_b:
                continue
            used_t.add(ti)
            used_b.add(bi)
            track = self.tracks[ti]
            track.box = boxes[bi]
            track.hits += 1
            track.missed = 0
            track.last_seen = now
            track.active_s += max(0.0, clock - track.last_clock)
            track.last_clock = clock
        ended = []
        alive = []
        for ti, track in enumerate(self.tracks):
            if ti not in used_t:
                track.missed += 1
                if track.missed > self.settings.max_missed:
                    ended.append(track)
                    continue
            alive.append(track)
        for bi, box in enumerate(boxes):
            if bi not in used_b:
                alive.append(Track(self._next_id, box, frame_index, now, self.settings.vote_window,
                                   last_seen=now, last_clock=clock))
                self._next_id += 1
        self.tracks = alive
        return ended

    def expire(self, now: float, budget_s: float) -> list[Track]:
        """End and return the tracks whose face was last seen more than ``budget_s`` ago (wall time):
        the missed-frame budget in time, which also runs out while no frames arrive."""
        ended = [t for t in self.tracks if now - t.last_seen > budget_s]
        if ended:
            self.tracks = [t for t in self.tracks if now - t.last_seen <= budget_s]
        return ended

    def visible(self) -> list[Track]:
        """Return the tracks detected in the latest frame."""
        return [t for t in self.tracks if t.missed == 0]

    def end_all(self) -> list[Track]:
        """End every track (at shutdown) and return them."""
        ended, self.tracks = self.tracks, []
        return ended
