"""A class-folder data set: ROOT/<class>/<image> (e.g. male/ female/), one label per image."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..errors import DataError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".webp"}


@dataclass
class ClassFolders:
    """Images and integer labels of a class-folder tree; ``classes`` sorted by name unless given."""

    root: Path
    files: list[Path]
    labels: np.ndarray      # N ints, index into classes
    classes: list[str]

    def __len__(self) -> int:
        return len(self.files)

    @property
    def paths(self) -> list[Path]:
        """Return the image paths, aligned with ``labels``."""
        return list(self.files)

    def binary(self, positive: str) -> np.ndarray:
        """Return N x 1 0/1 labels: 1 where the class is ``positive`` (e.g. 'male')."""
        if positive not in self.classes:
            raise DataError(f"{self.root}: no class folder named {positive!r}; found {', '.join(self.classes)}")
        return (self.labels == self.classes.index(positive)).astype(np.int8)[:, None]


def read_class_folders(root: str | Path, classes: Optional[Sequence[str]] = None) -> ClassFolders:
    """Return the images under ROOT/<class>/; DataError for a missing root, class or empty class."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: class-folder data set does not exist")
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    names = list(classes) if classes else found
    if len(names) < 2:
        raise DataError(f"{root}: need at least two class folders, found {len(names)}")
    files: list[Path] = []
    labels: list[int] = []
    for k, name in enumerate(names):
        folder = root / name
        if not folder.is_dir():
            raise DataError(f"{root}: class folder {name!r} does not exist (found: {', '.join(found)})")
        images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise DataError(f"{folder}: class folder has no images")
        files += images
        labels += [k] * len(images)
    return ClassFolders(root, files, np.asarray(labels, np.int64), names)
