"""face-train report RUN: the run's held-out metrics as a Markdown table (RUN/eval/report.md)."""
from __future__ import annotations

import argparse
from typing import Any

from ..run import read_run


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``report``: summarise a run's metrics from run.yaml."""
    parser = subparsers.add_parser("report", help="print a RUN's held-out metrics as Markdown")
    parser.add_argument("run", help="RUN folder")
    parser.set_defaults(func=run)


def metrics_markdown(info: dict[str, Any]) -> str:
    """Return a Markdown summary of run.yaml: model, data, headline metrics and per-label table."""
    lines = [f"# {info.get('name')} ({info.get('task')}, version {info.get('version')})", ""]
    training = info.get("training") or {}
    if training:
        lines.append("Training: " + ", ".join(f"{k}={v}" for k, v in training.items()
                                              if not isinstance(v, (dict, list))))
        lines.append("")
    metrics = info.get("metrics") or {}
    flat = {k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}
    if flat:
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in flat.items()]
        lines.append("")
    for key, block in metrics.items():
        if isinstance(block, dict) and block and all(isinstance(v, dict) for v in block.values()):
            cols = [c for c in ("accuracy", "balanced_accuracy", "f1", "auc", "threshold")
                    if any(c in v for v in block.values())]
            if not cols:
                continue
            lines += [f"## {key}", "", "| label | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
            for label, vals in block.items():
                cells = [f"{vals[c]:.3f}" if isinstance(vals.get(c), (int, float)) else "-" for c in cols]
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the report and write RUN/eval/report.md."""
    run_ = read_run(args.run, need_model=False)
    text = metrics_markdown(run_.info)
    (run_.eval_dir / "report.md").write_text(text + "\n")
    print(text)
    return 0
