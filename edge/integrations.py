"""The running loop's integrations (MQTT / Home Assistant, the web page) and the hub that feeds them.

A :class:`Hub` stands in for the pipeline's event sink (it still writes the JSON-lines file when one
is configured) and hooks onto its ``on_tracks`` and ``on_frame`` callbacks. On the loop's thread it
turns what the loop knows into

- :class:`FaceEvent` s, in order: ``appear`` and ``leave`` (the pipeline's own events, as in the
  events file) and ``recognized`` (a track's voted name became a person: the moment a name is
  known, which is usually some looks after ``appear``), each with a small face thumbnail cut from
  the frame before anything is drawn on it and, once named, the track's embedding looks (so the
  page can mark the match as wrong);
- a :class:`ViewState` when what is in view changes: faces in view (tracks that appeared and have
  not left), the enrolled people among them, the last person recognised, the camera's state;
- the enrolled people's names whenever the loop's gallery changes.

Integrations only queue what they are given and do their work (network, JPEG) on threads of their
own, so neither a dead broker nor a slow browser can slow or stop the frame loop; an integration
that raises is logged and the loop goes on. Gallery changes made by the web page reach the loop
through :meth:`Hub.use_gallery`, which swaps the gallery in between two frames.
"""
from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, replace
from typing import Any, Optional, Protocol, Sequence

import cv2
import numpy as np

from .sinks import EventSink, _jsonable, iso_time
from .track import Track

log = logging.getLogger("face-edge.integrations")

THUMB_SIDE = 128          # px: the longer side of an event's face thumbnail
THUMB_MARGIN = 0.3        # of the face box, around it
CAMERA_STATES = ("starting", "ok", "lost", "stopped")
_UNSET = object()


@dataclass(frozen=True)
class FaceEvent:
    """One event about a face: its JSON-ready ``record`` and, for the page, a thumbnail and embeddings."""

    id: int
    record: dict[str, Any]                       # event, time, t, id, track, name, distance, attributes, ...
    face: Optional[np.ndarray] = None            # BGR thumbnail of the face (at most THUMB_SIDE px)
    vectors: tuple[np.ndarray, ...] = ()         # the track's embedding looks when it was named

    @property
    def kind(self) -> str:
        """Return ``appear``, ``leave`` or ``recognized``."""
        return str(self.record["event"])

    @property
    def name(self) -> Optional[str]:
        """Return the person the event names (None: unknown)."""
        return self.record.get("name")


@dataclass(frozen=True)
class ViewState:
    """What is in view now."""

    faces: int = 0                               # faces in view (appeared, not yet left)
    people: tuple[str, ...] = ()                 # enrolled people among them, sorted
    last_seen: Optional[dict[str, Any]] = None   # the last person recognised: name, time, t, distance
    camera: str = "starting"                     # starting | ok | lost | stopped

    def to_dict(self) -> dict[str, Any]:
        """Return the state as JSON-ready data."""
        return {"faces": self.faces, "people": list(self.people), "last_seen": self.last_seen, "camera": self.camera}


class Integration(Protocol):
    """Something the hub feeds. Every method is called on the loop's thread and must return at once."""

    name: str

    def on_event(self, event: FaceEvent) -> None:
        """Take one event (queue it)."""

    def on_state(self, state: ViewState) -> None:
        """Take the new view state (queue it)."""

    def on_people(self, names: list[str]) -> None:
        """Take the names of the enrolled people (the gallery changed)."""

    def stats(self) -> dict[str, Any]:
        """Return counters for status lines and ``face-edge check`` (any thread)."""

    def close(self) -> None:
        """Flush what can be flushed quickly and stop (at the end of the run)."""


@dataclass
class _Seen:
    """What the hub remembers of a track that appeared."""

    face: Optional[np.ndarray] = None
    vectors: tuple[np.ndarray, ...] = ()
    announced: Optional[str] = None      # the name of its last "recognized" event


def face_thumbnail(frame: np.ndarray, box: Sequence[int], side: int = THUMB_SIDE,
                   margin: float = THUMB_MARGIN) -> Optional[np.ndarray]:
    """Return a copy of the face in ``box`` with ``margin`` around it, its longer side at most ``side`` px
    (None when the box is outside the frame)."""
    x, y, w, h = (int(v) for v in box)
    pad = int(round(margin * max(w, h)))
    fh, fw = frame.shape[:2]
    x0, y0, x1, y1 = max(0, x - pad), max(0, y - pad), min(fw, x + w + pad), min(fh, y + h + pad)
    if x1 <= x0 or y1 <= y0:
        return None
    crop = frame[y0:y1, x0:x1]
    scale = side / max(crop.shape[:2])
    if scale < 1.0:
        return cv2.resize(crop, (max(1, int(crop.shape[1] * scale)), max(1, int(crop.shape[0] * scale))),
                          interpolation=cv2.INTER_AREA)
    return crop.copy()


def embedding_looks(track: Track) -> tuple[np.ndarray, ...]:
    """Return copies of the embedding vectors of the track's recent looks."""
    return tuple(np.array(h.vector, np.float32) for looks in track.heads.values() for h in looks
                 if h.vector is not None)


class Hub:
    """Feeds the loop's events and view state to the integrations (see the module docstring)."""

    name = "events"   # stands in for the pipeline's EventSink

    def __init__(self, pipeline: Any, integrations: Sequence[Integration] = (),
                 events_file: Optional[EventSink] = None):
        self.pipeline = pipeline
        self.integrations = list(integrations)
        self.events_file = events_file
        self.state = ViewState()
        self.count = 0                       # events emitted (as EventSink.count)
        self._next_id = 1
        self._pending: list[dict[str, Any]] = []
        self._seen: dict[int, _Seen] = {}
        self._votes: dict[int, tuple[tuple[int, int], Optional[str]]] = {}
        self._lock = threading.Lock()
        self._gallery_request: Any = _UNSET
        self._gallery_seen: Any = _UNSET
        self._people: Optional[list[str]] = None
        self._errors: dict[str, int] = {}
        self._closed = False

    # ---- wiring ---------------------------------------------------------------------------
    def attach(self) -> "Hub":
        """Become the pipeline's event sink and hook onto its callbacks; tell the integrations who is enrolled."""
        if self.pipeline.events is not None and self.pipeline.events is not self and self.events_file is None:
            self.events_file = self.pipeline.events
        self.pipeline.events = self
        self.pipeline.on_tracks.append(self.on_tracks)
        self.pipeline.on_frame.append(self.on_frame)
        self._check_gallery()
        return self

    def add(self, integration: Integration) -> None:
        """Feed ``integration`` too (before the loop runs); it is told who is enrolled."""
        self.integrations.append(integration)
        if self._people is not None:
            self._call(integration, "on_people", list(self._people))
        self._call(integration, "on_state", self.state)

    # ---- the EventSink side ---------------------------------------------------------------
    def emit(self, event: str, t: float, **fields: Any) -> None:
        """Take one of the pipeline's events: write it to the events file and queue it for the integrations."""
        if self.events_file is not None:
            self.events_file.emit(event, t, **fields)
        self.count += 1
        record = {"event": event, "time": iso_time(t), "t": round(t, 3), **fields}
        self._pending.append(json.loads(json.dumps(record, default=_jsonable)))

    def close(self) -> None:
        """Send what is pending, tell the integrations the camera stopped, close them and the events file."""
        if self._closed:
            return
        self._closed = True
        self._flush_pending({})
        self._set_state(replace(self.state, faces=0, people=(), camera="stopped"))
        for integration in self.integrations:
            try:
                integration.close()
            except Exception as exc:  # one integration failing to close must not keep the others open
                log.warning("%s: close failed: %s", integration.name, exc)
        if self.events_file is not None:
            self.events_file.close()

    # ---- loop hooks -----------------------------------------------------------------------
    def on_tracks(self, pipeline: Any, frame: np.ndarray, visible: list[Track], ended: list[Track]) -> None:
        """Loop hook: finish this frame's events (thumbnails, embeddings), announce new names, update the state."""
        try:
            by_id = {t.id: t for t in visible}
            by_id.update({t.id: t for t in ended})
            for track in visible:
                if track.appeared and track.id not in self._seen:
                    self._seen[track.id] = _Seen(face=face_thumbnail(frame, track.box))
            self._flush_pending(by_id)
            self._announce_names(pipeline, frame, by_id)
            for track in ended:
                self._seen.pop(track.id, None)
                self._votes.pop(track.id, None)
            live = [t for t in pipeline.tracker.tracks if t.appeared]
            vote_min = pipeline.settings.tracker.vote_min
            people = sorted({n for n in (self._voted(t, vote_min) for t in live) if n})
            if len(live) != self.state.faces or tuple(people) != self.state.people:
                self._set_state(replace(self.state, faces=len(live), people=tuple(people)))
        except Exception as exc:  # the integrations must never stop the loop
            self._failed("hub", exc)

    def on_frame(self, pipeline: Any, index: int) -> None:
        """Loop hook: swap in a gallery the page saved, notice gallery and camera changes, send leftovers."""
        try:
            if self._gallery_request is not _UNSET:
                with self._lock:
                    gallery, self._gallery_request = self._gallery_request, _UNSET
                pipeline.set_gallery(gallery)
            self._check_gallery()
            if self._pending:     # events emitted outside a frame (no on_tracks followed)
                self._flush_pending({})
            source = pipeline.source
            camera = "lost" if source is not None and getattr(source, "lost", False) else "ok"
            if camera != self.state.camera:
                self._set_state(replace(self.state, camera=camera))
        except Exception as exc:
            self._failed("hub", exc)

    # ---- from other threads ---------------------------------------------------------------
    def use_gallery(self, gallery: Any) -> None:
        """Have the loop match against ``gallery`` (None: nobody enrolled) from its next frame on."""
        with self._lock:
            self._gallery_request = gallery if gallery is not None and len(gallery) else None

    def status(self) -> dict[str, Any]:
        """Return the view state and every integration's counters."""
        out: dict[str, Any] = {**self.state.to_dict(), "events": self.count}
        for integration in self.integrations:
            try:
                out[integration.name] = integration.stats()
            except Exception as exc:
                out[integration.name] = {"error": str(exc)}
        return out

    # ---- inside -------------------------------------------------------------------------------
    def _voted(self, track: Track, vote_min: int) -> Optional[str]:
        """Return the track's voted name, counted again only when it got a new look (not on every frame)."""
        key = (len(track.names), id(track.names[-1]) if track.names else 0)
        cached = self._votes.get(track.id)
        if cached is not None and cached[0] == key:
            return cached[1]
        ident = track.identity(vote_min)
        name = ident.name if ident is not None else None
        self._votes[track.id] = (key, name)
        return name

    def _announce_names(self, pipeline: Any, frame: np.ndarray, by_id: dict[int, Track]) -> None:
        vote_min = pipeline.settings.tracker.vote_min
        for track in by_id.values():
            seen = self._seen.get(track.id)
            if seen is None or track.missed:
                continue
            name = self._voted(track, vote_min)
            if name is None or name == seen.announced:
                continue
            seen.announced = name
            seen.face = face_thumbnail(frame, track.box) if frame is not None else seen.face
            seen.vectors = embedding_looks(track)
            summary = pipeline.summary(track).to_dict()
            record = {"event": "recognized", "time": iso_time(track.last_seen), "t": round(track.last_seen, 3),
                      "frame": pipeline.frame_index, **summary}
            self.count += 1
            self._dispatch(json.loads(json.dumps(record, default=_jsonable)), seen.face, seen.vectors)
            self._set_state(replace(self.state, last_seen={"name": name, "time": record["time"], "t": record["t"],
                                                           "distance": record.get("distance")}))

    def _flush_pending(self, by_id: dict[int, Track]) -> None:
        pending, self._pending = self._pending, []
        for record in pending:
            track = by_id.get(record.get("track"))
            seen = self._seen.get(record.get("track"), _Seen())
            vectors = seen.vectors
            if record["event"] == "leave" and track is not None and record.get("name"):
                vectors = embedding_looks(track)
            self._dispatch(record, seen.face, vectors if record.get("name") else ())

    def _dispatch(self, record: dict[str, Any], face: Optional[np.ndarray], vectors: tuple[np.ndarray, ...]) -> None:
        record["id"] = self._next_id
        event = FaceEvent(self._next_id, record, face, vectors)
        self._next_id += 1
        for integration in self.integrations:
            self._call(integration, "on_event", event)

    def _set_state(self, state: ViewState) -> None:
        if state == self.state:
            return
        self.state = state
        for integration in self.integrations:
            self._call(integration, "on_state", state)

    def _check_gallery(self) -> None:
        gallery = getattr(self.pipeline, "gallery", None)
        if gallery is self._gallery_seen:
            return
        self._gallery_seen = gallery
        names = list(gallery.names()) if gallery is not None else []
        if names != self._people:
            self._people = names
            for integration in self.integrations:
                self._call(integration, "on_people", list(names))

    def _call(self, integration: Integration, method: str, arg: Any) -> None:
        try:
            getattr(integration, method)(arg)
        except Exception as exc:
            self._failed(integration.name, exc)

    def _failed(self, who: str, exc: BaseException) -> None:
        n = self._errors[who] = self._errors.get(who, 0) + 1
        if n == 1 or n % 1000 == 0:   # log the first failure, then every 1000th: the loop goes on
            log.error("integration %s failed (%d so far; the loop goes on): %s: %s", who, n, type(exc).__name__, exc)


__all__ = ["CAMERA_STATES", "FaceEvent", "Hub", "Integration", "ViewState", "embedding_looks", "face_thumbnail"]
