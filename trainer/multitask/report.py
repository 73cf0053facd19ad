"""Held-out evaluation of the multi-task model: metrics per head, fairness, figures, size and latency.

Works on any source of outputs ({head: N x K float array}): the Keras model (float) or the
int8 bundle run through edge.models.FaceModel (the device code), so both are scored the same way.
"""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import keras
import numpy as np

from edge.bundle import load_bundle
from edge.views import PLAIN, View, apply_view
from trainer.data.fer import EMOTIONS
from trainer.data.utkface import ETHNICITIES, GENDERS
from trainer.evaluate import regression
from trainer.evaluate.classification import binary_metrics, multiclass_metrics
from trainer.evaluate.fairness import Metric, fairness_table, write_fairness
from trainer.evaluate.gallery import prediction_gallery
from trainer.evaluate.gradcam import gradcam_figure
from trainer.evaluate.plots import plot_confusion

from .spec import AGE_GROUPS, HEADS

Outputs = Mapping[str, np.ndarray]


def keras_outputs(model: keras.Model, faces: np.ndarray, batch: int = 256,
                  views: Sequence[View] = PLAIN) -> dict[str, np.ndarray]:
    """Return {head: N x K} outputs of the Keras model on uint8 RGB crops, averaged over ``views``
    (edge.views, as edge.models.FaceModel averages them on the device)."""
    total: dict[str, np.ndarray] = {}
    for view in views:
        x = faces if view == View() else np.stack([apply_view(f, view) for f in faces])
        out = model.predict(x.astype(np.float32), batch_size=batch, verbose=0)
        for h in HEADS:
            total[h] = total.get(h, 0.0) + np.asarray(out[h]).reshape(len(faces), -1)
    return {h: total[h] / len(views) for h in HEADS}


def head_metrics(out: Outputs, labels: Mapping[str, np.ndarray], gender_threshold: float = 0.5,
                 age_baseline: Optional[float] = None) -> dict[str, Any]:
    """Return {"summary": flat floor figures, "age": ..., "age_groups": ..., "gender": ..., "emotion": ..., "ethnicity": ...}."""
    age = regression.regression_metrics(labels["age"], out["age"][:, 0], baseline=age_baseline)
    groups = regression.group_metrics(labels["age"], out["age"][:, 0], AGE_GROUPS)
    gender = binary_metrics(np.asarray(labels["gender"]).reshape(-1), out["gender"][:, 0], gender_threshold)
    emotion = multiclass_metrics(labels["emotion"], out["emotion"], EMOTIONS)
    ethnicity = multiclass_metrics(labels["ethnicity"], out["ethnicity"], ETHNICITIES)
    eth_known = labels["ethnicity"][labels["ethnicity"] >= 0]
    emo_known = labels["emotion"][labels["emotion"] >= 0]
    summary = {
        "age_mae": age.get("mae"), "age_mean_baseline_mae": age.get("baseline_mae"),
        "age_group_accuracy": groups.get("accuracy"),
        "gender_accuracy": gender.get("accuracy"), "gender_majority_baseline": gender.get("majority_baseline"),
        "emotion_accuracy": emotion.get("accuracy"),
        "emotion_majority_baseline": float(np.bincount(emo_known).max() / len(emo_known)) if len(emo_known) else None,
        "ethnicity_accuracy": ethnicity.get("accuracy"),
        "ethnicity_majority_baseline": float(np.bincount(eth_known).max() / len(eth_known)) if len(eth_known) else None,
        "n_utkface": age.get("n", 0), "n_fer2013": emotion.get("n", 0),
    }
    return {"summary": summary, "age": age, "age_groups": groups, "gender": gender, "emotion": emotion,
            "ethnicity": ethnicity}


AGE_DECADES = tuple((lo, lo + 10) for lo in range(0, 80, 10)) + ((80, 200),)


def breakdown_md(scores: Mapping[str, Any], out: Outputs, labels: Mapping[str, np.ndarray],
                 gender_threshold: float) -> str:
    """Return Markdown of a model's held-out breakdown: age MAE per decade, gender accuracy per ethnicity,
    emotion recall per class and the emotion confusion matrix (``scores``: :func:`head_metrics`)."""
    age_t, age_p = np.asarray(labels["age"], float), out["age"][:, 0]
    known = ~np.isnan(age_t)
    rows = ["| true age | faces | age MAE |", "|---|---:|---:|"]
    for lo, hi in AGE_DECADES:
        sel = known & (np.nan_to_num(age_t) >= lo) & (np.nan_to_num(age_t) < hi)
        if sel.any():
            label = f"{lo}+" if hi > 150 else f"{lo}-{hi - 1}"
            rows.append(f"| {label} | {int(sel.sum())} | {float(np.mean(np.abs(age_t[sel] - age_p[sel]))):.2f} |")
    g_t = np.asarray(labels["gender"]).reshape(-1)
    g_p = (out["gender"][:, 0] >= gender_threshold).astype(int)
    e_t = np.asarray(labels["ethnicity"])
    rows += ["", "| ethnicity | faces | gender accuracy |", "|---|---:|---:|"]
    for k, name in enumerate(ETHNICITIES):
        sel = (g_t >= 0) & (e_t == k)
        if sel.any():
            rows.append(f"| {name} | {int(sel.sum())} | {float(np.mean(g_t[sel] == g_p[sel])):.3f} |")
    cm = np.asarray(scores["emotion"]["confusion"])
    rows += ["", "| true emotion | faces | recall | " + " | ".join(EMOTIONS) + " |",
             "|---|---:|---:|" + "---:|" * len(EMOTIONS)]
    for i, name in enumerate(EMOTIONS):
        n = int(cm[i].sum())
        recall = f"{cm[i, i] / n:.3f}" if n else "-"
        rows.append(f"| {name} | {n} | {recall} | " + " | ".join(str(int(v)) for v in cm[i]) + " |")
    return "\n".join(rows)


FAIRNESS_METRICS_NAMES = ("age_mae", "age_group_accuracy", "gender_accuracy", "ethnicity_accuracy")


def fairness(out: Outputs, labels: Mapping[str, np.ndarray], gender_threshold: float = 0.5) -> tuple[dict, list[Metric]]:
    """Return ({"gender": table, "ethnicity": table}, metrics) over the held-out UTKFace rows.

    FER2013 has no gender or ethnicity labels, so emotion accuracy cannot be split by group.
    """
    age_t, age_p = labels["age"], out["age"][:, 0]
    g_t = np.asarray(labels["gender"]).reshape(-1)
    g_p = (out["gender"][:, 0] >= gender_threshold).astype(int)
    e_t, e_p = labels["ethnicity"], out["ethnicity"].argmax(1)
    gt_group = regression.group_index(np.nan_to_num(age_t), AGE_GROUPS)
    gp_group = regression.group_index(age_p, AGE_GROUPS)
    metrics = [Metric("age_mae", lambda i: float(np.mean(np.abs(age_t[i] - age_p[i]))), "min"),
               Metric("age_group_accuracy", lambda i: float(np.mean(gt_group[i] == gp_group[i]))),
               Metric("gender_accuracy", lambda i: float(np.mean(g_t[i] == g_p[i]))),
               Metric("ethnicity_accuracy", lambda i: float(np.mean(e_t[i] == e_p[i])))]
    utk = np.flatnonzero(g_t >= 0)
    tables = {"gender": fairness_table({g: utk[g_t[utk] == k] for k, g in enumerate(GENDERS)}, metrics),
              "ethnicity": fairness_table({e: utk[e_t[utk] == k] for k, e in enumerate(ETHNICITIES)}, metrics)}
    return tables, metrics


def write_figures(folder: Path, out: Outputs, labels: Mapping[str, np.ndarray], metrics: Mapping[str, Any],
                  tag: str) -> None:
    """Write confusion-matrix PNGs, the age scatter and the text classification reports of one model."""
    plot_confusion(np.asarray(metrics["emotion"]["confusion"]), EMOTIONS, folder / f"confusion_emotion{tag}.png",
                   f"emotion ({tag.strip('_') or 'float'})")
    plot_confusion(np.asarray(metrics["ethnicity"]["confusion"]), ETHNICITIES,
                   folder / f"confusion_ethnicity{tag}.png", f"ethnicity ({tag.strip('_') or 'float'})")
    plot_confusion(np.asarray(metrics["gender"]["confusion"]), ["male", "female"],
                   folder / f"confusion_gender{tag}.png", f"gender ({tag.strip('_') or 'float'})")
    plot_confusion(np.asarray(metrics["age_groups"]["confusion"]), metrics["age_groups"]["labels"],
                   folder / f"confusion_age_groups{tag}.png", f"age group ({tag.strip('_') or 'float'})")
    regression.plot_age_scatter(labels["age"], out["age"][:, 0], folder / f"age_scatter{tag}.png",
                                f"age ({tag.strip('_') or 'float'})")
    from sklearn.metrics import classification_report
    parts = []
    for head, names in (("emotion", EMOTIONS), ("ethnicity", ETHNICITIES)):
        keep = labels[head] >= 0
        parts.append(f"== {head}\n" + classification_report(labels[head][keep], out[head][keep].argmax(1),
                                                            labels=list(range(len(names))), target_names=list(names),
                                                            digits=3, zero_division=0))
    g = np.asarray(labels["gender"]).reshape(-1)
    keep = g >= 0
    th = metrics["gender"].get("threshold", 0.5)
    parts.append(f"== gender (p(female) >= {th:.2f} -> female)\n" + classification_report(
        g[keep], (out["gender"][keep, 0] >= th).astype(int), labels=[0, 1], target_names=["male", "female"],
        digits=3, zero_division=0))
    parts.append("== age groups (from the regressed age)\n"
                 + regression.group_report_text(labels["age"], out["age"][:, 0], AGE_GROUPS))
    (folder / f"classification_report{tag}.txt").write_text("\n".join(parts), encoding="utf-8")


def describe(out: Outputs, i: int, gender_threshold: float = 0.5) -> str:
    """Return a one-line text of the predictions for face ``i``."""
    age = float(out["age"][i, 0])
    sex = "F" if out["gender"][i, 0] >= gender_threshold else "M"
    return (f"{age:.0f}y ({regression.group_label(age, AGE_GROUPS)}) {sex} "
            f"{EMOTIONS[int(out['emotion'][i].argmax())]} {ETHNICITIES[int(out['ethnicity'][i].argmax())]}")


def truth_text(labels: Mapping[str, np.ndarray], i: int) -> str:
    """Return a one-line text of the known labels of face ``i``."""
    g = int(np.asarray(labels["gender"]).reshape(-1)[i])
    if g >= 0:
        return f"{labels['age'][i]:.0f}y {'F' if g == 1 else 'M'} {ETHNICITIES[int(labels['ethnicity'][i])]}"
    return EMOTIONS[int(labels["emotion"][i])]


def gallery_and_gradcam(folder: Path, model: keras.Model, faces: np.ndarray, labels: Mapping[str, np.ndarray],
                        out: Outputs, seed: int = 0, gender_threshold: float = 0.5) -> None:
    """Write a prediction gallery and one Grad-CAM figure per head for a few seeded held-out faces."""
    rng = np.random.default_rng(seed)
    utk = np.flatnonzero(np.asarray(labels["gender"]).reshape(-1) >= 0)
    fer = np.flatnonzero(labels["emotion"] >= 0)
    pick = np.concatenate([rng.choice(utk, min(12, len(utk)), replace=False),
                           rng.choice(fer, min(12, len(fer)), replace=False)])
    prediction_gallery(faces[pick], [truth_text(labels, i) for i in pick],
                       [describe(out, i, gender_threshold) for i in pick], folder / "gallery.png", cols=6)
    # Grad-CAM: age through sigmoid(age_unit) so its logit is the age unit itself.
    age_model = keras.Model(model.input, {"age_unit": keras.activations.sigmoid(model.get_layer("age_unit").output)})
    few_utk, few_fer = pick[:6], pick[len(pick) - 6:]
    gradcam_figure(age_model, faces[few_utk], folder / "gradcam_age.png", "age_unit", 0, "age (older)",
                   [truth_text(labels, i) for i in few_utk])
    gradcam_figure(model, faces[few_utk], folder / "gradcam_gender.png", "gender", 0, "female",
                   [truth_text(labels, i) for i in few_utk])
    for head, names, rows in (("emotion", EMOTIONS, few_fer), ("ethnicity", ETHNICITIES, few_utk)):
        cls = int(np.bincount(out[head][rows].argmax(1)).argmax())  # the class most often predicted here
        gradcam_figure(model, faces[rows], folder / f"gradcam_{head}.png", head, cls, names[cls],
                       [truth_text(labels, i) for i in rows])


def _time_interpreter(path: str | Path, runs: int = 200) -> float:
    from edge.runtime import get_runtime

    interp = get_runtime().interpreter(str(path), 1)
    inp = interp.get_input_details()[0]
    x = np.random.default_rng(0).integers(0, 255, inp["shape"]).astype(inp["dtype"])
    for _ in range(10):
        interp.set_tensor(inp["index"], x)
        interp.invoke()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        times.append((time.perf_counter() - t) * 1000)
    return float(statistics.median(times))


def size_and_latency(model: keras.Model, bundle_dir: Optional[str | Path] = None,
                     float_bundle_dir: Optional[str | Path] = None) -> dict[str, Any]:
    """Return parameter count and, for the bundles given, TFLite size and per-face latency (float32 / int8).

    Latency is the median of 200 single-face invocations on one thread of this machine, times the
    model calls per face (the views its manifest averages over, edge.views). The float32
    model is a face-convert ``--quant float32`` bundle (converting in this process is avoided:
    TensorFlow's converter and the LiteRT interpreter do not always share a process well).
    """
    out: dict[str, Any] = {"parameters": int(model.count_params())}
    for tag, folder in (("float32", float_bundle_dir), ("int8", bundle_dir)):
        if folder is not None and (Path(folder) / "model.tflite").is_file():
            calls = len(load_bundle(folder).manifest.views)
            out[f"{tag}_tflite_bytes"] = (Path(folder) / "model.tflite").stat().st_size
            out[f"{tag}_model_calls_per_face"] = calls
            out[f"{tag}_ms_per_face"] = calls * _time_interpreter(Path(folder) / "model.tflite")
    return out


def write_metrics_json(folder: Path, data: Mapping[str, Any]) -> Path:
    """Write metrics.json (numpy values made plain); return its path."""
    path = folder / "metrics.json"
    path.write_text(json.dumps(data, indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)),
                    encoding="utf-8")
    return path
