"""Held-out metrics of a converted bundle measured with the device code (edge.models.FaceModel).

The faces and labels are the run's own held-out samples (RUN/samples), so the figures are
those of the quantized model the Pi runs, with the manifest's thresholds.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np

from edge.bundle import load_bundle
from edge.models import FaceModel
from edge.runtime import get_runtime

from .evaluate.classification import multiclass_metrics, multilabel_report
from .run import Run

HEADLINE = ("Male", "Smiling", "Eyeglasses", "Blond_Hair", "Young")


def bundle_outputs(bundle_dir: str | Path, faces_rgb: np.ndarray, threads: int = 1) -> dict[str, np.ndarray]:
    """Return {output name: N x K} of the bundle's model on RGB uint8 crops, through FaceModel."""
    return face_model_outputs(FaceModel(load_bundle(bundle_dir), get_runtime("auto"), num_threads=threads), faces_rgb)


def face_model_outputs(model: FaceModel, faces_rgb: np.ndarray) -> dict[str, np.ndarray]:
    """Return {output name: N x K} of a loaded FaceModel on RGB uint8 crops.

    The outputs are what the device computes: averaged over the manifest's test-time views, if any.
    """
    rows: dict[str, list[np.ndarray]] = {o.name: [] for o in model.manifest.outputs}
    for face in faces_rgb:
        for spec, y in zip(model.manifest.outputs, model.outputs(np.ascontiguousarray(face[:, :, ::-1]))):
            rows[spec.name].append(y)
    return {k: np.stack(v) for k, v in rows.items()}


def bundle_metrics(bundle_dir: str | Path, run: Run, limit: int = 0) -> dict[str, Any]:
    """Return held-out metrics per output of the bundle (sigmoid: per-label report; softmax: accuracy)."""
    manifest = load_bundle(bundle_dir).manifest
    _, faces, labels = run.samples()
    if limit:
        faces = faces[:limit]
        labels = {k: v[:limit] for k, v in labels.items()}
    outs = bundle_outputs(bundle_dir, faces)
    result: dict[str, Any] = {"n": int(len(faces)), "bundle": str(bundle_dir), "runtime": get_runtime("auto").name}
    for spec in manifest.outputs:
        truth = labels.get(spec.name)
        if truth is None:
            continue
        y = outs[spec.name].reshape(len(faces), -1)
        if spec.kind == "sigmoid":
            th = [spec.threshold(lab) for lab in spec.labels]
            report = multilabel_report(truth.reshape(len(faces), -1), y, list(spec.labels), th)
            result[spec.name] = {
                "mean_accuracy": report["mean_accuracy"], "mean_balanced_accuracy": report["mean_balanced_accuracy"],
                "exact_match": report["exact_match"],
                "per_label": {n: {k: m[k] for k in ("accuracy", "balanced_accuracy", "f1", "auc")}
                              for n, m in report["per_label"].items()}}
        elif spec.kind == "softmax":
            m = multiclass_metrics(truth, y, list(spec.labels))
            result[spec.name] = {k: m[k] for k in ("accuracy", "balanced_accuracy", "macro_f1")}
    return result


def headline_markdown(float_metrics: dict[str, Any], int8: dict[str, Any], head: str = "attributes",
                      floors: Optional[dict[str, float]] = None) -> str:
    """Return a Markdown table: per headline attribute float vs int8 accuracy (and floor), plus the mean."""
    per_f = float_metrics.get("per_label", {})
    per_q = int8[head]["per_label"]
    floors = floors or {}
    lines = ["| attribute | float accuracy | int8 accuracy | int8 balanced acc. | int8 F1 | int8 AUC | floor |",
             "|---|---|---|---|---|---|---|"]
    for name in [n for n in HEADLINE if n in per_q]:
        q = per_q[name]
        f = per_f.get(name, {}).get("accuracy")
        floor = floors.get(name)
        met = "" if floor is None else (" (met)" if q["accuracy"] >= floor else " (**NOT met**)")
        lines.append(f"| {name} | {'-' if f is None else f'{f:.4f}'} | {q['accuracy']:.4f} | "
                     f"{q['balanced_accuracy']:.4f} | {q['f1']:.4f} | {q['auc']:.4f} | "
                     f"{'-' if floor is None else f'{floor:.2f}'}{met} |")
    mean_f = (float_metrics.get("float") or {}).get("mean_accuracy")
    mean_floor = floors.get("mean")
    mean_q = int8[head]["mean_accuracy"]
    met = "" if mean_floor is None else (" (met)" if mean_q >= mean_floor else " (**NOT met**)")
    lines.append(f"| mean of all {len(per_q)} | {'-' if mean_f is None else f'{mean_f:.4f}'} | {mean_q:.4f} | "
                 f"{int8[head]['mean_balanced_accuracy']:.4f} | - | - | "
                 f"{'-' if mean_floor is None else f'{mean_floor:.2f}'}{met} |")
    return "\n".join(lines)
