"""Fairness table: each metric per demographic group, with the gap to the best group.

A metric is a function (index array) -> value over the held-out rows of one group, with a
direction: "max" (accuracy: best = highest) or "min" (MAE: best = lowest). The gap of a group
is how far it is behind the best group (always >= 0).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np


@dataclass(frozen=True)
class Metric:
    """One column of the table: name, how to compute it over row indices, and which way is better."""

    name: str
    compute: Callable[[np.ndarray], float]
    better: str = "max"  # "max" or "min"


def fairness_table(groups: Mapping[str, np.ndarray], metrics: Sequence[Metric],
                   min_rows: int = 10) -> dict[str, Any]:
    """Return {"groups": {group: {"n", metric: value, metric_gap: gap}}, "max_gap": {metric: gap, group}}.

    ``groups`` maps a group name to the row indices of its members. Groups with fewer than
    ``min_rows`` rows are listed with their n but no values (too few to compare).
    """
    rows: dict[str, dict[str, Any]] = {}
    for name, idx in groups.items():
        idx = np.asarray(idx)
        row: dict[str, Any] = {"n": int(idx.size)}
        if idx.size >= min_rows:
            for m in metrics:
                value = m.compute(idx)
                row[m.name] = None if value is None or np.isnan(value) else float(value)
        rows[name] = row
    worst: dict[str, Any] = {}
    for m in metrics:
        values = {g: r[m.name] for g, r in rows.items() if r.get(m.name) is not None}
        if not values:
            continue
        best = max(values.values()) if m.better == "max" else min(values.values())
        for g, v in values.items():
            rows[g][f"{m.name}_gap"] = float(best - v if m.better == "max" else v - best)
        g_worst = max(values, key=lambda g: rows[g][f"{m.name}_gap"])
        worst[m.name] = {"gap": rows[g_worst][f"{m.name}_gap"], "worst_group": g_worst,
                         "best_group": min(values, key=lambda g: rows[g][f"{m.name}_gap"])}
    return {"groups": rows, "max_gap": worst}


def fairness_markdown(tables: Mapping[str, Mapping[str, Any]], metrics: Sequence[Metric],
                      digits: int = 3) -> str:
    """Return Markdown tables (one per grouping, e.g. gender / ethnicity): value (gap to best) per metric."""
    lines = []
    for title, table in tables.items():
        lines += [f"**By {title}**", "",
                  "| group | n | " + " | ".join(f"{m.name} ({'higher' if m.better == 'max' else 'lower'} is better)"
                                               for m in metrics) + " |",
                  "|---|---:|" + "---:|" * len(metrics)]
        for group, row in table["groups"].items():
            cells = []
            for m in metrics:
                v = row.get(m.name)
                cells.append("n/a" if v is None else f"{v:.{digits}f} (gap {row.get(f'{m.name}_gap', 0):.{digits}f})")
            lines.append(f"| {group} | {row['n']} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def write_fairness(tables: Mapping[str, Mapping[str, Any]], metrics: Sequence[Metric], folder: str | Path) -> Path:
    """Write fairness.md (the Markdown tables) into ``folder``; return its path."""
    path = Path(folder) / "fairness.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# Fairness on the held-out split (gap = distance to the best group)\n\n"
                    + fairness_markdown(tables, metrics), encoding="utf-8")
    return path
