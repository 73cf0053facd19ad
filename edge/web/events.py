"""The page's recent events: the last ``web.events_kept`` events in memory, with their face thumbnails.

Fed by the hub (edge.integrations) on the loop's thread, where it only appends; thumbnails are
JPEG-encoded when a browser first asks for one. Nothing is written to disk: a restart forgets them.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Optional

import cv2

from ..integrations import FaceEvent, ViewState


class EventLog:
    """Integration ``web``: recent events and the view state, for the page."""

    name = "web"

    def __init__(self, keep: int = 100, quality: int = 80):
        self.keep = int(keep)
        self.quality = int(quality)
        self.state = ViewState()
        self.people: list[str] = []
        self.received = 0
        self._lock = threading.Lock()
        self._events: "OrderedDict[int, FaceEvent]" = OrderedDict()
        self._jpegs: dict[int, bytes] = {}
        self._corrected: dict[int, str] = {}

    # ---- the hub's side (loop thread) ------------------------------------------------------------
    def on_event(self, event: FaceEvent) -> None:
        """Keep ``event`` (the oldest kept one goes)."""
        with self._lock:
            self._events[event.id] = event
            self.received += 1
            while len(self._events) > self.keep:
                old, _ = self._events.popitem(last=False)
                self._jpegs.pop(old, None)
                self._corrected.pop(old, None)

    def on_state(self, state: ViewState) -> None:
        """Keep the view state."""
        self.state = state

    def on_people(self, names: list[str]) -> None:
        """Keep the enrolled names."""
        self.people = list(names)

    def stats(self) -> dict[str, Any]:
        """Return events received and kept."""
        return {"events": self.received, "kept": len(self._events)}

    def close(self) -> None:
        """Nothing to flush: events live in memory only."""

    # ---- the page's side -------------------------------------------------------------------------
    def recent(self, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        """Return the kept events with an id above ``after``, newest first, as the page shows them."""
        with self._lock:
            events = [e for e in self._events.values() if e.id > after][-limit:]
            corrected = dict(self._corrected)
        out = []
        for event in reversed(events):
            item = dict(event.record)
            item["thumbnail"] = f"/api/events/{event.id}/face.jpg" if event.face is not None else None
            item["can_mark_wrong"] = bool(event.name and event.vectors and event.id not in corrected)
            item["corrected"] = corrected.get(event.id)
            out.append(item)
        return out

    def get(self, event_id: int) -> Optional[FaceEvent]:
        """Return the kept event ``event_id`` (None when unknown or no longer kept)."""
        with self._lock:
            return self._events.get(event_id)

    def thumbnail(self, event_id: int) -> Optional[bytes]:
        """Return the JPEG of the event's face thumbnail (None when there is none)."""
        with self._lock:
            event = self._events.get(event_id)
            cached = self._jpegs.get(event_id)
        if cached is not None or event is None or event.face is None:
            return cached
        ok, buf = cv2.imencode(".jpg", event.face, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            return None
        with self._lock:
            if event_id in self._events:
                self._jpegs[event_id] = buf.tobytes()
        return buf.tobytes()

    def corrected(self, event_id: int) -> Optional[str]:
        """Return what was done when the event's match was marked wrong (None: it was not)."""
        with self._lock:
            return self._corrected.get(event_id)

    def mark_corrected(self, event_id: int, message: str) -> None:
        """Remember that the event's match was marked wrong (what was done)."""
        with self._lock:
            if event_id in self._events:
                self._corrected[event_id] = message
