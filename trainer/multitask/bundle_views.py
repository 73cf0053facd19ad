"""Choose the test-time views of a converted multitask bundle on validation, measured with the device code.

``face-train views BUNDLE --data DIR`` rebuilds the bundle's own split of the data (seed, crop
and split sizes from its manifest, checked), scores every edge.views preset on the validation
faces through edge.models.FaceModel (the int8 model as the Pi runs it), keeps the best mean
rank over the four heads (ties: fewer model calls), tunes the gender threshold for it on the
same validation outputs, then measures the held-out test faces once with that choice. The new
bundle (views, threshold, metrics, a model-card section) is staged and swapped in atomically;
model.tflite and golden.npz are not touched (golden faces replay single calls).
"""
from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edge.bundle import CARD, SIGNATURE, load_bundle
from edge.crop import CropSpec
from edge.models import FaceModel
from edge.runtime import get_runtime
from edge.views import DEFAULT_MAX_CALLS, PLAIN, PRESETS, View, apply_view

from converters.parity import latency_ms

from ..bundle_eval import face_model_outputs
from ..errors import DataError
from . import report
from .views_choice import averaged, choose_views, distinct_views, score_presets, views_table_md

CARD_HEADING = "## Test-time views"


def per_view_outputs(model: FaceModel, faces_rgb: np.ndarray, views: list[View]) -> dict[View, dict[str, np.ndarray]]:
    """Return {view: {output: N x K}} of ``model`` (a one-call FaceModel) on each view of every RGB face."""
    if model.manifest.views != PLAIN:
        raise ValueError("per_view_outputs needs a FaceModel without views")
    return {view: face_model_outputs(model, np.stack([apply_view(f, view) for f in faces_rgb])) for view in views}


def _split_data(manifest: Any, data_dir: Path, cache_dir: Optional[str]) -> Any:
    from ..data.multitask import load_multitask

    data_block = manifest.extra.get("data") or {}
    seed = manifest.extra.get("seed")
    if seed is None or not data_block.get("sizes"):
        raise DataError(f"bundle {manifest.name}: its manifest records no seed or split sizes; its split cannot be rebuilt")
    utk, fer = data_dir / "utkface", data_dir / "fer2013"
    for what, path in (("UTKFace", utk), ("FER2013", fer)):
        if not path.exists():
            raise DataError(f"{what} not found at {path} (give --data with utkface/ and fer2013/)")
    more = data_dir / "utkface_more" if "utkface_more" in (data_block["sizes"].get("train") or {}) else None
    if more is not None and not more.exists():
        raise DataError(f"bundle {manifest.name} was trained on utkface_more too: not found at {more}")
    crop = CropSpec.from_dict(manifest.crop.to_dict())
    data = load_multitask(utk, fer, crop, int(seed), 0, cache_dir, progress=False, utk_more_root=more)
    if data.sizes != data_block["sizes"]:
        raise DataError(f"bundle {manifest.name}: the data at {data_dir} splits as {data.sizes}, the bundle was "
                        f"trained on {data_block['sizes']}: not the same data, so its held-out faces are unknown")
    return data


def tune_bundle_views(bundle_dir: str | Path, data_dir: str | Path, version: Optional[str] = None,
                      cache_dir: Optional[str] = None, threads: int = 2,
                      max_calls: Optional[int] = DEFAULT_MAX_CALLS) -> dict[str, Any]:
    """Choose (among presets of at most ``max_calls`` model calls), measure and write the views of the
    multitask bundle in ``bundle_dir``; return the new metrics."""
    from converters.bundle_writer import publish, staging_folder, write_manifest

    folder = Path(bundle_dir)
    if (folder / SIGNATURE).is_file():
        raise DataError(f"bundle {folder} is signed: changing its manifest would break {SIGNATURE}; "
                        "choose the views on an unsigned copy and sign it again")
    bundle = load_bundle(folder)
    manifest = bundle.manifest
    if manifest.task != "multitask":
        raise DataError(f"bundle {folder}: task {manifest.task}, views are chosen for multitask bundles")
    data = _split_data(manifest, Path(data_dir), cache_dir)
    model = FaceModel(replace(bundle, manifest=replace(manifest, views=PLAIN)), get_runtime("ai_edge_litert"),
                      num_threads=threads)
    val, test = data.splits["val"], data.splits["test"]
    table = score_presets(per_view_outputs(model, val.faces, distinct_views(PRESETS)), val.labels())
    chosen = choose_views(table, max_calls)
    views, threshold = PRESETS[chosen], table[chosen]["gender_threshold"]
    test_out = averaged(per_view_outputs(model, test.faces, list(views)), views)
    baseline = (manifest.extra.get("data") or {}).get("age_train_mean")
    scores = report.head_metrics(test_out, test.labels(), threshold, baseline)
    tables, _ = report.fairness(test_out, test.labels(), threshold)
    metrics = dict(manifest.metrics)
    if chosen == "plain":
        one_call = scores["summary"]
    else:  # the model as converted, one call per face, measured on the same test faces
        plain_out = averaged(per_view_outputs(model, test.faces, list(PLAIN)), PLAIN)
        one_call = report.head_metrics(plain_out, test.labels(), table["plain"]["gender_threshold"],
                                       baseline)["summary"]
    metrics["heldout_int8_one_call"] = one_call
    metrics["heldout_int8"] = scores["summary"]
    metrics["fairness_max_gap_int8"] = {g: t["max_gap"] for g, t in tables.items()}
    metrics["views_val_int8"] = table
    device = FaceModel(replace(bundle, manifest=replace(manifest, views=views)), get_runtime("ai_edge_litert"),
                       num_threads=1)
    ms = latency_ms(device, test.faces)
    metrics["size_latency"] = {**(metrics.get("size_latency") or {}), "int8_model_calls_per_face": len(views),
                               "int8_ms_per_face": ms}
    outputs = tuple(replace(o, thresholds=(threshold,)) if o.name == "gender" else o for o in manifest.outputs)
    new = replace(manifest, views=views, outputs=outputs, metrics=metrics, version=version or manifest.version)
    command = (f"face-train views {folder} --data {data_dir}" + (f" --version {version}" if version else "")
               + (f" --max-calls {max_calls}" if max_calls != DEFAULT_MAX_CALLS else ""))
    with staging_folder(folder) as tmp:
        shutil.copytree(folder, tmp, dirs_exist_ok=True)
        card = tmp / CARD
        text = with_rebuild_line(card.read_text(encoding="utf-8") if card.is_file() else "", command)
        text = with_facts(text, new.version, threshold)
        section = views_section(table, chosen, scores["summary"], new.version, command, ms, max_calls)
        section += ("\n" + f"Held-out breakdown of the int8 model with `{chosen}` (the shipped default; the "
                    "columns of the emotion table are the predicted class):\n\n"
                    + report.breakdown_md(scores, test_out, test.labels(), threshold) + "\n")
        card.write_text(with_views_section(text, section), encoding="utf-8")
        write_manifest(tmp, new)
        load_bundle(tmp)  # every hash and the new manifest check out before the swap
        publish(tmp, folder)
    return {"chosen": chosen, "validation": table, "heldout_int8": scores["summary"]}


def views_section(table: dict[str, dict[str, Any]], chosen: str, held: dict[str, Any], version: str,
                  command: str, ms_per_face: float, max_calls: Optional[int] = None) -> str:
    """Return the model-card section of a views choice: validation table and held-out test figures."""
    return "\n".join([
        f"{CARD_HEADING} (version {version})", "",
        "Every output is the mean over views of the face listed in the manifest (`views`, `edge/views.py`): `plain` "
        "is the face alone, `mirror` adds its mirror image, `crops` adds mirrored 90% crops centred and moved 4% "
        "left, right, up and down. Chosen on the validation split with the int8 model through edge's FaceModel "
        "(gender at each preset's own tuned threshold), best mean rank over the four heads, ties to fewer calls"
        + (f", among the presets of at most {max_calls} model calls per face (the others are measured for "
           "comparison only: the live loop waits for these calls on every new face)" if max_calls else "")
        + f" (`{command}`):", "",
        views_table_md(table, chosen), "",
        f"Held-out test figures of the int8 model with `{chosen}` ({table[chosen]['calls']} model calls per face, "
        f"{ms_per_face:.1f} ms per face on one thread here, gender threshold "
        f"{table[chosen]['gender_threshold']:.2f}): age MAE **{held['age_mae']:.2f}** years, gender "
        f"**{held['gender_accuracy']:.3f}**, emotion **{held['emotion_accuracy']:.3f}**, ethnicity "
        f"**{held['ethnicity_accuracy']:.3f}**, age groups {held['age_group_accuracy']:.3f} "
        f"({held['n_utkface']} UTKFace, {held['n_fer2013']} FER2013 faces). These replace `metrics.heldout_int8` in "
        "the manifest; the one-call figures (the face alone, measured on the same test faces) are "
        "`heldout_int8_one_call`, and the sections below describe "
        "the model as converted, one call per face (float vs int8 included: the views average the outputs of that "
        "same int8 network, and only the bundle, not the float model, is measured here). `models.views: false` in "
        "edge.yaml runs one call per face, at the one-call figures.", ""])


def with_views_section(card: str, section: str) -> str:
    """Return ``card`` with ``section`` after its first block (title and facts), replacing an earlier one."""
    if CARD_HEADING in card:
        start = card.index(CARD_HEADING)
        end = card.find("\n## ", start + 1)
        card = card[:start] + card[end + 1:] if end >= 0 else card[:start]
    at = card.find("\n## ")
    if at < 0:
        return card.rstrip("\n") + "\n\n" + section
    return card[:at + 1] + section + "\n" + card[at + 1:]


def with_rebuild_line(card: str, command: str) -> str:
    """Return ``card`` with ``command`` as the last line of its "## Rebuild" code block (once)."""
    start = card.find("## Rebuild")
    fence = card.find("```bash\n", start) if start >= 0 else -1
    end = card.find("\n```", fence + 1) if fence >= 0 else -1
    if end < 0:
        return card
    block = card[fence:end]
    lines = [line for line in block.split("\n") if not line.startswith("face-train views ")]
    return card[:fence] + "\n".join(lines + [command]) + card[end:]


def with_facts(card: str, version: str, gender_threshold: float) -> str:
    """Return ``card`` with its version line and the gender row of its outputs table set to the new values."""
    lines = card.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("- **version**:"):
            lines[i] = f"- **version**: {version}"
        elif line.startswith("| gender | sigmoid |"):
            cells = line.split("|")
            if len(cells) > 4:
                cells[4] = f" {gender_threshold:.2f} "
                lines[i] = "|".join(cells)
    return "\n".join(lines)
