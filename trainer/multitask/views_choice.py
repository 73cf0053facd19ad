"""Choose the multitask model's test-time views (edge.views presets) on the validation split."""
from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np

from edge.views import DEFAULT_MAX_CALLS, PRESETS, View

from ..evaluate.classification import tune_thresholds
from . import report

# Figures compared per preset, and whether lower is better.
FIGURES = {"age_mae": True, "gender_accuracy": False, "emotion_accuracy": False, "ethnicity_accuracy": False}


def distinct_views(presets: Mapping[str, tuple[View, ...]]) -> list[View]:
    """Return every view the presets use, once each, in first-use order."""
    return list(dict.fromkeys(v for views in presets.values() for v in views))


def averaged(per_view: Mapping[View, Mapping[str, np.ndarray]], views: tuple[View, ...]) -> dict[str, np.ndarray]:
    """Return the outputs averaged over ``views`` (each already in ``per_view``)."""
    return {h: np.mean([per_view[v][h] for v in views], axis=0) for h in per_view[views[0]]}


def score_presets(per_view: Mapping[View, Mapping[str, np.ndarray]], labels: Mapping[str, np.ndarray],
                  presets: Mapping[str, tuple[View, ...]] = PRESETS) -> dict[str, dict[str, Any]]:
    """Return {preset: {figure: value, "calls": n, "gender_threshold": t}} from per-view outputs on validation faces.

    Each preset's gender threshold is tuned on its own averaged outputs, the figures taken at it.
    """
    table: dict[str, dict[str, Any]] = {}
    for name, views in sorted(presets.items(), key=lambda kv: len(kv[1])):
        out = averaged(per_view, views)
        threshold = float(tune_thresholds(np.asarray(labels["gender"]).reshape(-1, 1), out["gender"].reshape(-1, 1))[0])
        summary = report.head_metrics(out, labels, threshold)["summary"]
        table[name] = {**{k: float(summary[k]) for k in FIGURES}, "calls": len(views), "gender_threshold": threshold}
    return table


def compare_views(model: Any, faces: np.ndarray, labels: Mapping[str, np.ndarray],
                  presets: Mapping[str, tuple[View, ...]] = PRESETS) -> dict[str, dict[str, Any]]:
    """Return :func:`score_presets` of the Keras model on validation faces (each distinct view run once)."""
    per_view = {v: report.keras_outputs(model, faces, views=(v,)) for v in distinct_views(presets)}
    return score_presets(per_view, labels, presets)


def choose_views(table: Mapping[str, Mapping[str, Any]], max_calls: Optional[int] = None) -> str:
    """Return the preset with the best mean rank over FIGURES among those of at most ``max_calls`` model calls
    per face (all when None; ties: the one with fewer calls)."""
    names = [n for n in table if max_calls is None or table[n]["calls"] <= max_calls]
    if not names:
        calls = ", ".join(f"{n}: {row['calls']}" for n, row in table.items())
        raise ValueError(f"no views preset makes at most {max_calls} model calls per face ({calls})")
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
