"""Regression metrics for the age head: MAE, RMSE, age-group accuracy, and their figures.

Age groups are half-open year ranges ``min <= age < max`` (the last group has no max), the
same list that goes into the manifest output's ``groups`` so the device shows the same group.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn import metrics as skm  # noqa: E402

Group = Mapping[str, Any]  # {"label": "20-29", "min": 20, "max": 30}


def group_index(values: np.ndarray, groups: Sequence[Group]) -> np.ndarray:
    """Return the index of the group each value falls in (values below the first min go to group 0)."""
    edges = np.asarray([float(g["min"]) for g in groups[1:]])
    return np.searchsorted(edges, np.asarray(values, np.float64), side="right").astype(np.int64)


def group_label(value: float, groups: Sequence[Group]) -> str:
    """Return the label of the group ``value`` falls in."""
    return str(groups[int(group_index(np.asarray([value]), groups)[0])]["label"])


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray,
                       baseline: Optional[float] = None) -> dict[str, Any]:
    """Return n, MAE, RMSE, median absolute error, mean error (bias) over rows whose label is not NaN.

    ``baseline`` (e.g. the training-set mean) adds ``baseline_mae``: the MAE of always predicting it.
    """
    y_true, y_pred = np.asarray(y_true, np.float64).ravel(), np.asarray(y_pred, np.float64).ravel()
    keep = ~np.isnan(y_true)
    t, p = y_true[keep], y_pred[keep]
    if t.size == 0:
        return {"n": 0}
    out = {"n": int(t.size), "mae": float(skm.mean_absolute_error(t, p)),
           "rmse": float(np.sqrt(skm.mean_squared_error(t, p))),
           "median_ae": float(skm.median_absolute_error(t, p)), "bias": float(np.mean(p - t))}
    if baseline is not None:
        out["baseline_mae"] = float(np.mean(np.abs(t - baseline)))
    return out


def group_metrics(y_true: np.ndarray, y_pred: np.ndarray, groups: Sequence[Group]) -> dict[str, Any]:
    """Return age-group accuracy, off-by-one accuracy, confusion matrix and MAE per true group."""
    y_true, y_pred = np.asarray(y_true, np.float64).ravel(), np.asarray(y_pred, np.float64).ravel()
    keep = ~np.isnan(y_true)
    t, p = y_true[keep], y_pred[keep]
    if t.size == 0:
        return {"n": 0}
    gt, gp = group_index(t, groups), group_index(p, groups)
    k = list(range(len(groups)))
    labels = [str(g["label"]) for g in groups]
    mae_by_group = {labels[i]: (float(np.mean(np.abs(t[gt == i] - p[gt == i]))) if np.any(gt == i) else None)
                    for i in k}
    return {"n": int(t.size), "accuracy": float(np.mean(gt == gp)),
            "off_by_one_accuracy": float(np.mean(np.abs(gt - gp) <= 1)),
            "confusion": skm.confusion_matrix(gt, gp, labels=k).tolist(), "labels": labels,
            "mae_by_group": mae_by_group,
            "report": skm.classification_report(gt, gp, labels=k, target_names=labels, digits=3,
                                                zero_division=0, output_dict=True)}


def group_report_text(y_true: np.ndarray, y_pred: np.ndarray, groups: Sequence[Group]) -> str:
    """Return scikit-learn's text classification report of the age groups."""
    keep = ~np.isnan(np.asarray(y_true, np.float64))
    gt = group_index(np.asarray(y_true)[keep], groups)
    gp = group_index(np.asarray(y_pred)[keep], groups)
    k = list(range(len(groups)))
    return skm.classification_report(gt, gp, labels=k, target_names=[str(g["label"]) for g in groups],
                                     digits=3, zero_division=0)


def plot_age_scatter(y_true: np.ndarray, y_pred: np.ndarray, path: str | Path, title: str = "age") -> Path:
    """Write predicted vs true age (with the identity line) and the error histogram; return the PNG path."""
    y_true, y_pred = np.asarray(y_true, np.float64).ravel(), np.asarray(y_pred, np.float64).ravel()
    keep = ~np.isnan(y_true)
    t, p = y_true[keep], y_pred[keep]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 4))
    a.scatter(t, p, s=4, alpha=0.4)
    hi = max(float(t.max(initial=1)), float(p.max(initial=1))) + 2
    a.plot([0, hi], [0, hi], "k--", lw=1)
    a.set_xlabel("true age (years)")
    a.set_ylabel("predicted age (years)")
    a.set_title(f"{title}: MAE {np.mean(np.abs(t - p)):.2f} years (n={t.size})")
    a.grid(alpha=0.3)
    b.hist(p - t, bins=50)
    b.set_xlabel("prediction - truth (years)")
    b.set_title("error distribution")
    b.grid(alpha=0.3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
