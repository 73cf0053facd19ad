"""The multitask part of MODEL_CARD.md (RUN/eval/card.md, which face-convert appends to the card)."""
from __future__ import annotations

from typing import Any, Mapping, Optional

FLOORS = {"age_mae": ("<=", 6.0), "gender_accuracy": (">=", 0.92), "emotion_accuracy": (">=", 0.64),
          "ethnicity_accuracy": (">=", 0.80)}
PUBLISHED = {"age_mae": 4.8, "gender_accuracy": 0.968, "emotion_accuracy": 0.684, "ethnicity_accuracy": 0.837}
ROWS = (("age_mae", "age MAE (years)"), ("age_group_accuracy", "age-group accuracy (9 groups)"),
        ("gender_accuracy", "gender accuracy"), ("emotion_accuracy", "emotion accuracy (7)"),
        ("ethnicity_accuracy", "ethnicity accuracy (5)"))
BASELINES = {"age_mae": "age_mean_baseline_mae", "gender_accuracy": "gender_majority_baseline",
             "emotion_accuracy": "emotion_majority_baseline", "ethnicity_accuracy": "ethnicity_majority_baseline"}


def _v(value: Any, key: str) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if key == "age_mae" else f"{value:.3f}"


def _floor_met(key: str, value: Optional[float]) -> str:
    if key not in FLOORS or value is None:
        return "-"
    op, floor = FLOORS[key]
    ok = value <= floor if op == "<=" else value >= floor
    return f"{op} {floor:g}: {'met' if ok else '**NOT met**'}"


def headline_table(float_summary: Mapping[str, Any], int8_summary: Optional[Mapping[str, Any]]) -> str:
    """Return the Markdown table of held-out figures: float, int8, difference, baseline, floor, published."""
    lines = ["| metric | float | int8 (device code) | int8 - float | baseline | floor (int8) | published multi-task |",
             "|---|---:|---:|---:|---:|---|---:|"]
    for key, title in ROWS:
        f = float_summary.get(key)
        q = (int8_summary or {}).get(key)
        diff = "-" if f is None or q is None else (f"{q - f:+.2f}" if key == "age_mae" else f"{q - f:+.3f}")
        base = float_summary.get(BASELINES.get(key, ""), None)
        lines.append(f"| {title} | {_v(f, key)} | {_v(q, key)} | {diff} | {_v(base, key)} | "
                     f"{_floor_met(key, q if q is not None else f)} | {_v(PUBLISHED.get(key), key)} |")
    return "\n".join(lines)


def render_card(run_info: Mapping[str, Any], metrics: Mapping[str, Any], fairness_md: str,
                comparison_md: str = "") -> str:
    """Return the multitask Markdown section: headline figures, fairness, weighting comparison, size, limits."""
    held, q = metrics.get("heldout") or {}, metrics.get("heldout_int8")
    size = metrics.get("size_latency") or {}
    data = run_info.get("data") or {}
    stats = data.get("crop_stats") or {}
    sizes = data.get("sizes") or {}
    training = run_info.get("training") or {}
    lines = ["## Multi-task figures (held-out split)", "",
             f"Held-out faces: {held.get('n_utkface', 0)} UTKFace (age, gender, ethnicity) and "
             f"{held.get('n_fer2013', 0)} FER2013 test faces (emotion). int8 figures are measured with "
             "`edge.models.FaceModel` on the converted model.tflite, i.e. the device's own code.", "",
             headline_table(held, q), "",
             "Gender is one sigmoid unit, **p(female)** (label `female`); the face is called female when "
             f"p >= the manifest threshold, otherwise male. Age is regressed in years; the device maps it to the "
             "age groups listed in the manifest output `age.groups` (`min <= age < max`).", ""]
    if q is not None:
        lines += ["Plots of the int8 model on the same faces ship in `figures/`: confusion matrices "
                  "(`confusion_emotion_int8.png`, `confusion_ethnicity_int8.png`, `confusion_gender_int8.png`, "
                  "`confusion_age_groups_int8.png`) and predicted vs true age (`age_scatter_int8.png`).", ""]
    lines += ["## Size and speed", "",
             f"- parameters: {size.get('parameters', 0):,}",
             f"- float32 TFLite: {size.get('float32_tflite_bytes', 0) / 1e6:.2f} MB, "
             f"{size.get('float32_ms_per_face', float('nan')):.2f} ms / face",
             f"- int8 TFLite: {size.get('int8_tflite_bytes', 0) / 1e6:.2f} MB, "
             f"{size.get('int8_ms_per_face', float('nan')):.2f} ms / face",
             "- (median of 200 single-face invocations, 1 thread, on the 2-core training machine shared with "
             "other jobs; a Raspberry Pi is slower)"
             + (f", times {size['int8_model_calls_per_face']} model calls: every output is the mean over the "
                "views of the face the manifest lists (`views`: zoomed, shifted, mirrored copies), float and int8 "
                "figures alike" if (size.get("int8_model_calls_per_face") or 1) > 1 else ""),
             "",
             "## Fairness", "",
             "Each metric per gender and per ethnicity group on the held-out UTKFace faces, with the gap to the "
             "best group. FER2013 carries no gender or ethnicity labels, so emotion accuracy cannot be split "
             "by group.", "", fairness_md.strip(), ""]
    if comparison_md.strip():
        lines += ["## Loss weighting: fixed vs learned uncertainty", "", comparison_md.strip(), ""]
    if training.get("views_comparison_val"):
        from .views_choice import views_table_md

        lines += ["## Test-time views (chosen on validation)", "",
                  "Every output is averaged over views of the face (`views` in the manifest, `edge/views.py`): "
                  "`plain` is the face alone, `mirror` adds its mirror image, `crops` adds mirrored 90% crops "
                  "centred and moved 4% left, right, up and down. Float model on the validation split (gender at each "
                  "preset's own tuned threshold); the best mean rank over the four heads is kept, ties going to "
                  "fewer calls.", "", views_table_md(training["views_comparison_val"], str(training.get("views"))), ""]
    lines += ["## How it was trained", "",
              "- data: " + ", ".join(f"{folder} {sizes.get('train', {}).get(folder, '?')} train / "
                                     f"{sizes.get('val', {}).get(folder, '?')} val / "
                                     f"{sizes.get('test', {}).get(folder, '?')} test"
                                     for folder in _utk_folders(sizes)) +
              " (seeded random split of each folder; UTKFace has no identity labels, so one person may appear on "
              "both sides), "
              f"FER2013 {sizes.get('train', {}).get('fer2013', '?')} train / {sizes.get('val', {}).get('fer2013', '?')}"
              f" val (carved from its training part) / {sizes.get('test', {}).get('fer2013', '?')} test (official).",
              f"- crops: the device crop (Haar on the image padded by {data.get('detect_pad', 0.25)}); Haar found "
              + ", ".join(f"{stats.get(folder, {}).get('detected', '?')} of {stats.get(folder, {}).get('total', '?')} "
                          f"{folder}" for folder in _utk_folders(sizes)) +
              f" and {stats.get('fer2013', {}).get('detected', '?')} of {stats.get('fer2013', {}).get('total', '?')} "
              "FER faces; the rest use the whole aligned image (edge.crop.whole_image_box).",
              f"- network: {training.get('backbone')} {training.get('alpha')} at {training.get('size')} px, starting "
              f"from {_start(training)}; {training.get('trained_layers')}; one hidden layer per head.",
              f"- loss: masked per-head losses ({training.get('losses')}), weighting `{training.get('weighting')}`, "
              f"final effective weights {training.get('loss_weights_final')}.",
              "", "## Limits", "",
              "- Research data only (UTKFace, FER2013: non-commercial research use); do not use the model for "
              "decisions about people. Ethnicity and gender are the data sets' annotated categories, not "
              "self-identification.",
              "- FER2013 faces are 48x48 grey; emotion on colour camera faces may do worse.",
              "- The UTKFace split is not identity-disjoint, so age/gender/ethnicity figures may be optimistic.", ""]
    return "\n".join(lines)


def _utk_folders(sizes: Mapping[str, Any]) -> list[str]:
    """Return the UTKFace folders a run's split sizes name (utkface, then utkface_more when it was read)."""
    return [name for name in (sizes.get("train") or {"utkface": 0}) if name.startswith("utkface")]


def _start(training: Mapping[str, Any]) -> str:
    """Return where the trunk's weights came from, in words."""
    weights = str(training.get("weights") or "random init")
    if weights.startswith("backbone of "):
        return f"the trained trunk of the run {weights[len('backbone of '):]} (--backbone-from)"
    if weights.startswith("all weights of the bundle "):
        return f"every weight of the converted bundle {weights[len('all weights of the bundle '):]} (--init-from-bundle)"
    if weights.startswith("all weights of "):
        return f"every weight of the multitask run {weights[len('all weights of '):]} (--init-from)"
    return "ImageNet weights" if "imagenet" in weights.lower() else weights
