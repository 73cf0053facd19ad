"""Float Keras vs converted TFLite on the run's held-out faces: agreement, score differences, metrics.

Agreement per head (the figure the int8 floor applies to):
  sigmoid     fraction of (face, label) decisions that match at the manifest thresholds
  softmax     fraction of faces whose top class matches
  regression  fraction of faces whose values differ by at most ``tolerance`` (10% of the
              held-out target standard deviation, else of the float predictions')
  embedding   fraction of faces whose float and converted embeddings have cosine >= 0.95 (pair accuracy in
              the model's own distance)
  landmarks   fraction of faces whose points all move by at most 1 % of the crop side
The converted model runs through edge.models.FaceModel, so parity covers edge's own
preprocessing and output decoding.
"""
from __future__ import annotations

import time
from typing import Any, Mapping, Optional

import numpy as np

from edge.bundle import Manifest, OutputSpec
from edge.distance import EUCLIDEAN, check_distance
from edge.models import FaceModel

from .errors import ParityError

EMBEDDING_COSINE_AGREE = 0.95
REGRESSION_TOLERANCE_FRACTION = 0.10
LANDMARK_TOLERANCE = 0.01   # of the crop side
PAIR_FOLDS = 10
MAX_PAIRS = 6000


def tflite_outputs(model: FaceModel, faces_rgb: np.ndarray) -> dict[str, np.ndarray]:
    """Return the converted model's dequantized outputs on RGB crops, keyed by output name (N x D)."""
    rows: dict[str, list[np.ndarray]] = {spec.name: [] for spec in model.manifest.outputs}
    for face in faces_rgb:
        outs = model.raw_outputs(model.preprocess(np.ascontiguousarray(face[:, :, ::-1])))
        for spec, y in zip(model.manifest.outputs, outs):
            rows[spec.name].append(y)
    return {name: np.stack(v).astype(np.float32) for name, v in rows.items()}


def latency_ms(model: FaceModel, faces_rgb: np.ndarray, repeats: int = 60, warmup: int = 5) -> float:
    """Return the median wall time in ms of FaceModel.predict on one face (preprocess + invoke + decode,
    for every test-time view the manifest lists)."""
    crops = [np.ascontiguousarray(f[:, :, ::-1]) for f in faces_rgb[: max(1, min(len(faces_rgb), 20))]]
    for i in range(warmup):
        model.predict(crops[i % len(crops)])
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        model.predict(crops[i % len(crops)])
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000.0)


def _unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norm > 0, norm, 1.0)


def _sigmoid_metrics(spec: OutputSpec, y: np.ndarray, truth: Optional[np.ndarray]) -> Optional[dict[str, Any]]:
    if truth is None:
        return None
    truth = truth.reshape(len(y), -1)
    thr = np.array([spec.threshold(lab) for lab in spec.labels], np.float32)
    decided = y >= thr
    per_label = {}
    for j, lab in enumerate(spec.labels):
        known = truth[:, j] >= 0
        if known.any():
            per_label[lab] = float(np.mean(decided[known, j] == (truth[known, j] > 0)))
    if not per_label:
        return None
    return {"accuracy": float(np.mean(list(per_label.values()))), "accuracy_per_label": per_label}


def _softmax_metrics(y: np.ndarray, truth: Optional[np.ndarray]) -> Optional[dict[str, Any]]:
    if truth is None:
        return None
    truth = truth.reshape(-1)
    known = truth >= 0
    if not known.any():
        return None
    return {"accuracy": float(np.mean(np.argmax(y[known], axis=1) == truth[known]))}


def _regression_metrics(y: np.ndarray, truth: Optional[np.ndarray]) -> Optional[dict[str, Any]]:
    if truth is None:
        return None
    truth = truth.reshape(-1).astype(np.float64)
    known = np.isfinite(truth)
    if not known.any():
        return None
    return {"mae": float(np.mean(np.abs(y[known, 0] - truth[known])))}


def _landmark_metrics(y: np.ndarray, truth: Optional[np.ndarray]) -> Optional[dict[str, Any]]:
    """Return the mean point error (fraction of the crop) and the NME (eye-centre distance) against ``truth``."""
    if truth is None:
        return None
    pred, true = y.reshape(len(y), -1, 2), truth.reshape(len(truth), -1, 2).astype(np.float64)
    error = np.linalg.norm(pred - true, axis=2).mean(1)
    out = {"mean_point_error": float(error.mean())}
    if true.shape[1] == 5:  # dlib's 5 points: eye corners 0-1 and 2-3
        eyes = np.linalg.norm(true[:, 0:2].mean(1) - true[:, 2:4].mean(1), axis=1)
        out["nme_percent"] = float(100.0 * np.mean(error / np.maximum(eyes, 1e-6)))
    return out


def _pairs(ids: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (i, j, same) for all same-identity pairs (capped) and as many seeded different pairs."""
    rng = np.random.default_rng(seed)
    n = len(ids)
    ii, jj = np.triu_indices(n, k=1)
    same = ids[ii] == ids[jj]
    pos = np.flatnonzero(same)
    neg = np.flatnonzero(~same)
    k = min(len(pos), len(neg), MAX_PAIRS // 2)
    pos = rng.choice(pos, size=k, replace=False) if k < len(pos) else pos
    neg = rng.choice(neg, size=k, replace=False)
    pick = np.concatenate([pos, neg])
    return ii[pick], jj[pick], same[pick]


def verification_accuracy(similarity: np.ndarray, same: np.ndarray, seed: int = 0) -> float:
    """Return 10-fold pair accuracy, each fold's threshold chosen on the other nine (LFW protocol)."""
    order = np.random.default_rng(seed).permutation(len(same))
    folds = np.array_split(order, PAIR_FOLDS)
    correct = 0
    for k, test in enumerate(folds):
        train = np.concatenate([f for i, f in enumerate(folds) if i != k])
        candidates = np.unique(similarity[train])
        accs = [np.mean((similarity[train] >= t) == same[train]) for t in candidates]
        thr = candidates[int(np.argmax(accs))]
        correct += int(np.sum((similarity[test] >= thr) == same[test]))
    return correct / len(same)


def _embedding_metrics(y: np.ndarray, truth: Optional[np.ndarray], distance: str) -> Optional[dict[str, Any]]:
    if truth is None:
        return None
    ids = truth.reshape(-1)
    keep = ids >= 0
    ids, vecs = ids[keep], (y[keep] if distance == EUCLIDEAN else _unit(y[keep]))
    if len(ids) < 4:
        return None
    i, j, same = _pairs(ids, seed=0)
    if len(same) < PAIR_FOLDS or same.all() or not same.any():
        return None
    sim = -np.linalg.norm(vecs[i] - vecs[j], axis=1) if distance == EUCLIDEAN else np.sum(vecs[i] * vecs[j], axis=1)
    return {"pair_accuracy": float(verification_accuracy(sim, same)), "pairs": int(len(same))}


def head_parity(spec: OutputSpec, float_y: np.ndarray, quant_y: np.ndarray,
                truth: Optional[np.ndarray]) -> dict[str, Any]:
    """Return agreement, score differences and held-out metrics of float and converted for one head."""
    float_y = float_y.reshape(len(float_y), -1).astype(np.float32)
    quant_y = quant_y.reshape(len(quant_y), -1).astype(np.float32)
    report: dict[str, Any] = {"kind": spec.kind, "faces": int(len(float_y))}
    if spec.kind == "embedding":
        fu, qu = _unit(float_y), _unit(quant_y)
        cosine = np.sum(fu * qu, axis=1)
        diff = np.abs(fu - qu)
        report["agreement"] = float(np.mean(cosine >= EMBEDDING_COSINE_AGREE))
        report["agreement_rule"] = f"cosine(float, converted) >= {EMBEDDING_COSINE_AGREE}"
        report["mean_cosine"] = float(np.mean(cosine))
        report["min_cosine"] = float(np.min(cosine))
        distance = check_distance(spec.unit)
        metrics = (_embedding_metrics(float_y, truth, distance), _embedding_metrics(quant_y, truth, distance))
    else:
        diff = np.abs(float_y - quant_y)
        if spec.kind == "sigmoid":
            thr = np.array([spec.threshold(lab) for lab in spec.labels], np.float32)
            report["agreement"] = float(np.mean((float_y >= thr) == (quant_y >= thr)))
            report["agreement_rule"] = "same decision at the manifest thresholds, per face and label"
            metrics = (_sigmoid_metrics(spec, float_y, truth), _sigmoid_metrics(spec, quant_y, truth))
        elif spec.kind == "softmax":
            report["agreement"] = float(np.mean(np.argmax(float_y, 1) == np.argmax(quant_y, 1)))
            report["agreement_rule"] = "same top class"
            metrics = (_softmax_metrics(float_y, truth), _softmax_metrics(quant_y, truth))
        elif spec.kind == "landmarks":
            report["agreement"] = float(np.mean(diff.max(axis=1) <= LANDMARK_TOLERANCE))
            report["agreement_rule"] = f"every coordinate within {LANDMARK_TOLERANCE:g} of the crop side"
            metrics = (_landmark_metrics(float_y, truth), _landmark_metrics(quant_y, truth))
        else:
            spread = None
            if truth is not None and np.isfinite(truth.astype(np.float64)).sum() > 1:
                spread = float(np.nanstd(truth.astype(np.float64)))
            if not spread:
                spread = float(np.std(float_y[:, 0])) or 1.0
            tol = REGRESSION_TOLERANCE_FRACTION * spread
            report["agreement"] = float(np.mean(np.abs(float_y[:, 0] - quant_y[:, 0]) <= tol))
            report["agreement_rule"] = f"|float - converted| <= {tol:.4g}{(' ' + spec.unit) if spec.unit else ''}"
            metrics = (_regression_metrics(float_y, truth), _regression_metrics(quant_y, truth))
    report["max_abs_diff"] = float(diff.max()) if diff.size else 0.0
    report["mean_abs_diff"] = float(diff.mean()) if diff.size else 0.0
    report["metrics_float"] = metrics[0]
    report["metrics_converted"] = metrics[1]
    return report


def parity_report(manifest: Manifest, float_outs: Mapping[str, np.ndarray], quant_outs: Mapping[str, np.ndarray],
                  labels: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Return the per-head parity of every output of ``manifest`` and the lowest agreement."""
    heads = {}
    for spec in manifest.outputs:
        truth = labels.get(spec.name)
        if truth is not None and len(truth) != len(float_outs[spec.name]):
            truth = None
        heads[spec.name] = head_parity(spec, float_outs[spec.name], quant_outs[spec.name], truth)
    worst = min(heads, key=lambda n: heads[n]["agreement"])
    return {"heads": heads, "min_agreement": heads[worst]["agreement"], "worst_head": worst}


def enforce_floor(report: Mapping[str, Any], floor: float, mode: str) -> None:
    """Raise ParityError naming each head whose agreement is below ``floor``."""
    failing = [(n, h["agreement"]) for n, h in report["heads"].items() if h["agreement"] < floor]
    if failing:
        names = ", ".join(f"{n} {a:.3f}" for n, a in failing)
        raise ParityError(f"{mode} model agrees with the float model below the floor {floor:.2f} on head(s) "
                          f"{names}; not written (use a better representative set, another mode, or --force)")
