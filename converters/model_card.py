"""MODEL_CARD.md generated from a run's run.yaml and the bundle's parity report."""
from __future__ import annotations

from typing import Any, Mapping, Optional

from edge.bundle import Manifest

from .golden import CARD_NOTE


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def _flatten(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(data, Mapping):
        rows: list[tuple[str, Any]] = []
        for key, value in data.items():
            rows.extend(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return rows
    return [(prefix, data)]


def _bullets(data: Any) -> list[str]:
    if not data:
        return ["- (not recorded in run.yaml)"]
    if isinstance(data, Mapping):
        return [f"- **{k}**: {_fmt(v)}" for k, v in _flatten(data)]
    return [f"- {_fmt(data)}"]


def _metric_text(metrics: Optional[Mapping[str, Any]]) -> str:
    if not metrics:
        return "n/a"
    return ", ".join(f"{k} {_fmt(v)}" for k, v in metrics.items() if not isinstance(v, Mapping))


def render_model_card(manifest: Manifest, run_raw: Mapping[str, Any], parity: Mapping[str, Any],
                      quantization: Mapping[str, Any], rebuild: str, extra_markdown: str = "") -> str:
    """Return the MODEL_CARD.md text of a bundle: data, training, metrics, parity, limits, rebuild."""
    inp, crop = manifest.input, manifest.crop
    lines = [f"# {manifest.name}: model card", "",
             f"- **task**: {manifest.task}", f"- **version**: {manifest.version}",
             f"- **trained**: {manifest.created or 'unknown'}",
             f"- **converted**: {quantization.get('converted', '')} by face-convert, mode **{quantization['mode']}**"
             + (f" ({quantization.get('io_type')} I/O, per-channel {quantization.get('per_channel')})"
                if quantization["mode"] == "int8" else ""),
             f"- **input**: {inp.height}x{inp.width}x{inp.channels} {inp.color.upper()} {inp.dtype}, "
             + (f"aligned chip {crop.size} px (dlib get_face_chip, padding {crop.margin}) from the five points of a "
              "landmarks bundle" if crop.aligned else
              f"edge crop size {crop.size}, margin {crop.margin}, shift_y {crop.shift_y}"),
             f"- **model size**: {quantization.get('tflite_bytes', 0) / 1024:.1f} KiB", "",
             "## Outputs", "", "| output | kind | labels | thresholds | not shown (unreliable) |",
             "|---|---|---|---|---|"]
    for out in manifest.outputs:
        lines.append(f"| {out.name} | {out.kind} | {_fmt(out.labels) or (out.unit or '-')} | "
                     f"{_fmt(out.thresholds) or '-'} | {_fmt(out.unreliable) or '-'} |")
    lines += ["", "## Data", ""] + _bullets(run_raw.get("data"))
    lines += ["", "## Training", ""] + _bullets(run_raw.get("training"))
    lines += ["", "## Held-out metrics (float model, from the trainer's evaluation)", ""] + _bullets(manifest.metrics)
    lines += ["", f"## Float vs {quantization['mode']} parity on {parity.get('heldout_faces', 0)} held-out faces", ""]
    if parity.get("heads"):
        lines += ["| head | agreement | rule | max abs diff | mean abs diff | float metrics | converted metrics |",
                  "|---|---|---|---|---|---|---|"]
        for name, head in parity["heads"].items():
            lines.append(f"| {name} | {head['agreement']:.4f} | {head['agreement_rule'].replace('|', chr(92) + '|')} | {head['max_abs_diff']:.4g} | "
                         f"{head['mean_abs_diff']:.4g} | {_metric_text(head.get('metrics_float'))} | "
                         f"{_metric_text(head.get('metrics_converted'))} |")
        lines.append("")
        lines.append(f"Agreement floor {parity.get('floor')}: "
                     + ("met." if parity.get("floor_met") else "NOT met (written with --force)."))
    else:
        lines.append("No held-out faces in the run: parity was not measured.")
    modes = parity.get("modes") or {}
    if modes:
        lines += ["", f"## Size and per-face latency by mode (this machine, {parity.get('threads', 1)} thread, "
                      "FaceModel.predict median)", "",
                  "| mode | size KiB | ms / face | min agreement |", "|---|---|---|---|"]
        for mode, row in modes.items():
            agree = row.get("min_agreement")
            lines.append(f"| {mode} | {row['bytes'] / 1024:.1f} | {row['latency_ms']:.2f} | "
                         f"{'-' if agree is None else f'{agree:.4f}'} |")
    runtimes = parity.get("runtimes") or {}
    if runtimes:
        lines += ["", "Golden faces replayed after writing: "
                  + "; ".join(f"{name} {status}" for name, status in runtimes.items()) + "."]
    lines += ["", CARD_NOTE]
    lines += ["", "## Limits", ""]
    unreliable = [f"{o.name}: {', '.join(o.unreliable)}" for o in manifest.outputs if o.unreliable]
    lines.append("- Labels flagged unreliable are not shown on the device: "
                 + ("; ".join(unreliable) if unreliable else "none flagged") + ".")
    lines.append("- Figures come from the held-out faces of the training run; faces unlike the training data "
                 "(pose, lighting, age, ethnicity, camera) may do worse.")
    licence = (run_raw.get("data") or {}).get("licence") if isinstance(run_raw.get("data"), Mapping) else None
    lines.append(f"- Data licence: {licence or 'see the data READMEs'}.")
    lines += ["", "## Rebuild", "", "```bash", rebuild, "```", ""]
    if extra_markdown.strip():
        lines += [extra_markdown.strip(), ""]
    return "\n".join(lines)
