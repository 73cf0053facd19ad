"""Choose the multitask model's test-time views (edge.views presets) on the validation split."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from edge.views import PRESETS

from ..evaluate.classification import tune_thresholds
from . import report

# Figures compared per preset, and whether lower is better.
FIGURES = {"age_mae": True, "gender_accuracy": False, "emotion_accuracy": False, "ethnicity_accuracy": False}


def compare_views(model: Any, faces: np.ndarray, labels: Mapping[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """Return {preset: {figure: value, "calls": n, "gender_threshold": t}} of the Keras model on validation faces.

    Each preset's gender threshold is tuned on these same outputs, as fit then does for the chosen one.
    """
    table: dict[str, dict[str, Any]] = {}
    for name, views in sorted(PRESETS.items(), key=lambda kv: len(kv[1])):
        out = report.keras_outputs(model, faces, views=views)
        threshold = float(tune_thresholds(np.asarray(labels["gender"]).reshape(-1, 1), out["gender"].reshape(-1, 1))[0])
        summary = report.head_metrics(out, labels, threshold)["summary"]
        table[name] = {**{k: float(summary[k]) for k in FIGURES}, "calls": len(views), "gender_threshold": threshold}
    return table


def choose_views(table: Mapping[str, Mapping[str, Any]]) -> str:
    """Return the preset with the best mean rank over FIGURES (ties: the one with fewer model calls)."""
    names = list(table)
    ranks = {n: 0.0 for n in names}
    for figure, lower in FIGURES.items():
        ordered = sorted(names, key=lambda n: table[n][figure] if lower else -table[n][figure])
        for rank, n in enumerate(ordered):
            ranks[n] += rank
    return min(names, key=lambda n: (ranks[n], table[n]["calls"]))


def views_table_md(table: Mapping[str, Mapping[str, Any]], chosen: str) -> str:
    """Return the Markdown table of a views comparison, the chosen preset in bold."""
    lines = ["| views | model calls / face | age MAE | gender | emotion | ethnicity |", "|---|---:|---:|---:|---:|---:|"]
    for name, row in table.items():
        label = f"**{name}** (chosen)" if name == chosen else name
        lines.append(f"| {label} | {row['calls']} | {row['age_mae']:.2f} | {row['gender_accuracy']:.3f} | "
                     f"{row['emotion_accuracy']:.3f} | {row['ethnicity_accuracy']:.3f} |")
    return "\n".join(lines)
