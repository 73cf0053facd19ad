"""Mixed UTKFace + FER2013 face crops with masked labels, for the multi-task model.

Each source carries only its own labels: UTKFace gives age, gender and ethnicity (emotion
missing), FER2013 gives emotion (the other three missing). Missing labels are NaN for age and
-1 for the class heads, the convention of docs/run-format.md (heldout_labels.npz). Faces go
through the device crop (trainer.faces, Haar on a padded image, whole-image fallback); FER's
48x48 grey images are replicated to three channels by the cropper, then resized to the crop size.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from edge.crop import CropSpec
from trainer.faces import CropStats, FaceCropper, cached_face_crops

from . import fer as fer_data
from . import utkface as utk_data

HEADS = ("age", "gender", "emotion", "ethnicity")
DETECT_PAD = 0.25  # UTKFace and FER are tight crops: Haar needs some border around the face


@dataclass
class FaceLabels:
    """Crops (N x S x S x 3 RGB uint8) and one label array per head; ``source`` 0 = UTKFace, 1 = FER."""

    faces: np.ndarray
    age: np.ndarray         # float32 years, NaN = missing
    gender: np.ndarray      # int64 1 = female, 0 = male, -1 = missing
    emotion: np.ndarray     # int64 index into fer.EMOTIONS, -1 = missing
    ethnicity: np.ndarray   # int64 index into utkface.ETHNICITIES, -1 = missing
    source: np.ndarray

    def __len__(self) -> int:
        return int(len(self.faces))

    def labels(self) -> dict[str, np.ndarray]:
        """Return {head: label array} (gender as N x 1, the sigmoid layout of run-format)."""
        return {"age": self.age, "gender": self.gender.reshape(-1, 1), "emotion": self.emotion,
                "ethnicity": self.ethnicity}

    def subset(self, index: np.ndarray) -> "FaceLabels":
        """Return the samples at ``index``."""
        return FaceLabels(self.faces[index], self.age[index], self.gender[index], self.emotion[index],
                          self.ethnicity[index], self.source[index])


def concat(parts: list[FaceLabels]) -> FaceLabels:
    """Return the samples of every part, in order."""
    return FaceLabels(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                        ("faces", "age", "gender", "emotion", "ethnicity", "source")))


@dataclass
class MultitaskData:
    """train / val / test FaceLabels, crop statistics and the reader's skip messages."""

    splits: dict[str, FaceLabels]
    crop_stats: dict[str, dict] = field(default_factory=dict)
    skipped: dict[str, list[str]] = field(default_factory=dict)
    sizes: dict[str, dict[str, int]] = field(default_factory=dict)


def _utk_labels(faces: np.ndarray, data: utk_data.UTKFaceSet) -> FaceLabels:
    n = len(data)
    return FaceLabels(faces, data.age.astype(np.float32), data.gender.astype(np.int64),
                      np.full(n, -1, np.int64), data.ethnicity.astype(np.int64), np.zeros(n, np.int8))


def _fer_labels(faces: np.ndarray, data: fer_data.FerSet) -> FaceLabels:
    n = len(data)
    return FaceLabels(faces, np.full(n, np.nan, np.float32), np.full(n, -1, np.int64),
                      data.labels.astype(np.int64), np.full(n, -1, np.int64), np.ones(n, np.int8))


def crop_grey_arrays(images: list[np.ndarray], cropper: FaceCropper) -> tuple[np.ndarray, CropStats]:
    """Return (RGB uint8 crops, stats) of in-memory grey images (the fer2013.csv layout)."""
    size = cropper.spec.size
    crops = np.zeros((len(images), size, size, 3), np.uint8)
    stats = CropStats(total=len(images))
    for i, img in enumerate(images):
        crops[i], found = cropper.crop(img)
        stats.detected += int(found)
        stats.fallback += int(not found)
    return crops, stats


def _utk_splits(root: Path, name: str, cropper: FaceCropper, seed: int, limit: int,
                cache_dir: Optional[str | Path], progress: bool) -> tuple[dict[str, FaceLabels], dict, list[str]]:
    """Return ({split: FaceLabels}, crop stats, skip messages) of one UTKFace folder, split 75/10/15."""
    utk = utk_data.read_utkface(root, limit=limit)
    faces, ok, stats = cached_face_crops(name, utk.paths, cropper, cache_dir, progress)
    split = utk_data.split_utkface(len(utk), seed)
    labelled = _utk_labels(faces, utk)
    # unreadable images are dropped (counted in stats)
    return ({part: labelled.subset(index[ok[index]]) for part, index in split.items()}, stats.to_dict(),
            utk.skipped)


def load_multitask(utk_root: str | Path, fer_root: str | Path, spec: CropSpec, seed: int,
                   limit: int = 0, cache_dir: Optional[str | Path] = None,
                   progress: bool = True, utk_more_root: Optional[str | Path] = None) -> MultitaskData:
    """Return cropped, labelled train/val/test splits of UTKFace + FER2013 (crops cached as .npy).

    UTKFace: seeded random 75/10/15 split of each folder on its own (``utk_root``, then
    ``utk_more_root`` when given), so the split of ``utk_root`` is the same with or without the
    second folder. FER2013: its official test part; validation carved (seeded, stratified) from
    its training part. ``limit`` > 0 keeps about that many images of each source (evenly spaced),
    for quick runs and tests.
    """
    cropper = FaceCropper(spec, pad=DETECT_PAD)
    utk_parts = {"utkface": Path(utk_root).resolve()}
    if utk_more_root is not None:
        utk_parts["utkface_more"] = Path(utk_more_root).resolve()
    utk_splits, crop_stats, skipped = {}, {}, {}
    for name, root in utk_parts.items():
        utk_splits[name], crop_stats[name], skipped[name] = _utk_splits(root, name, cropper, seed, limit,
                                                                       cache_dir, progress)
    fer = fer_data.read_fer(Path(fer_root).resolve())
    if limit and limit < len(fer):
        fer = fer.subset(np.linspace(0, len(fer) - 1, limit).round().astype(int))
    if fer.paths is not None:
        fer_faces, fer_ok, fer_stats = cached_face_crops("fer2013", fer.paths, cropper, cache_dir, progress)
    else:
        fer_faces, fer_stats = crop_grey_arrays(fer_data.grey_images(fer), cropper)
        fer_ok = np.ones(len(fer), bool)
    fer_split = fer_data.split_fer(fer, seed)
    fer_all = _fer_labels(fer_faces, fer)
    splits, sizes = {}, {}
    for part in ("train", "val", "test"):
        fi = fer_split[part][fer_ok[fer_split[part]]]
        splits[part] = concat([*(s[part] for s in utk_splits.values()), fer_all.subset(fi)])
        sizes[part] = {**{name: len(s[part]) for name, s in utk_splits.items()}, "fer2013": int(len(fi))}
    crop_stats["fer2013"] = fer_stats.to_dict()
    return MultitaskData(splits=splits, crop_stats=crop_stats,
                         skipped={**{k: v[:50] for k, v in skipped.items()}, "fer2013": fer.skipped[:50]},
                         sizes=sizes)
