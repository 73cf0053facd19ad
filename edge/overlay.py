"""Drawing on the frame: face boxes with track id, name or "unknown" with distance, attributes,
age group / gender / emotion, and FPS + runtime in a corner. Text sits on a dark backing box so it
stays readable at 640x480 on any background.

:func:`face_summary` decides *what* is shown for a face (the events sink writes the same
thing); :func:`draw_faces` and :func:`draw_status` decide *how*.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import cv2
import numpy as np

from .bundle import Manifest, OutputSpec
from .track import Track

FONT = cv2.FONT_HERSHEY_SIMPLEX
KNOWN = (80, 200, 60)        # BGR: a recognised person
UNKNOWN = (0, 140, 255)      # an unknown face (recognition on)
FACE = (230, 200, 40)        # a face (no recognition)
ALERT = (40, 40, 220)
TEXT = (255, 255, 255)
BACKING = (25, 25, 25)
WRAP_CHARS = 34


@dataclass
class FaceSummary:
    """What is known about one tracked face, ready to show or log."""

    track: int
    name: Optional[str] = None                     # voted name; None = unknown or no recognition
    distance: Optional[float] = None               # cosine distance to the nearest enrolled face
    recognised: bool = False                       # a gallery match was made (name may still be None)
    tags: list[str] = field(default_factory=list)  # sigmoid labels over their thresholds, reliable ones
    values: dict[str, Any] = field(default_factory=dict)  # head -> class (softmax / two-class sigmoid) or value
    groups: dict[str, str] = field(default_factory=dict)  # regression head -> its group label (age 25.3 -> 20-29)

    def to_dict(self) -> dict[str, Any]:
        """Return the summary as a JSON-ready dict."""
        return {"track": self.track, "name": self.name,
                "distance": None if self.distance is None else round(self.distance, 4),
                "attributes": list(self.tags), **{k: v for k, v in self.values.items()},
                **{f"{k}_group": v for k, v in self.groups.items()}}


# Shown for an age head whose manifest lists no groups: [min, max) in years, the last open-ended.
DEFAULT_AGE_GROUPS: tuple[Mapping[str, Any], ...] = (
    {"label": "0-2", "min": 0, "max": 3}, {"label": "3-9", "min": 3, "max": 10},
    *({"label": f"{a}-{a + 9}", "min": a, "max": a + 10} for a in range(10, 70, 10)),
    {"label": "70+", "min": 70})


def value_group(value: float, groups: Sequence[Mapping[str, Any]]) -> Optional[str]:
    """Return the label of the group [min, max) holding ``value``; below the first / above the last
    group, that group's label; None when ``groups`` is empty."""
    if not groups:
        return None
    for group in groups:
        low, high = group.get("min"), group.get("max")
        if (low is None or value >= float(low)) and (high is None or value < float(high)):
            return str(group["label"])
    first_min = groups[0].get("min")
    return str(groups[0]["label"] if first_min is not None and value < float(first_min) else groups[-1]["label"])


def groups_of(spec: OutputSpec) -> Sequence[Mapping[str, Any]]:
    """Return the groups a regression output's value is shown in: the manifest's, else the default age
    groups for an age output, else none."""
    if spec.groups:
        return spec.groups
    return DEFAULT_AGE_GROUPS if spec.name == "age" or "age" in spec.unit.lower() else ()


def face_summary(track: Track, manifests: Mapping[str, Manifest], vote_min: int) -> FaceSummary:
    """Return what the overlay shows for ``track``: voted identity, attributes over thresholds,
    top softmax labels, the winning class of one-label sigmoids (e.g. female / male), regression
    values with their group (age 25.3 -> 20-29); labels the manifest marks unreliable are left out."""
    summary = FaceSummary(track.id)
    ident = track.identity(vote_min)
    if ident is not None:
        summary.recognised = True
        summary.name, summary.distance = ident.name, ident.distance
    for (model, head_name), head in track.smoothed().items():
        manifest = manifests.get(model)
        if manifest is None:
            continue
        try:
            spec = manifest.output(head_name)
        except KeyError:
            continue
        if head.kind == "sigmoid" and len(spec.labels) == 1:
            # One sigmoid = a two-class choice (e.g. p(female)): show whichever side wins, both ways.
            label = spec.labels[0]
            if label not in spec.unreliable and label in head.scores:
                summary.values[head_name] = label if head.scores[label] >= spec.threshold(label) else spec.negative()
        elif head.kind == "sigmoid":
            summary.tags += [label for label, p in head.scores.items()
                             if p >= spec.threshold(label) and label not in spec.unreliable]
        elif head.kind == "softmax":
            label, p = head.top()
            if label not in spec.unreliable:
                summary.values[head_name] = label
        elif head.kind == "regression" and head.value is not None:
            summary.values[head_name] = round(head.value, 1)
            group = value_group(head.value, groups_of(spec))
            if group is not None:
                summary.groups[head_name] = group
    return summary


def _text_lines(summary: FaceSummary) -> list[str]:
    first = f"#{summary.track}"
    if summary.recognised:
        who = summary.name or "unknown"
        first += f" {who}" + (f" {summary.distance:.2f}" if summary.distance is not None else "")
    lines = [first]
    parts = []
    for key, value in summary.values.items():
        if key in summary.groups:
            parts.append(f"{key} {summary.groups[key]}")
        else:
            parts.append(f"{key} {value:.0f}" if isinstance(value, float) else str(value))
    if parts:
        lines.append(" | ".join(parts))
    line = ""
    for tag in summary.tags:
        add = tag.replace("_", " ")
        if line and len(line) + len(add) + 2 > WRAP_CHARS:
            lines.append(line)
            line = add
        else:
            line = f"{line}, {add}" if line else add
    if line:
        lines.append(line)
    return lines


def put_text(frame: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.5,
             color: tuple[int, int, int] = TEXT, backing: tuple[int, int, int] = BACKING) -> int:
    """Draw ``text`` with its top-left at ``org`` on a filled backing box; return the line height."""
    thickness = 1 if scale < 0.7 else 2
    (w, h), base = cv2.getTextSize(text, FONT, scale, thickness)
    x, y = org
    x = max(0, min(x, frame.shape[1] - w - 4))
    y = max(0, min(y, frame.shape[0] - h - base - 4))
    cv2.rectangle(frame, (x, y), (x + w + 4, y + h + base + 4), backing, cv2.FILLED)
    cv2.putText(frame, text, (x + 2, y + h + 2), FONT, scale, color, thickness, cv2.LINE_AA)
    return h + base + 4


def _scale(frame: np.ndarray) -> float:
    return 0.5 * max(1.0, frame.shape[1] / 960.0)


def draw_faces(frame: np.ndarray, summaries: Sequence[tuple[Track, FaceSummary]]) -> None:
    """Draw each face's box and its text lines (below the box, or above when no room) in place."""
    scale = _scale(frame)
    for track, summary in summaries:
        x, y, w, h = track.box
        color = FACE if not summary.recognised else (KNOWN if summary.name else UNKNOWN)
        cv2.rectangle(frame, (x, y), (x + w, y + h), color, 2)
        lines = _text_lines(summary)
        line_h = int(22 * scale / 0.5)
        ty = y + h + 4 if y + h + 4 + line_h * len(lines) <= frame.shape[0] else max(0, y - 4 - line_h * len(lines))
        for i, line in enumerate(lines):
            put_text(frame, line, (x, ty + i * line_h), scale, color if i == 0 else TEXT)


def draw_status(frame: np.ndarray, fps: Optional[float], runtime: str, status: Optional[str] = None,
                show_fps: bool = True) -> None:
    """Draw FPS and the runtime in the top-left corner, and ``status`` (e.g. camera lost) as a banner."""
    scale = _scale(frame)
    if show_fps:
        fps_text = f"{fps:5.1f} fps" if fps else "  --  fps"
        put_text(frame, f"{fps_text} | {runtime}", (6, 6), scale)
    if status:
        put_text(frame, status, (6, frame.shape[0] - int(30 * scale / 0.5)), scale * 1.4, TEXT, ALERT)


def status_frame(width: int, height: int, message: str) -> np.ndarray:
    """Return a dark frame with ``message`` in the middle (shown while a camera is lost)."""
    frame = np.full((height, width, 3), 32, np.uint8)
    scale = _scale(frame) * 1.4
    (w, _), _ = cv2.getTextSize(message, FONT, scale, 2)
    put_text(frame, message, ((width - w) // 2, height // 2), scale, TEXT, ALERT)
    return frame
