"""Distortion-aware routing evaluation: the verdict follows the measured accuracies.

The recognisers here are stand-ins with known behaviour (a lookup that only knows the exact
clean crops, and a noisy but distortion-blind one); the real bundles are compared by
``face-train routing`` (README, models/embedding/MODEL_CARD.md).
"""
from __future__ import annotations

import numpy as np

from trainer.evaluate.routing import clean_mask, evaluate_routing


def _data(people: int = 12, per_person: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    crops = rng.integers(0, 256, (people * per_person, 32, 32, 3), dtype=np.uint8)
    ids = np.repeat(np.arange(people), per_person)
    pairs_l, pairs_r, same = [], [], []
    for i in range(len(ids)):
        for j in range(i + 1, len(ids)):
            if ids[i] == ids[j] or rng.random() < 0.06:
                pairs_l.append(i), pairs_r.append(j), same.append(ids[i] == ids[j])
    folds = np.arange(len(same)) % 10
    return crops, ids, np.array(pairs_l), np.array(pairs_r), np.array(same), folds


def _stand_ins(crops: np.ndarray, ids: np.ndarray):
    known = {c.tobytes(): i for c, i in zip(crops, ids)}
    people = int(ids.max()) + 1
    rng = np.random.default_rng(1)

    def clean(batch: np.ndarray) -> np.ndarray:  # exact on clean crops, random on anything else
        out = rng.normal(size=(len(batch), people))
        for k, c in enumerate(batch):
            if c.tobytes() in known:
                out[k] = np.eye(people)[known[c.tobytes()]]
        return out

    order = {c.tobytes(): k for k, c in enumerate(crops)}

    def robust(batch: np.ndarray) -> np.ndarray:  # same noisy vector for a face however it is distorted
        out = np.zeros((len(batch), people))
        for k, c in enumerate(batch):
            idx = order.get(c.tobytes(), k % len(crops))
            out[k] = np.eye(people)[ids[idx]] + np.random.default_rng(idx).normal(0, 0.45, people)
        return out

    return clean, robust, known


def test_routing_is_kept_when_it_beats_both_recognisers() -> None:
    crops, ids, left, right, same, folds = _data()
    clean, robust, known = _stand_ins(crops, ids)
    oracle = lambda batch: np.array([c.tobytes() in known for c in batch])  # noqa: E731
    result = evaluate_routing(crops, left, right, same, folds, clean, robust, oracle)
    assert result.accuracy["clean"]["clean"] == 1.0
    assert result.accuracy["clean"]["blur"] < 0.75           # the lookup is lost on distorted probes
    assert result.accuracy["routed"]["clean"] == 1.0
    assert result.routed_correctly["fog"] == 1.0
    assert result.mean("routed") > max(result.mean("clean"), result.mean("robust"))
    assert result.keep_routing
    assert "| routed |" in result.markdown()


def test_routing_is_dropped_when_the_classifier_calls_everything_clean() -> None:
    crops, ids, left, right, same, folds = _data()
    clean, robust, _ = _stand_ins(crops, ids)
    result = evaluate_routing(crops, left, right, same, folds, clean, robust,
                              lambda batch: np.ones(len(batch), bool))
    assert result.accuracy["routed"] == result.accuracy["clean"]
    assert result.routed_correctly["noise"] == 0.0
    assert not result.keep_routing
    assert "not kept" in result.markdown()


def test_clean_mask_reads_the_argmax() -> None:
    labels = ("clean", "blur", "dark")
    probs = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.4, 0.1, 0.5]])
    assert clean_mask(probs, labels).tolist() == [True, False, False]
