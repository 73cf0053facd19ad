"""FER2013 reader for both official layouts, with the official train/test and a seeded validation part.

Layouts:

- image folders: ``root/train/<emotion>/*.jpg`` and ``root/test/<emotion>/*.jpg``;
- the Kaggle CSV: ``root/fer2013.csv`` (or the CSV path itself) with columns
  ``emotion,pixels,Usage``: 48x48 = 2304 space-separated grey values; Usage ``Training`` -> train,
  ``PublicTest``/``PrivateTest`` -> test.

Labels use the CSV codes: 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral.
A row with a wrong pixel count, an unknown emotion code or usage, or a folder that is not one
of the seven emotions is skipped, counted and named in :attr:`FerSet.skipped`.
"""
from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from trainer.errors import DataError

log = logging.getLogger(__name__)

EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
SIDE = 48
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".pgm")
_USAGE = {"training": "train", "publictest": "test", "privatetest": "test"}


@dataclass
class FerSet:
    """FER images either as files (``paths``) or as grey 48x48 arrays (``pixels``), with labels.

    ``part`` is "train" or "test" per image (the official split); ``source`` names each image
    (file path, or ``fer2013.csv:<line>``).
    """

    labels: np.ndarray
    part: np.ndarray
    source: list[str]
    paths: Optional[list[Path]] = None
    pixels: Optional[np.ndarray] = None
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(len(self.labels))

    def subset(self, index: np.ndarray) -> "FerSet":
        """Return the images at ``index``."""
        return FerSet(self.labels[index], self.part[index], [self.source[i] for i in index],
                      None if self.paths is None else [self.paths[i] for i in index],
                      None if self.pixels is None else self.pixels[index], list(self.skipped))


def _report(skipped: list[str], where: Path) -> None:
    for message in skipped[:20]:
        log.warning(message)
    if skipped:
        log.warning("FER2013 %s: %d item(s) skipped", where, len(skipped))


def read_fer_folders(root: str | Path) -> FerSet:
    """Return the images of the image-folder layout ``root/{train,test}/<emotion>/``.

    A folder that is not one of the seven emotion names is skipped with a message naming it
    and the number of files it holds (counted in ``skipped``).
    """
    root = Path(root)
    labels, parts, paths, skipped = [], [], [], []
    found_part = False
    for part in ("train", "test"):
        folder = root / part
        if not folder.is_dir():
            continue
        found_part = True
        for sub in sorted(folder.iterdir()):
            if not sub.is_dir():
                continue
            name = sub.name.lower()
            files = sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if name not in EMOTIONS:
                skipped.append(f"{sub}: unknown emotion folder {sub.name!r} (expected one of "
                               f"{', '.join(EMOTIONS)}); its {len(files)} image(s) skipped")
                continue
            for path in files:
                labels.append(EMOTIONS.index(name))
                parts.append(part)
                paths.append(path)
    if not found_part:
        raise DataError(f"{root}: neither train/ nor test/ folder (FER2013 image-folder layout) "
                        "nor fer2013.csv found")
    _report(skipped, root)
    if not paths:
        raise DataError(f"{root}: no images in any of the emotion folders ({len(skipped)} skipped)")
    return FerSet(np.asarray(labels, np.int64), np.asarray(parts), [str(p) for p in paths],
                  paths=paths, skipped=skipped)


def read_fer_csv(path: str | Path) -> FerSet:
    """Return the images of the Kaggle ``fer2013.csv`` (emotion,pixels,Usage) as 48x48 uint8 arrays.

    Rows with a wrong pixel count, non-numeric pixels, an emotion outside 0..6 or an unknown
    usage are skipped; each is named by its line number in ``skipped``.
    """
    path = Path(path)
    labels, parts, sources, images, skipped = [], [], [], [], []
    try:
        fh = open(path, newline="", encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with fh:
        reader = csv.DictReader(fh)
        missing = {"emotion", "pixels"} - set(reader.fieldnames or [])
        if missing:
            raise DataError(f"{path}: header lacks column(s) {', '.join(sorted(missing))} "
                            "(expected emotion,pixels,Usage)")
        for row in reader:
            where = f"{path.name}:{reader.line_num}"
            try:
                emotion = int(row["emotion"])
            except (TypeError, ValueError):
                skipped.append(f"{where}: skipped, emotion {row['emotion']!r} is not an integer 0-6")
                continue
            if not 0 <= emotion < len(EMOTIONS):
                skipped.append(f"{where}: skipped, emotion {emotion} is not in 0-6")
                continue
            usage = (row.get("Usage") or "Training").strip().lower()
            if usage not in _USAGE:
                skipped.append(f"{where}: skipped, Usage {row.get('Usage')!r} is not Training/PublicTest/PrivateTest")
                continue
            values = (row["pixels"] or "").split()
            if len(values) != SIDE * SIDE:
                skipped.append(f"{where}: skipped, {len(values)} pixel values instead of {SIDE * SIDE}")
                continue
            try:
                pixels = np.asarray([int(v) for v in values])
            except ValueError:
                skipped.append(f"{where}: skipped, pixels are not integers")
                continue
            if pixels.min() < 0 or pixels.max() > 255:
                skipped.append(f"{where}: skipped, pixel values outside 0-255")
                continue
            images.append(pixels.astype(np.uint8).reshape(SIDE, SIDE))
            labels.append(emotion)
            parts.append(_USAGE[usage])
            sources.append(where)
    _report(skipped, path)
    if not images:
        raise DataError(f"{path}: no usable rows ({len(skipped)} skipped)")
    return FerSet(np.asarray(labels, np.int64), np.asarray(parts), sources,
                  pixels=np.stack(images), skipped=skipped)


def read_fer(root: str | Path) -> FerSet:
    """Return FER2013 from ``root``: a fer2013.csv file, a folder holding one, or the folder layout."""
    root = Path(root)
    if root.is_file():
        return read_fer_csv(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such FER2013 folder or CSV file")
    if (root / "fer2013.csv").is_file() and not (root / "train").is_dir():
        return read_fer_csv(root / "fer2013.csv")
    return read_fer_folders(root)


def split_fer(data: FerSet, seed: int, val_fraction: float = 0.10) -> dict[str, np.ndarray]:
    """Return {"train", "val", "test"} index arrays: the official test part, and a seeded
    validation part carved from the official training part, stratified by emotion."""
    train_idx = np.flatnonzero(data.part == "train")
    test_idx = np.flatnonzero(data.part == "test")
    if len(train_idx) < 2:
        raise DataError("FER2013: fewer than 2 training images; cannot carve a validation part")
    rng = np.random.default_rng(seed)
    val = []
    for label in range(len(EMOTIONS)):
        members = train_idx[data.labels[train_idx] == label]
        take = int(round(len(members) * val_fraction))
        if take:
            val.append(rng.choice(members, take, replace=False))
    val_idx = np.sort(np.concatenate(val)) if val else train_idx[:1]
    return {"train": np.setdiff1d(train_idx, val_idx), "val": val_idx, "test": test_idx}


def grey_images(data: FerSet) -> list[np.ndarray]:
    """Return the 48x48 grey images of a CSV-layout set (as a list, for cropping)."""
    if data.pixels is None:
        raise DataError("FER set was read from image folders; crop its files instead")
    return list(data.pixels)
