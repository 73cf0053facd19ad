"""A RUN folder (docs/run-format.md) holding dlib's face recognition ResNet ported to Keras.

Nothing is trained: the .dat's weights are read (:mod:`.network`), the network is rebuilt
(:mod:`.keras_model`) and checked against dlib itself. The faces come from the shared data
sets' dlib 5-point labels (:mod:`trainer.landmark_teacher`), aligned by :func:`edge.crop.crop_aligned`
exactly as ``dlib.get_face_chip`` aligns them:

- exactness: the Keras descriptors and ``dlib.face_recognition_model_v1.compute_face_descriptor``
  on the same 150x150 chips; every component must agree within :data:`EXACT_TOLERANCE`;
- the representative set for int8 calibration: chips of CelebA people who are not held out and
  of UTKFace faces;
- held-out faces (for the converter's parity report): chips of the held-out celeba_wild people,
  with their identities;
- the distance threshold: accuracy-optimal cosine distance on pairs of *validation* people
  (CelebA identities out of the held-out set, and the celeba_wild people that are not held out:
  nothing is trained on them), and the impostor tail of the same people (the distances of pairs
  of different people at rates from 1e-6 up), which edge.gallery calibrates each gallery with.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from edge.crop import CropSpec, crop_aligned
from edge.distance import COSINE, pairwise, prepare
from trainer.errors import DataError

from .keras_model import OUTPUT
from .network import INPUT_SIZE
from .packaged import packaged_dat

CHIP = CropSpec(size=INPUT_SIZE, margin=0.25, kind="aligned")   # dlib.get_face_chip(img, shape, 150, 0.25)
EXACT_TOLERANCE = 1e-3
VERSION = "1.1.0"


def default_dat() -> Path:
    """Return the path of dlib_face_recognition_resnet_model_v1.dat from face_recognition_models."""
    return packaged_dat("face_recognition_model_location")


def sha256(path: Path) -> str:
    """Return the hex sha256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def labelled_chips(name: str, data_root: Path, labels_dir: Optional[Path] = None,
                   rows: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """Return (RGB chips N x 150 x 150 x 3, relative paths) of the faces of data set ``name`` with
    dlib labels, aligned from dlib's own 5 points (``rows``: indices into those faces)."""
    from trainer.faces import read_image
    from trainer.landmark_teacher import DEFAULT_DIR, load_labels

    labels = load_labels(name, labels_dir or DEFAULT_DIR)
    have = np.flatnonzero(np.isfinite(labels["points"][:, 0, 0]))
    pick = have if rows is None else have[rows]
    chips = np.zeros((len(pick), INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
    for k, i in enumerate(pick):
        bgr = read_image(data_root / str(labels["paths"][i]))
        if bgr is None:
            raise DataError(f"{data_root / str(labels['paths'][i])}: unreadable")
        chips[k] = crop_aligned(bgr, labels["points"][i], CHIP)[:, :, ::-1]
    return chips, labels["paths"][pick]


def labelled_count(name: str, labels_dir: Optional[Path] = None) -> int:
    """Return how many faces of data set ``name`` have dlib labels."""
    from trainer.landmark_teacher import DEFAULT_DIR, load_labels

    return int(np.isfinite(load_labels(name, labels_dir or DEFAULT_DIR)["points"][:, 0, 0]).sum())


def dlib_descriptors(chips_rgb: np.ndarray) -> np.ndarray:
    """Return dlib's 128-d descriptors (N x 128 float32) of aligned 150x150 RGB chips."""
    import dlib

    encoder = dlib.face_recognition_model_v1(str(default_dat()))
    return np.array([np.asarray(encoder.compute_face_descriptor(np.ascontiguousarray(c)), np.float32)
                     for c in chips_rgb])


def keras_descriptors(model: Any, chips_rgb: np.ndarray, batch: int = 32) -> np.ndarray:
    """Return the Keras port's descriptors (N x 128 float32) of RGB chips."""
    out = [np.asarray(model(chips_rgb[i:i + batch].astype(np.float32), training=False)[OUTPUT])
           for i in range(0, len(chips_rgb), batch)]
    return np.concatenate(out).astype(np.float32)


def exactness(model: Any, chips_rgb: np.ndarray) -> dict[str, Any]:
    """Return the port's differences from dlib on the same chips; DataError when any exceeds EXACT_TOLERANCE."""
    ref = dlib_descriptors(chips_rgb)
    ours = keras_descriptors(model, chips_rgb)
    diff = np.abs(ref - ours)
    report = {"faces": int(len(chips_rgb)), "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
              "tolerance": EXACT_TOLERANCE,
              "reference": "dlib.face_recognition_model_v1.compute_face_descriptor on the same 150x150 chips"}
    if report["max_abs_diff"] >= EXACT_TOLERANCE:
        raise DataError(f"the Keras port differs from dlib by up to {report['max_abs_diff']:.2e} on "
                        f"{len(chips_rgb)} faces (tolerance {EXACT_TOLERANCE:g}): not exact")
    return report


def identity_pairs(vectors: np.ndarray, identities: Sequence[str], seed: int, limit: int = 20000,
                   distance: str = COSINE) -> tuple[np.ndarray, np.ndarray]:
    """Return (distances, same flags) of up to ``limit`` same and ``limit`` different pairs, seeded."""
    rng = np.random.default_rng(seed)
    ids = np.asarray(identities)
    groups = {p: np.flatnonzero(ids == p) for p in np.unique(ids)}
    same = [(a, b) for idx in groups.values() for k, a in enumerate(idx) for b in idx[k + 1:]]
    if not same:
        raise DataError("no identity has two faces: cannot calibrate a threshold")
    same = [same[i] for i in rng.permutation(len(same))[:limit]]
    diff = []
    while len(diff) < len(same):
        a, b = rng.integers(0, len(ids), 2)
        if ids[a] != ids[b]:
            diff.append((a, b))
    pairs = np.array(same + diff)
    a, b = prepare(vectors[pairs[:, 0]], distance), prepare(vectors[pairs[:, 1]], distance)
    gaps = 1.0 - np.sum(a * b, axis=1) if distance == COSINE else np.linalg.norm(a - b, axis=1)
    return gaps, np.array([True] * len(same) + [False] * len(diff))


def impostor_tail(vectors: np.ndarray, identities: Sequence[str], points: int = 30,
                  distance: str = COSINE) -> dict[str, list[float]]:
    """Return {rates, distances}: the distance (edge.distance) below which each rate of different-people pairs
    falls.

    Every pair of different people is used; rates run log-spaced from 20 pairs' worth (or 1e-6) to 0.3.
    """
    kept = prepare(vectors, distance)
    ids = np.asarray(identities)
    parts = []
    for start in range(0, len(kept), 512):
        block = pairwise(kept[start:start + 512], kept, distance)
        rows = np.arange(start, min(start + 512, len(kept)))
        keep = (ids[rows][:, None] != ids[None, :]) & (rows[:, None] < np.arange(len(kept))[None, :])
        parts.append(block[keep].astype(np.float32))
    distances = np.sort(np.concatenate(parts))
    if len(distances) < 1000:
        raise DataError(f"only {len(distances)} pairs of different people: too few for an impostor tail")
    rates = np.logspace(np.log10(max(1e-6, 20.0 / len(distances))), np.log10(0.3), points)
    values = np.quantile(distances, rates)
    return {"rates": [float(f"{r:.3g}") for r in rates], "distances": [round(float(v), 5) for v in values],
            "pairs": int(len(distances))}
