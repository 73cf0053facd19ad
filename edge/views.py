"""Test-time views: the crops a model is run on per face, whose outputs are averaged.

A bundle's manifest may list ``views``; each is a zoomed, shifted and optionally mirrored copy
of the face crop. Averaging a model's outputs over a few such views (test-time augmentation)
makes them steadier; it costs one model call per view. No ``views`` means one plain call.
The trainer evaluates its Keras model through the same :func:`apply_view`, so the figures in a
bundle's manifest are those of what the device computes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from .errors import BundleError


@dataclass(frozen=True)
class View:
    """One view of a crop: its central ``zoom`` fraction, moved by ``dx``/``dy`` crop widths, maybe mirrored."""

    zoom: float = 1.0
    dx: float = 0.0
    dy: float = 0.0
    mirror: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Return the manifest form of the view."""
        return {"zoom": self.zoom, "dx": self.dx, "dy": self.dy, "mirror": self.mirror}


PLAIN = (View(),)
# Named sets the trainer offers (``face-train fit multitask --views``); a manifest holds the list itself.
PRESETS: dict[str, tuple[View, ...]] = {
    "plain": PLAIN,
    "mirror": (View(), View(mirror=True)),
    "crops": tuple(View(z, dx, dy, m) for z, dx, dy in
                   ((1.0, 0.0, 0.0), (0.9, 0.0, 0.0), (0.9, -0.04, 0.0), (0.9, 0.04, 0.0), (0.9, 0.0, -0.04),
                    (0.9, 0.0, 0.04)) for m in (False, True)),
}
# The most model calls per face the trainer's views choice may ship by default: the face and its mirror.
# Every call delays the first label of each new face (about 12 ms per call on a Pi 4).
DEFAULT_MAX_CALLS = 2


def parse_views(raw: Any, where: str) -> tuple[View, ...]:
    """Return the views of a manifest ``views`` list (absent: one plain view); BundleError names the bad entry."""
    if raw is None:
        return PLAIN
    if not isinstance(raw, list) or not raw:
        raise BundleError(f"{where}: views must be a non-empty list of {{zoom, dx, dy, mirror}}")
    views = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping) or set(item) - {"zoom", "dx", "dy", "mirror"}:
            raise BundleError(f"{where}: views[{i}] must be a mapping of zoom, dx, dy, mirror")
        mirror = item.get("mirror", False)
        if not isinstance(mirror, bool):
            raise BundleError(f"{where}: views[{i}].mirror must be true or false")
        try:
            view = View(float(item.get("zoom", 1.0)), float(item.get("dx", 0.0)), float(item.get("dy", 0.0)), mirror)
        except (TypeError, ValueError):
            raise BundleError(f"{where}: views[{i}]: zoom, dx and dy must be numbers") from None
        if not (0.5 <= view.zoom <= 1.0 and abs(view.dx) <= 0.25 and abs(view.dy) <= 0.25):
            raise BundleError(f"{where}: views[{i}]: zoom must be in [0.5, 1] and dx, dy in [-0.25, 0.25]")
        views.append(view)
    return tuple(views)


def views_to_list(views: Sequence[View]) -> list[dict[str, Any]]:
    """Return the manifest ``views`` list of ``views``."""
    return [v.to_dict() for v in views]


def apply_view(crop: np.ndarray, view: View) -> np.ndarray:
    """Return ``crop`` (H x W or H x W x C) as ``view`` sees it, at the crop's own size.

    The window of ``zoom`` x the crop size, centred and moved by dx, dy crop widths (kept inside
    the crop), is resized back to the crop size (bilinear); ``mirror`` flips it left-right.
    """
    h, w = crop.shape[:2]
    out = crop
    if view.zoom < 1.0 or view.dx or view.dy:
        ch, cw = max(1, int(round(h * view.zoom))), max(1, int(round(w * view.zoom)))
        y0 = min(max((h - ch) // 2 + int(round(view.dy * h)), 0), h - ch)
        x0 = min(max((w - cw) // 2 + int(round(view.dx * w)), 0), w - cw)
        out = cv2.resize(np.ascontiguousarray(crop[y0:y0 + ch, x0:x0 + cw]), (w, h), interpolation=cv2.INTER_LINEAR)
        if crop.ndim == 3 and out.ndim == 2:
            out = out[:, :, None]
    if view.mirror:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)
