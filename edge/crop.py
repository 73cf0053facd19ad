"""THE face-crop definition shared by the device and the trainer.

A detector box (x, y, w, h) becomes a square around the box centre whose side is
``max(w, h) * (1 + 2 * margin)``, shifted by ``shift_y`` box heights (negative = up),
cut from the frame with a replicated border where it leaves the frame, and
resized to ``size`` x ``size``. Train and device both call :func:`crop_face`, so a
model sees the same pixels in training as on the Pi.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

import cv2
import numpy as np

Box = tuple[int, int, int, int]


def iou(a: Box, b: Box) -> float:
    """Return the intersection over union of two (x, y, w, h) boxes (0.0 when they do not overlap)."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = min(ax + aw, bx + bw) - max(ax, bx)
    ih = min(ay + ah, by + bh) - max(ay, by)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / float(aw * ah + bw * bh - inter)


@dataclass(frozen=True)
class CropSpec:
    """How a face box becomes a model input: margin per side, vertical shift, output size."""

    size: int = 96
    margin: float = 0.25
    shift_y: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as a plain dict, the form stored in manifests and run files."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CropSpec":
        """Return a CropSpec from a manifest/run dict; unknown keys are an error."""
        unknown = set(data) - {"size", "margin", "shift_y"}
        if unknown:
            raise ValueError(f"unknown crop keys: {sorted(unknown)}")
        return cls(size=int(data.get("size", 96)), margin=float(data.get("margin", 0.25)),
                   shift_y=float(data.get("shift_y", 0.0)))


def square_region(box: Box, spec: CropSpec) -> Box:
    """Return the square (x, y, side, side) in frame coordinates that :func:`crop_face` cuts."""
    x, y, w, h = box
    side = max(w, h) * (1.0 + 2.0 * spec.margin)
    cx = x + w / 2.0
    cy = y + h / 2.0 + spec.shift_y * h
    x0 = int(round(cx - side / 2.0))
    y0 = int(round(cy - side / 2.0))
    s = max(1, int(round(side)))
    return x0, y0, s, s


def crop_face(frame: np.ndarray, box: Box, spec: CropSpec) -> np.ndarray:
    """Return the ``spec.size`` square face crop of ``frame`` (same channel order and dtype).

    Parts of the square outside the frame are filled by replicating the border.
    """
    if frame is None or frame.size == 0:
        raise ValueError("empty frame")
    x0, y0, s, _ = square_region(box, spec)
    fh, fw = frame.shape[:2]
    pad_l, pad_t = max(0, -x0), max(0, -y0)
    pad_r, pad_b = max(0, x0 + s - fw), max(0, y0 + s - fh)
    xa, ya = max(0, x0), max(0, y0)
    xb, yb = min(fw, x0 + s), min(fh, y0 + s)
    if xb <= xa or yb <= ya:
        raise ValueError(f"face box {box} lies outside the {fw}x{fh} frame")
    patch = frame[ya:yb, xa:xb]
    if pad_l or pad_t or pad_r or pad_b:
        patch = cv2.copyMakeBorder(patch, pad_t, pad_b, pad_l, pad_r, cv2.BORDER_REPLICATE)
    interp = cv2.INTER_AREA if s > spec.size else cv2.INTER_LINEAR
    return cv2.resize(patch, (spec.size, spec.size), interpolation=interp)


def whole_image_box(frame: np.ndarray, spec: CropSpec) -> Box:
    """Return the box that, cropped with ``spec``, covers an already-aligned face image.

    Used when the detector finds nothing on a training image that is itself a face
    crop: the inverse of the margin is applied so the crop shows the same framing.
    """
    fh, fw = frame.shape[:2]
    side = min(fw, fh) / (1.0 + 2.0 * spec.margin)
    x = (fw - side) / 2.0
    y = (fh - side) / 2.0 - spec.shift_y * side
    return int(round(x)), int(round(y)), max(1, int(round(side))), max(1, int(round(side)))
