"""UTKFace reader: age, gender and ethnicity from the official file names, plus a seeded split.

Official names are ``<age>_<gender>_<race>_<yyyymmddHHMMSSFFF>.jpg.chip.jpg`` (aligned & cropped
release) or ``...jpg`` (in-the-wild release): gender 0 = male, 1 = female; race 0 White,
1 Black, 2 Asian, 3 Indian, 4 Others. A name that does not parse is skipped, counted and named
in :attr:`UTKFaceSet.skipped`. UTKFace has no identity labels, so the held-out split is a
seeded random split of images (the same person may appear on both sides; see MODEL_CARD).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from trainer.errors import DataError

log = logging.getLogger(__name__)

ETHNICITIES = ("white", "black", "asian", "indian", "others")
GENDERS = ("male", "female")  # index = the gender digit in the file name
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MAX_AGE = 120
_NAME = re.compile(r"^(\d{1,3})_([01])_([0-4])_(\d+)\.(?:jpg\.chip\.jpg|jpg|jpeg|png)$", re.IGNORECASE)


@dataclass
class UTKFaceSet:
    """Parallel arrays of image paths, age (years), gender (1 = female) and ethnicity index."""

    paths: list[Path]
    age: np.ndarray
    gender: np.ndarray
    ethnicity: np.ndarray
    skipped: list[str] = field(default_factory=list)  # one message per skipped file, naming it

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, index: np.ndarray) -> "UTKFaceSet":
        """Return the samples at ``index`` (skipped messages are kept)."""
        return UTKFaceSet([self.paths[i] for i in index], self.age[index], self.gender[index],
                          self.ethnicity[index], list(self.skipped))


def parse_name(name: str) -> tuple[int, int, int]:
    """Return (age, gender, ethnicity) encoded in a UTKFace file name; ValueError says why it does not parse."""
    m = _NAME.match(name)
    if not m:
        raise ValueError("not <age>_<0|1>_<0-4>_<digits>.jpg.chip.jpg")
    age = int(m.group(1))
    if age > MAX_AGE:
        raise ValueError(f"age {age} is above {MAX_AGE}")
    return age, int(m.group(2)), int(m.group(3))


def find_image_folder(root: str | Path) -> Path:
    """Return the folder holding the UTKFace images: ``root`` itself or ``root/UTKFace``."""
    root = Path(root)
    for folder in (root / "UTKFace", root):
        if folder.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir()):
            return folder
    raise DataError(f"{root}: no UTKFace images here or in {root / 'UTKFace'} "
                    "(expected files named <age>_<gender>_<race>_<date>.jpg.chip.jpg)")


def read_utkface(root: str | Path, limit: int = 0) -> UTKFaceSet:
    """Return the labelled images of a UTKFace folder (sorted by name); unparsable names are skipped.

    ``limit`` > 0 keeps an evenly spaced subset of that many images (quick runs and tests).
    """
    folder = find_image_folder(root)
    paths, ages, genders, races, skipped = [], [], [], [], []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        try:
            age, gender, race = parse_name(path.name)
        except ValueError as exc:
            skipped.append(f"{path}: skipped, file name does not parse ({exc})")
            continue
        paths.append(path)
        ages.append(age)
        genders.append(gender)
        races.append(race)
    for message in skipped[:20]:
        log.warning(message)
    if skipped:
        log.warning("UTKFace %s: %d file(s) skipped because their names do not parse", folder, len(skipped))
    if not paths:
        raise DataError(f"{folder}: no file name parses as <age>_<gender>_<race>_<date>.jpg.chip.jpg "
                        f"({len(skipped)} skipped)")
    data = UTKFaceSet(paths, np.asarray(ages, np.float32), np.asarray(genders, np.int64),
                      np.asarray(races, np.int64), skipped)
    if limit and limit < len(data):
        data = data.subset(np.linspace(0, len(data) - 1, limit).round().astype(int))
    return data


def split_utkface(n: int, seed: int, val_fraction: float = 0.10,
                  test_fraction: float = 0.15) -> dict[str, np.ndarray]:
    """Return seeded random {"train", "val", "test"} index arrays over ``n`` images (disjoint, sorted)."""
    if n < 3:
        raise DataError(f"UTKFace: {n} image(s) are too few to split into train/val/test")
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(n * test_fraction)))
    n_val = max(1, int(round(n * val_fraction)))
    return {"test": np.sort(order[:n_test]), "val": np.sort(order[n_test:n_test + n_val]),
            "train": np.sort(order[n_test + n_val:])}


def label_summary(data: UTKFaceSet, index: Optional[np.ndarray] = None) -> dict[str, object]:
    """Return counts per gender and ethnicity and the age mean/std of (a subset of) the set."""
    idx = np.arange(len(data)) if index is None else index
    return {"images": int(len(idx)), "age_mean": float(data.age[idx].mean()),
            "age_std": float(data.age[idx].std()),
            "gender": {g: int((data.gender[idx] == i).sum()) for i, g in enumerate(GENDERS)},
            "ethnicity": {e: int((data.ethnicity[idx] == i).sum()) for i, e in enumerate(ETHNICITIES)}}
