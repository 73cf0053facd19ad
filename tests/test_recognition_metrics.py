"""Verification (10-fold, threshold from the other folds), ROC / TAR@FAR and identification on synthetic embeddings."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainer.evaluate.verification import (best_threshold, cosine_distance, identify, l2_normalise,
                                           plot_confusion, plot_roc, verify)


def _pairs(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (distances, same, folds) of pairs of noisy copies of random identity vectors."""
    centres = l2_normalise(rng.normal(size=(n, 32)))
    a = centres + noise * rng.normal(size=centres.shape)
    same = np.arange(n) % 2 == 0
    other = np.roll(centres, 1, axis=0)
    b = np.where(same[:, None], centres, other) + noise * rng.normal(size=centres.shape)
    return cosine_distance(a, b), same, np.arange(n) % 10


def test_separable_pairs_score_perfectly_and_noise_lowers_accuracy(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    clean = verify(*_pairs(rng, 600, 0.02))
    noisy = verify(*_pairs(rng, 600, 0.35))
    assert clean.accuracy == 1.0 and clean.auc == 1.0 and clean.tar_at_far["0.001"] == 1.0
    assert 0.6 < noisy.accuracy < 0.99 and noisy.auc < 1.0
    assert len(noisy.fold_accuracy) == 10 and 0.0 < noisy.threshold < 2.0
    png = plot_roc({"clean": clean, "noisy": noisy}, tmp_path / "roc.png")
    assert png.stat().st_size > 5000


def test_threshold_is_chosen_on_the_other_folds() -> None:
    # Fold 0 alone would want a threshold near 0.9; the other folds agree on 0.5, so fold 0 scores 0.5.
    dist = np.array([0.8, 0.85, 0.95, 1.0] + [0.4, 0.6] * 18)
    same = np.array([True, True, False, False] + [True, False] * 18)
    folds = np.array([0] * 4 + [1 + i % 9 for i in range(36)])
    res = verify(dist, same, folds)
    assert res.fold_accuracy[0] == 0.5
    assert all(a == 1.0 for a in res.fold_accuracy[1:])
    assert 0.4 < res.fold_threshold[0] < 0.6
    assert best_threshold(np.array([0.1, 0.2, 0.7, 0.9]), np.array([1, 1, 0, 0])) == pytest.approx(0.45)


def test_identification_and_confusion(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(5, 16))
    ids = [f"p{i}" for i in range(5)]
    enroll = np.repeat(centres, 3, axis=0) + 0.1 * rng.normal(size=(15, 16))
    probes = np.repeat(centres, 4, axis=0) + 0.1 * rng.normal(size=(20, 16))
    probe_ids = np.repeat(ids, 4).tolist()
    probe_ids[0] = "p1"  # one wrong truth label -> exactly one error
    res = identify(enroll, np.repeat(ids, 3).tolist(), probes, probe_ids)
    assert res.accuracy == 19 / 20 and res.confusion.sum() == 20 and res.confusion[1, 0] == 1
    assert plot_confusion(res, tmp_path / "cm.png").stat().st_size > 3000


def _eval_sets(n: int = 40):
    """Return EvalSets over ``n`` random-texture 'faces': pair k is (k, k) when even, (k, k+1) when odd."""
    from trainer.tasks.recognition import EvalSets, FaceTable

    rng = np.random.default_rng(3)
    crops = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    table = FaceTable("synthetic", [f"{k}.png" for k in range(n)], crops, np.zeros((n, 128), np.float32),
                      np.ones(n, bool), [str(k) for k in range(n)], np.zeros(n, np.float32))
    left = np.arange(n)
    same = left % 2 == 0
    right = np.where(same, left, (left + 1) % n)
    return EvalSets(table, left, right, same, left % 10)


def test_distorted_probes_are_scored_per_kind() -> None:
    from trainer.distort import DISTORTIONS
    from trainer.tasks.recognition import distorted_verification

    sets = _eval_sets()

    def pixels(crops: np.ndarray) -> np.ndarray:            # an embedder that is just the centred pixels
        flat = crops.reshape(len(crops), -1).astype(np.float32)
        return l2_normalise(flat - flat.mean(axis=1, keepdims=True))

    clean = pixels(sets.wild.crops)
    assert verify(cosine_distance(clean[sets.pairs_left], clean[sets.pairs_right]), sets.same, sets.folds).accuracy == 1.0
    scores = distorted_verification(sets, clean, pixels)
    assert set(scores) == set(DISTORTIONS) and all(0.0 <= v <= 1.0 for v in scores.values())
    assert min(scores.values()) < 1.0   # a pixel embedder is not robust to all of them: it shows
    one_hot = np.eye(len(sets.wild.crops), dtype=np.float32)   # an embedder blind to pixels is unaffected
    assert all(v == 1.0 for v in distorted_verification(sets, one_hot, lambda c: one_hot[:len(c)]).values())
