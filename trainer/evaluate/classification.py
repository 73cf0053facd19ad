"""Classification metrics for binary/multi-label sigmoid heads and softmax heads (scikit-learn).

Labels use -1 for "missing" (ignored per label). Attributes whose balanced accuracy is
below :data:`UNRELIABLE_BALANCED_ACCURACY` are flagged unreliable (the device hides them).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
from sklearn import metrics as skm

UNRELIABLE_BALANCED_ACCURACY = 0.70
THRESHOLD_GRID = np.round(np.arange(0.10, 0.901, 0.02), 2)


def binary_metrics(y_true: np.ndarray, prob: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    """Return accuracy, balanced accuracy, F1, precision, recall, AUC, confusion and class-wise error.

    Rows with y_true < 0 are ignored. AUC is None when only one class is present.
    """
    y_true, prob = np.asarray(y_true).ravel(), np.asarray(prob, np.float64).ravel()
    keep = y_true >= 0
    y, p = y_true[keep].astype(int), prob[keep]
    if y.size == 0:
        return {"n": 0}
    pred = (p >= threshold).astype(int)
    cm = skm.confusion_matrix(y, pred, labels=[0, 1])
    tn, fp, fn, tp = (int(v) for v in cm.ravel())
    both = len(np.unique(y)) == 2
    return {
        "n": int(y.size),
        "positive_rate": float(y.mean()),
        "threshold": float(threshold),
        "accuracy": float(skm.accuracy_score(y, pred)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y, pred)) if both else float(skm.accuracy_score(y, pred)),
        "f1": float(skm.f1_score(y, pred, zero_division=0)),
        "precision": float(skm.precision_score(y, pred, zero_division=0)),
        "recall": float(skm.recall_score(y, pred, zero_division=0)),
        "auc": float(skm.roc_auc_score(y, p)) if both else None,
        "majority_baseline": float(max(y.mean(), 1 - y.mean())),
        "confusion": [[tn, fp], [fn, tp]],
        "error_negative": fp / max(1, tn + fp),   # class-wise error: negatives called positive
        "error_positive": fn / max(1, fn + tp),   # positives missed
    }


def tune_thresholds(y_val: np.ndarray, p_val: np.ndarray, objective: str = "accuracy",
                    grid: np.ndarray = THRESHOLD_GRID, min_gain: float = 0.0) -> np.ndarray:
    """Return one decision threshold per label (column) maximising ``objective`` on validation.

    objective: "accuracy", "balanced_accuracy" or "f1". Ties go to the threshold nearest 0.5,
    and a label with no positive or no negative validation example keeps 0.5. A threshold
    whose gain over 0.5 is below ``min_gain`` is not taken (on a few hundred validation
    faces such gains are noise and do not carry over to the test split).
    """
    y_val, p_val = np.atleast_2d(np.asarray(y_val)), np.atleast_2d(np.asarray(p_val, np.float64))
    if y_val.shape[0] == 1 and y_val.shape[1] != 1 and p_val.shape[0] == 1:
        y_val, p_val = y_val.T, p_val.T
    scorer = {"accuracy": skm.accuracy_score, "balanced_accuracy": skm.balanced_accuracy_score,
              "f1": lambda a, b: skm.f1_score(a, b, zero_division=0)}[objective]
    out = np.full(y_val.shape[1], 0.5)
    order = np.argsort(np.abs(grid - 0.5), kind="stable")
    for j in range(y_val.shape[1]):
        keep = y_val[:, j] >= 0
        y, p = y_val[keep, j].astype(int), p_val[keep, j]
        if y.size == 0 or len(np.unique(y)) < 2:
            continue
        scores = np.array([scorer(y, (p >= t).astype(int)) for t in grid[order]])
        best = int(np.argmax(scores))
        if scores[best] - scorer(y, (p >= 0.5).astype(int)) >= min_gain:
            out[j] = float(grid[order][best])
    return out


def multilabel_report(y_true: np.ndarray, prob: np.ndarray, labels: Sequence[str],
                      thresholds: Optional[Sequence[float]] = None) -> dict[str, Any]:
    """Return per-label binary metrics plus mean accuracy, mean balanced accuracy, exact match, unreliable.

    ``y_true`` N x L of 0/1 (-1 = missing); ``prob`` N x L sigmoid outputs.
    """
    y_true, prob = np.asarray(y_true), np.asarray(prob)
    if y_true.shape != prob.shape or y_true.shape[1] != len(labels):
        raise ValueError(f"labels {y_true.shape}, predictions {prob.shape}, {len(labels)} names do not agree")
    th = np.asarray(thresholds if thresholds is not None else [0.5] * len(labels), np.float64)
    per_label = {name: binary_metrics(y_true[:, j], prob[:, j], th[j]) for j, name in enumerate(labels)}
    pred = (prob >= th[None, :]).astype(int)
    known = y_true >= 0
    exact = np.all((pred == y_true) | ~known, axis=1)
    accs = [m["accuracy"] for m in per_label.values() if m.get("n")]
    baccs = [m["balanced_accuracy"] for m in per_label.values() if m.get("n")]
    unreliable = [name for name, m in per_label.items()
                  if m.get("n") and m["balanced_accuracy"] < UNRELIABLE_BALANCED_ACCURACY]
    return {
        "n": int(len(y_true)),
        "mean_accuracy": float(np.mean(accs)) if accs else None,
        "mean_balanced_accuracy": float(np.mean(baccs)) if baccs else None,
        "mean_majority_baseline": float(np.mean([m["majority_baseline"] for m in per_label.values() if m.get("n")])),
        "exact_match": float(exact.mean()) if len(exact) else None,
        "unreliable": unreliable,
        "per_label": per_label,
    }


def classification_report_text(y_true: np.ndarray, prob: np.ndarray, labels: Sequence[str],
                               thresholds: Optional[Sequence[float]] = None) -> str:
    """Return scikit-learn's text classification report for each label of a multi-label head."""
    th = np.asarray(thresholds if thresholds is not None else [0.5] * len(labels))
    parts = []
    for j, name in enumerate(labels):
        keep = y_true[:, j] >= 0
        y, pred = y_true[keep, j].astype(int), (prob[keep, j] >= th[j]).astype(int)
        parts.append(f"== {name} (threshold {th[j]:.2f}, n={keep.sum()})\n" + skm.classification_report(
            y, pred, labels=[0, 1], target_names=[f"not {name}", name], digits=3, zero_division=0))
    return "\n".join(parts)


def multiclass_metrics(y_true: np.ndarray, prob: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Return accuracy, balanced accuracy, macro F1, confusion matrix, class-wise error and report for a softmax head.

    Rows with y_true < 0 are ignored.
    """
    y_true = np.asarray(y_true).ravel()
    keep = y_true >= 0
    y, p = y_true[keep].astype(int), np.asarray(prob)[keep]
    pred = p.argmax(1)
    k = list(range(len(labels)))
    cm = skm.confusion_matrix(y, pred, labels=k)
    per_class_error = {labels[i]: float(1 - cm[i, i] / cm[i].sum()) if cm[i].sum() else None for i in k}
    return {
        "n": int(y.size),
        "accuracy": float(skm.accuracy_score(y, pred)) if y.size else None,
        "balanced_accuracy": float(skm.balanced_accuracy_score(y, pred)) if y.size else None,
        "macro_f1": float(skm.f1_score(y, pred, labels=k, average="macro", zero_division=0)) if y.size else None,
        "confusion": cm.tolist(),
        "class_error": per_class_error,
        "report": skm.classification_report(y, pred, labels=k, target_names=list(labels), digits=3,
                                            zero_division=0, output_dict=True) if y.size else {},
    }


def label_correlation(y: np.ndarray) -> np.ndarray:
    """Return the L x L Pearson correlation of 0/1 label columns (missing = -1 treated as absent rows)."""
    y = np.asarray(y, np.float64)
    y = np.where(y < 0, np.nan, y)
    keep = ~np.isnan(y).any(axis=1)
    y = y[keep]
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(y, rowvar=False)
    return np.nan_to_num(corr, nan=0.0)
