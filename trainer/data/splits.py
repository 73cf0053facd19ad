"""Train/val/test splits: the official partition when present, else seeded and identity-disjoint.

Split codes follow CelebA's list_eval_partition.txt: 0 train, 1 val, 2 test.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..errors import DataError

TRAIN, VAL, TEST = 0, 1, 2
SPLIT_NAMES = {TRAIN: "train", VAL: "val", TEST: "test"}


def identity_disjoint_split(identities: np.ndarray, fractions: Sequence[float] = (0.8, 0.1, 0.1),
                            seed: int = 1729) -> np.ndarray:
    """Return a split code per row so that no identity appears in two splits (seeded).

    Rows with identity -1 (unknown) are each treated as their own identity.
    """
    identities = np.asarray(identities)
    ids = identities.astype(np.int64).copy()
    unknown = ids < 0
    ids[unknown] = ids.max(initial=0) + 1 + np.arange(unknown.sum())
    unique = np.unique(ids)
    rng = np.random.default_rng(seed)
    rng.shuffle(unique)
    total = float(sum(fractions))
    n_train = int(round(len(unique) * fractions[0] / total))
    n_val = int(round(len(unique) * fractions[1] / total))
    code = {int(i): TRAIN for i in unique[:n_train]}
    code.update({int(i): VAL for i in unique[n_train:n_train + n_val]})
    code.update({int(i): TEST for i in unique[n_train + n_val:]})
    return np.array([code[int(i)] for i in ids], np.int8)


def choose_split(partition: Optional[np.ndarray], identities: Optional[np.ndarray], n: int,
                 seed: int = 1729, fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> tuple[np.ndarray, str]:
    """Return (split codes, how): the official partition if it covers every row and has all three parts,
    else an identity-disjoint seeded split (identities known), else a seeded per-image split."""
    if partition is not None and len(partition) == n and np.all(partition >= 0) \
            and all((partition == s).any() for s in (TRAIN, VAL, TEST)):
        return np.asarray(partition, np.int8), "official partition file"
    if identities is not None and len(identities) == n and np.any(np.asarray(identities) >= 0):
        return identity_disjoint_split(identities, fractions, seed), f"identity-disjoint, seed {seed}"
    return identity_disjoint_split(np.full(n, -1), fractions, seed), f"per-image (no identities), seed {seed}"


def split_indices(split: np.ndarray, code: int, where: str = "data set") -> np.ndarray:
    """Return the row indices of split ``code``; DataError when that split is empty."""
    idx = np.flatnonzero(np.asarray(split) == code)
    if idx.size == 0:
        raise DataError(f"{where}: the {SPLIT_NAMES.get(code, code)} split is empty")
    return idx


def class_balanced_indices(labels: np.ndarray, size: Optional[int] = None, seed: int = 1729,
                           power: float = 0.5) -> np.ndarray:
    """Return row indices drawn with replacement so rare label values appear more often.

    ``labels``: N ints (one class per row) or N x L 0/1 (multi-label; -1 missing). A row's
    weight is the largest inverse frequency of its label values, raised to ``power``
    (1 = fully balanced, 0.5 = softened, which keeps common attributes from being starved).
    """
    labels = np.asarray(labels)
    n = len(labels)
    if n == 0:
        raise DataError("class-balanced sampling: no rows")
    if labels.ndim == 1:
        values, counts = np.unique(labels, return_counts=True)
        freq = dict(zip(values.tolist(), (counts / n).tolist()))
        weight = np.array([1.0 / freq[v] for v in labels.tolist()])
    else:
        pos = np.clip(np.mean(np.where(labels < 0, 0, labels), axis=0), 1e-3, 1 - 1e-3)
        inv = np.where(labels == 1, 1.0 / pos[None, :], np.where(labels == 0, 1.0 / (1 - pos)[None, :], 0.0))
        weight = inv.max(axis=1)
    weight = weight ** power
    rng = np.random.default_rng(seed)
    return rng.choice(n, size=size or n, replace=True, p=weight / weight.sum())
