"""Image -> face crop through the device's own crop (Haar box, then edge.crop.crop_face).

When Haar finds no face on an already-aligned training image, the crop falls back to
:func:`edge.crop.whole_image_box` (counted in :class:`CropStats`). Tight crops (UTKFace,
FER) can be padded with a replicated border before detection so Haar sees some context.
:func:`cached_face_crops` stores the crops of a whole data set as .npy so later runs are fast,
written and read row by row (:mod:`trainer.npyrows`) so a data set larger than memory streams.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from edge.crop import Box, CropSpec, crop_face, iou, whole_image_box
from edge.detect import HaarDetector

from .npyrows import NpyRows, NpyRowWriter

DEFAULT_CACHE = Path(os.environ.get("FACE_EDGE_CACHE", "/work/cache"))


@dataclass
class CropStats:
    """How the crops of a set of images were made: Haar hits, fallbacks, unreadable files."""

    total: int = 0
    detected: int = 0
    fallback: int = 0
    corrupt: int = 0
    corrupt_files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Return the counts as a plain dict (the first 20 corrupt file names included)."""
        data = asdict(self)
        data["corrupt_files"] = self.corrupt_files[:20]
        return data


@dataclass(frozen=True)
class FaceCropper:
    """``crop(bgr)`` returns an RGB uint8 face crop of ``spec.size`` and whether Haar found the face.

    ``pad`` is the fraction of each side added as a replicated border before detection
    (0.25 for tight crops such as UTKFace/FER; 0 for CelebA aligned images).
    """

    spec: CropSpec = CropSpec()
    pad: float = 0.0
    cascade: str = "frontal_default"
    min_size: int = 24
    scale_factor: float = 1.1
    min_neighbors: int = 5

    def key(self) -> str:
        """Return a short stable text naming every setting that changes the crop pixels."""
        s = self.spec
        return (f"s{s.size}_m{s.margin:g}_y{s.shift_y:g}_p{self.pad:g}_{self.cascade}"
                f"_min{self.min_size}_sf{self.scale_factor:g}_n{self.min_neighbors}")

    def _detector(self) -> HaarDetector:
        cached = _DETECTORS.get(self.key())
        if cached is None:
            cached = HaarDetector(self.cascade, downscale=1.0, min_size=self.min_size,
                                  scale_factor=self.scale_factor, min_neighbors=self.min_neighbors)
            _DETECTORS[self.key()] = cached
        return cached

    def crop(self, bgr: np.ndarray, hint: Optional[Box] = None) -> tuple[np.ndarray, bool]:
        """Return (RGB uint8 crop, detected) for a BGR (or grey) image.

        ``hint`` is an annotated face box (x, y, w, h) for images with several faces: the Haar
        box overlapping it most (IoU >= 0.3) is used, else the hint itself (not "detected").
        """
        if bgr.ndim == 2:
            bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
        frame = bgr
        if self.pad > 0:
            h, w = bgr.shape[:2]
            py, px = int(round(h * self.pad)), int(round(w * self.pad))
            frame = cv2.copyMakeBorder(bgr, py, py, px, px, cv2.BORDER_REPLICATE)
        boxes = self._detector().detect(frame)
        if hint is not None:
            off = (int(round(bgr.shape[1] * self.pad)), int(round(bgr.shape[0] * self.pad))) if self.pad > 0 else (0, 0)
            hint_box = (hint[0] + off[0], hint[1] + off[1], hint[2], hint[3])
            scored = [(iou(b, hint_box), b) for b in boxes]
            best = max(scored, default=(0.0, None), key=lambda t: t[0])
            if best[1] is not None and best[0] >= 0.3:
                box, detected = best[1], True
            else:
                box, detected = hint_box, False
        elif boxes:
            box, detected = boxes[0], True
        else:
            # The fallback uses the unpadded image so the framing matches an aligned face.
            frame, detected = bgr, False
            box = whole_image_box(frame, self.spec)
        crop = crop_face(frame, box, self.spec)
        return cv2.cvtColor(crop, cv2.COLOR_BGR2RGB), detected


_DETECTORS: dict[str, HaarDetector] = {}


def read_image(path: str | Path) -> Optional[np.ndarray]:
    """Return the BGR uint8 image at ``path``, or None when it is missing or cannot be decoded."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError:
        return None
    if data.size == 0:
        return None
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    return img if img is not None and img.size else None


def crop_images(paths: Sequence[str | Path], cropper: FaceCropper, progress: bool = True,
                out: Optional[Any] = None,
                hints: Optional[Sequence[Optional[Box]]] = None) -> tuple[np.ndarray, np.ndarray, CropStats]:
    """Return (crops N x S x S x 3 RGB uint8, ok mask N bool, stats) for image files.

    Unreadable or corrupt images get an all-zero crop, ``ok=False``, and are counted.
    ``out`` (an array, or an NpyRowWriter) receives the crops instead of a new array; ``hints`` are
    annotated face boxes that pick among Haar boxes (see :meth:`FaceCropper.crop`).
    """
    size = cropper.spec.size
    crops = out if out is not None else np.zeros((len(paths), size, size, 3), np.uint8)
    ok = np.zeros(len(paths), bool)
    stats = CropStats(total=len(paths))
    for i, path in enumerate(tqdm(paths, desc="face crops", disable=not progress, mininterval=2)):
        img = read_image(path)
        if img is None:
            stats.corrupt += 1
            stats.corrupt_files.append(str(path))
            continue
        crops[i], detected = cropper.crop(img, hints[i] if hints is not None else None)
        ok[i] = True
        stats.detected += int(detected)
        stats.fallback += int(not detected)
    return crops, ok, stats


def cached_face_crops(dataset: str, paths: Sequence[str | Path], cropper: FaceCropper,
                      cache_dir: Optional[str | Path] = None, progress: bool = True,
                      hints: Optional[Sequence[Optional[Box]]] = None,
                      mmap: bool = False) -> tuple[Any, np.ndarray, CropStats]:
    """Return :func:`crop_images` for ``paths``, reading/writing a .npy cache keyed by data set + crop.

    The key also hashes the list of file names (and hints), so a different selection never
    reuses a cache. Crops are written row by row into the .npy file (:class:`trainer.npyrows.NpyRowWriter`),
    so a full-size data set (202,599 CelebA faces) never has to fit in memory; ``mmap=True``
    returns an :class:`trainer.npyrows.NpyRows` over it (indexed like an array, each access a
    positional read, so a pass over the whole cache does not grow the process's RSS).
    """
    folder = Path(cache_dir) if cache_dir else DEFAULT_CACHE
    text = "\n".join(str(Path(p).resolve()) for p in paths) + (repr(list(hints)) if hints is not None else "")
    listing = hashlib.sha1(text.encode()).hexdigest()[:12]
    stem = f"{dataset}_{cropper.key()}_{listing}"
    crops_path, ok_path, stats_path = (folder / f"{stem}.crops.npy", folder / f"{stem}.ok.npy",
                                       folder / f"{stem}.stats.json")
    if crops_path.is_file() and ok_path.is_file() and stats_path.is_file():
        rows = NpyRows(crops_path)
        if rows.shape[0] == len(paths):
            stats = CropStats(**json.loads(stats_path.read_text()))
            return (rows if mmap else np.asarray(rows)), np.load(ok_path), stats
        rows.close()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = crops_path.with_name(crops_path.name + f".tmp{os.getpid()}.npy")
    size = cropper.spec.size
    try:
        with NpyRowWriter(tmp, (len(paths), size, size, 3), np.uint8) as out:
            _, ok, stats = crop_images(paths, cropper, progress, out=out, hints=hints)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, crops_path)
    np.save(ok_path, ok)
    stats_path.write_text(json.dumps(asdict(stats)))
    rows = NpyRows(crops_path)
    return (rows if mmap else np.asarray(rows)), ok, stats
