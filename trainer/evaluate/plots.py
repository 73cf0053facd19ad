"""Evaluation figures as PNG files (matplotlib, Agg backend): curves, correlation and confusion matrices."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_history(history: Mapping[str, Sequence[float]], path: str | Path,
                 metrics: Optional[Sequence[str]] = None) -> Path:
    """Write loss and metric curves (train vs validation, stage boundary marked); return the PNG path."""
    keys = [k for k in history if not k.startswith("val_") and k not in ("stage", "learning_rate")
            and f"val_{k}" in history]
    if metrics:
        keys = [k for k in keys if k in metrics or k == "loss"]
    keys = (["loss"] if "loss" in keys else []) + sorted(k for k in keys if k != "loss")
    keys = keys[:6] or [k for k in history if k != "stage"][:1]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.4), squeeze=False)
    stages = list(history.get("stage", []))
    for ax, key in zip(axes[0], keys):
        epochs = np.arange(1, len(history[key]) + 1)
        ax.plot(epochs, history[key], "o-", label="train")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], "s-", label="validation")
        if 2 in stages:
            ax.axvline(stages.index(2) + 0.5, color="grey", ls="--", lw=1, label="fine-tune starts")
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path)


def plot_correlation(matrix: np.ndarray, labels: Sequence[str], path: str | Path,
                     title: str = "label correlation") -> Path:
    """Write an L x L correlation heatmap (-1..1) with label names; return the PNG path."""
    n = len(labels)
    fig, ax = plt.subplots(figsize=(max(5, 0.28 * n + 2), max(4, 0.28 * n + 1.5)))
    im = ax.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(n), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(n), labels, fontsize=7)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.04)
    return _save(fig, path)


def plot_confusion(cm: np.ndarray, class_names: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Write one confusion matrix (counts, row-normalised colour); return the PNG path."""
    cm = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(max(3, 0.6 * len(class_names) + 1.5),) * 2)
    _draw_confusion(ax, cm, class_names, title)
    return _save(fig, path)


def _draw_confusion(ax: plt.Axes, cm: np.ndarray, class_names: Sequence[str], title: str) -> None:
    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm, dtype=float), where=rows > 0)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(class_names)), class_names, fontsize=7)
    ax.set_xlabel("predicted", fontsize=8)
    ax.set_ylabel("true", fontsize=8)
    ax.set_title(title, fontsize=9)


def plot_binary_confusions(confusions: Mapping[str, Sequence[Sequence[int]]], path: str | Path,
                           cols: int = 8) -> Path:
    """Write a grid of 2x2 confusion matrices, one per attribute; return the PNG path."""
    names = list(confusions)
    rows = max(1, int(np.ceil(len(names) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(2.1 * cols, 2.2 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, name in zip(axes.ravel(), names):
        ax.axis("on")
        _draw_confusion(ax, np.asarray(confusions[name]), ["no", "yes"], name)
    fig.tight_layout()
    return _save(fig, path)


def plot_metric_bars(values: Mapping[str, float], path: str | Path, title: str,
                     floor: Optional[float] = None) -> Path:
    """Write a horizontal bar chart of one metric per label (optional floor line); return the PNG path."""
    names = list(values)
    fig, ax = plt.subplots(figsize=(6, max(2.5, 0.22 * len(names) + 1)))
    ax.barh(range(len(names)), [values[n] for n in names], color="tab:blue")
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    if floor is not None:
        ax.axvline(floor, color="red", ls="--", lw=1)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)
