"""WFLW annotations: list_98pt_rect_attr_{train,test}.txt (98 landmarks, face rect, 6 attributes).

Each line: 196 landmark coordinates (x0 y0 ... x97 y97), the face rect (x_min y_min x_max
y_max), six 0/1 attributes (pose expression illumination make-up occlusion blur) and the
image path relative to WFLW_images/. The rect is the hint that picks the right Haar box in
multi-face photos (:meth:`trainer.faces.FaceCropper.crop`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import DataError

ATTRIBUTES = ("pose", "expression", "illumination", "make_up", "occlusion", "blur")
FIELDS = 196 + 4 + 6 + 1


@dataclass
class WFLW:
    """One WFLW annotation file: images, landmarks, face boxes (x, y, w, h) and 6 attributes."""

    image_root: Path
    files: list[str]
    landmarks: np.ndarray    # N x 98 x 2 float32
    boxes: np.ndarray        # N x 4 int (x, y, w, h)
    labels: np.ndarray       # N x 6 int8 0/1
    attributes: tuple[str, ...] = ATTRIBUTES

    def __len__(self) -> int:
        return len(self.files)

    @property
    def paths(self) -> list[Path]:
        """Return the image paths, aligned with ``labels``."""
        return [self.image_root / f for f in self.files]

    @property
    def hints(self) -> list[tuple[int, int, int, int]]:
        """Return the annotated face boxes as (x, y, w, h) tuples (crop hints)."""
        return [tuple(int(v) for v in b) for b in self.boxes]


def read_wflw(annotation: str | Path, image_root: Optional[str | Path] = None,
              check_images: bool = True) -> WFLW:
    """Return the WFLW records of ``annotation``; DataError names the file and line of any fault.

    ``image_root`` defaults to WFLW_images/ beside the annotation folder (the official layout:
    WFLW_annotations/list_98pt_rect_attr_train_test/list_98pt_rect_attr_train.txt).
    """
    annotation = Path(annotation)
    if not annotation.is_file():
        raise DataError(f"{annotation}: WFLW annotation file is missing")
    if image_root is None:
        candidates = [p / "WFLW_images" for p in annotation.parents]
        image_root = next((c for c in candidates if c.is_dir()), annotation.parent)
    image_root = Path(image_root)
    files, marks, boxes, labels = [], [], [], []
    for lineno, line in enumerate(annotation.read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != FIELDS:
            raise DataError(f"{annotation}:{lineno}: expected {FIELDS} fields (196 landmark values, 4 rect, "
                            f"6 attributes, image), got {len(parts)}")
        try:
            nums = [float(v) for v in parts[:200]]
            attrs = [int(v) for v in parts[200:206]]
        except ValueError:
            raise DataError(f"{annotation}:{lineno}: landmark/rect values must be numbers and attributes 0/1") from None
        if any(a not in (0, 1) for a in attrs):
            raise DataError(f"{annotation}:{lineno}: attributes must be 0 or 1")
        x0, y0, x1, y1 = nums[196:200]
        if x1 <= x0 or y1 <= y0:
            raise DataError(f"{annotation}:{lineno}: face rect {x0:g} {y0:g} {x1:g} {y1:g} is empty")
        if check_images and not (image_root / parts[206]).is_file():
            raise DataError(f"{annotation}:{lineno}: image {parts[206]} not found under {image_root}")
        files.append(parts[206])
        marks.append(np.asarray(nums[:196], np.float32).reshape(98, 2))
        boxes.append((int(round(x0)), int(round(y0)), int(round(x1 - x0)), int(round(y1 - y0))))
        labels.append(attrs)
    if not files:
        raise DataError(f"{annotation}: no annotation lines")
    return WFLW(image_root, files, np.stack(marks), np.asarray(boxes, np.int64), np.asarray(labels, np.int8))
