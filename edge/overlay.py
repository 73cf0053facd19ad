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
from .crop import Box
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
    distance: Optional[float] = None               # distance to the nearest enrolled face (edge.distance)
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


def quantity_owners(manifests: Mapping[str, Manifest]) -> dict[str, tuple[str, str]]:
    """Return {quantity: (model, head)}: the one head that shows each quantity on a face.

    A dedicated head (a softmax, a one-label sigmoid or a regression: age, gender, emotion, ...)
    owns the quantity its manifest says it measures (``quantity``, else its name); when two
    models have one, the first loaded model's wins. A label of a multi-label head that speaks
    about an owned quantity (the attribute model's Male or Smiling, per its manifest's
    ``quantities``) is then left out, so a face never reads "female" and "Male" at once.
    """
    owners: dict[str, tuple[str, str]] = {}
    for model, manifest in manifests.items():
        for spec in manifest.outputs:
            dedicated = spec.kind in ("softmax", "regression") or (spec.kind == "sigmoid" and len(spec.labels) == 1)
            if dedicated:
                owners.setdefault(spec.head_quantity(), (model, spec.name))
    return owners


def face_summary(track: Track, manifests: Mapping[str, Manifest], vote_min: int) -> FaceSummary:
    """Return what the overlay shows for ``track``: voted identity, attributes over thresholds,
    top softmax labels, the winning class of one-label sigmoids (e.g. female / male), regression
    values with their group (age 25.3 -> 20-29): one value per quantity (:func:`quantity_owners`),
    each from the mean of the track's recent looks; labels the manifest marks unreliable are left out."""
    summary = FaceSummary(track.id)
    ident = track.identity(vote_min)
    if ident is not None:
        summary.recognised = True
        summary.name, summary.distance = ident.name, ident.distance
    owners = quantity_owners(manifests)
    for (model, head_name), head in track.smoothed().items():
        manifest = manifests.get(model)
        if manifest is None:
            continue
        try:
            spec = manifest.output(head_name)
        except KeyError:
            continue
        if head.kind == "sigmoid" and len(spec.labels) > 1:
            for label, p in head.scores.items():
                if p < spec.threshold(label) or label in spec.unreliable or label in summary.tags:
                    continue
                if spec.label_quantity(label) in owners:
                    continue       # a dedicated head says it (gender instead of "Male")
                summary.tags.append(label)
            continue
        if owners.get(spec.head_quantity()) not in (None, (model, head_name)):
            continue               # another model's head shows this quantity
        if head.kind == "sigmoid":
            # One sigmoid = a two-class choice (e.g. p(female)): show whichever side wins, both ways.
            label = spec.labels[0]
            if label not in spec.unreliable and label in head.scores:
                summary.values[head_name] = label if head.scores[label] >= spec.threshold(label) else spec.negative()
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


Rect = tuple[int, int, int, int]        # x0, y0, x1, y1 (exclusive)
LABEL_GAP = 4                            # pixels between a face box and its label block
SCAN_STEP = 8                            # pixels between the positions tried when nothing near the face is free


def put_text(frame: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.5,
             color: tuple[int, int, int] = TEXT, backing: tuple[int, int, int] = BACKING) -> int:
    """Draw ``text`` with its top-left at ``org`` on a filled backing box (kept inside the frame); return the line height."""
    rect = _text_rect(frame, text, org, scale, color, backing)
    return rect[3] - rect[1]


def _text_rect_size(text: str, scale: float) -> tuple[int, int]:
    """Return (width, height) of ``text`` on its backing box."""
    thickness = 1 if scale < 0.7 else 2
    (w, h), base = cv2.getTextSize(text, FONT, scale, thickness)
    return w + 4, h + base + 4


def _text_rect(frame: np.ndarray, text: str, org: tuple[int, int], scale: float,
               color: tuple[int, int, int], backing: tuple[int, int, int]) -> Rect:
    """Draw ``text`` on its backing box at ``org`` (moved inside the frame); return the box drawn."""
    thickness = 1 if scale < 0.7 else 2
    (w, h), base = cv2.getTextSize(text, FONT, scale, thickness)
    x = max(0, min(org[0], frame.shape[1] - w - 4))
    y = max(0, min(org[1], frame.shape[0] - h - base - 4))
    cv2.rectangle(frame, (x, y), (x + w + 4, y + h + base + 4), backing, cv2.FILLED)
    cv2.putText(frame, text, (x + 2, y + h + 2), FONT, scale, color, thickness, cv2.LINE_AA)
    return x, y, x + w + 4, y + h + base + 4


def _scale(frame: np.ndarray) -> float:
    return 0.5 * max(1.0, frame.shape[1] / 960.0)


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _box_rect(box: Box) -> Rect:
    x, y, w, h = box
    return x, y, x + w, y + h


def place_block(size: tuple[int, int], box: Box, frame_size: tuple[int, int], taken: Sequence[Rect],
                faces: Sequence[Rect] = ()) -> Optional[Rect]:
    """Return where a label block of ``size`` (w, h) for the face ``box`` goes: inside the frame
    (``frame_size`` w, h), overlapping nothing in ``taken`` (other labels, the status bar) and, when
    at all possible, no face in ``faces`` (its own included); below the face, else above, right,
    left, else the free spot nearest to the face. None when the frame has no room for it."""
    bw, bh = size
    fw, fh = frame_size
    if bw > fw or bh > fh:
        return None
    x, y, w, h = box

    def fit(px: float, py: float) -> Rect:
        px = int(max(0, min(px, fw - bw)))
        py = int(max(0, min(py, fh - bh)))
        return px, py, px + bw, py + bh

    near = [fit(x, y + h + LABEL_GAP), fit(x, y - LABEL_GAP - bh), fit(x + w + LABEL_GAP, y),
            fit(x - LABEL_GAP - bw, y), fit(x + w + LABEL_GAP, y + h - bh), fit(x - LABEL_GAP - bw, y + h - bh)]

    def free(rect: Rect, avoid_faces: bool) -> bool:
        return not any(_overlaps(rect, t) for t in taken) and not (avoid_faces and any(_overlaps(rect, f)
                                                                                         for f in faces))

    for avoid_faces in (True, False):
        rect = next((r for r in near if free(r, avoid_faces)), None)
        if rect is None:                       # nothing next to the face: the nearest free spot
            rect = _nearest_free((bw, bh), (x + w / 2, y + h / 2), frame_size,
                                 list(taken) + (list(faces) if avoid_faces else []))
        if rect is not None:
            return rect
    return None


def _nearest_free(size: tuple[int, int], centre: tuple[float, float], frame_size: tuple[int, int],
                  occupied: Sequence[Rect]) -> Optional[Rect]:
    """Return the SCAN_STEP-aligned spot for a block of ``size`` whose centre is nearest ``centre`` and
    that overlaps none of ``occupied`` (an occupancy grid and its integral image: every spot at once)."""
    bw, bh = size
    fw, fh = frame_size
    rows, cols = fh // SCAN_STEP + 1, fw // SCAN_STEP + 1
    grid = np.zeros((rows, cols), np.int32)
    for x0, y0, x1, y1 in occupied:           # cells a rectangle touches count as taken (conservative)
        grid[max(0, y0 // SCAN_STEP):max(0, (y1 - 1) // SCAN_STEP + 1),
             max(0, x0 // SCAN_STEP):max(0, (x1 - 1) // SCAN_STEP + 1)] = 1
    ch, cw = -(-bh // SCAN_STEP), -(-bw // SCAN_STEP)
    top, left = (fh - bh) // SCAN_STEP + 1, (fw - bw) // SCAN_STEP + 1     # spots that keep it in the frame
    if top <= 0 or left <= 0:
        return None
    integral = np.pad(grid.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    used = (integral[ch:ch + top, cw:cw + left] - integral[:top, cw:cw + left]
            - integral[ch:ch + top, :left] + integral[:top, :left])
    if not (used == 0).any():
        return None
    ys, xs = np.mgrid[0:top, 0:left] * SCAN_STEP
    distance = (xs + bw / 2 - centre[0]) ** 2 + (ys + bh / 2 - centre[1]) ** 2
    distance[used > 0] = np.inf
    j, i = np.unravel_index(int(np.argmin(distance)), distance.shape)
    px, py = int(xs[j, i]), int(ys[j, i])
    return px, py, px + bw, py + bh


def _block_size(lines: Sequence[str], scale: float) -> tuple[int, int, int]:
    """Return (width, height, line height) of a label block of ``lines``."""
    sizes = [_text_rect_size(line, scale) for line in lines]
    line_h = max(h for _, h in sizes)
    return max(w for w, _ in sizes), line_h * len(lines), line_h


def draw_faces(frame: np.ndarray, summaries: Sequence[tuple[Track, FaceSummary]],
               reserved: Sequence[Rect] = ()) -> list[Rect]:
    """Draw each face's box and its label block in place; return the blocks' rectangles.

    Blocks never overlap each other or ``reserved`` (the status bar) and stay inside the frame
    (:func:`place_block`); larger faces are placed first. A block that finds no room loses its
    attribute lines, then all but its first line; with no room even for that, the face keeps
    only its box.
    """
    scale = _scale(frame)
    thickness = 1 if scale < 0.7 else 2
    fh, fw = frame.shape[:2]
    taken: list[Rect] = list(reserved)
    faces = [_box_rect(track.box) for track, _ in summaries]
    placed: list[Rect] = []
    for track, summary in summaries:
        x, y, w, h = track.box
        color = FACE if not summary.recognised else (KNOWN if summary.name else UNKNOWN)
        cv2.rectangle(frame, (x, y), (x + w, y + h), color, 2)
    order = sorted(range(len(summaries)), key=lambda i: -summaries[i][0].box[2] * summaries[i][0].box[3])
    for i in order:
        track, summary = summaries[i]
        color = FACE if not summary.recognised else (KNOWN if summary.name else UNKNOWN)
        lines = _text_lines(summary)
        for keep in sorted({len(lines), min(len(lines), 2), 1}, reverse=True):
            bw, bh, line_h = _block_size(lines[:keep], scale)
            rect = place_block((bw, bh), track.box, (fw, fh), taken, faces)
            if rect is not None:
                break
        if rect is None:
            continue
        _leader(frame, rect, track.box, color)
        cv2.rectangle(frame, rect[:2], rect[2:], BACKING, cv2.FILLED)
        for k, line in enumerate(lines[:keep]):
            (_, th), _ = cv2.getTextSize(line, FONT, scale, thickness)
            cv2.putText(frame, line, (rect[0] + 2, rect[1] + k * line_h + th + 2), FONT, scale,
                        color if k == 0 else TEXT, thickness, cv2.LINE_AA)
        taken.append(rect)
        placed.append(rect)
    return placed


def _leader(frame: np.ndarray, rect: Rect, box: Box, color: tuple[int, int, int]) -> None:
    """Draw a line from a label block to its face when the block had to go elsewhere than next to it."""
    x, y, w, h = box
    px, py = min(max(x + w / 2, rect[0]), rect[2]), min(max(y + h / 2, rect[1]), rect[3])   # block point nearest the face
    qx, qy = min(max(px, x), x + w), min(max(py, y), y + h)                                # face point nearest that
    if abs(px - qx) + abs(py - qy) > 3 * LABEL_GAP:
        cv2.line(frame, (int(px), int(py)), (int(qx), int(qy)), color, 1, cv2.LINE_AA)


def draw_status(frame: np.ndarray, fps: Optional[float], runtime: str, status: Optional[str] = None,
                show_fps: bool = True) -> list[Rect]:
    """Draw FPS and the runtime in the top-left corner, and ``status`` (e.g. camera lost) as a banner;
    return the rectangles drawn (labels keep off them)."""
    scale = _scale(frame)
    rects = []
    if show_fps:
        fps_text = f"{fps:5.1f} fps" if fps else "  --  fps"
        rects.append(_text_rect(frame, f"{fps_text} | {runtime}", (6, 6), scale, TEXT, BACKING))
    if status:
        rects.append(_text_rect(frame, status, (6, frame.shape[0] - int(30 * scale / 0.5)), scale * 1.4, TEXT, ALERT))
    return rects


def status_frame(width: int, height: int, message: str) -> np.ndarray:
    """Return a dark frame with ``message`` in the middle (shown while a camera is lost)."""
    frame = np.full((height, width, 3), 32, np.uint8)
    scale = _scale(frame) * 1.4
    (w, _), _ = cv2.getTextSize(message, FONT, scale, 2)
    put_text(frame, message, ((width - w) // 2, height // 2), scale, TEXT, ALERT)
    return frame
