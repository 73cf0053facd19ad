"""Manifest ``views``: the device averages each output over zoomed, shifted and mirrored copies of the crop."""
from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from converters.bundle_writer import write_manifest
from edge.bundle import BundleError, load_bundle, manifest_to_dict, parse_manifest
from edge.models import FaceModel
from edge.runtime import get_runtime
from edge.views import PLAIN, PRESETS, View, apply_view
from trainer.bundle_eval import face_model_outputs

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "multitask"


def _bundle(tmp_path: Path, views: tuple[View, ...], name: str) -> FaceModel:
    folder = tmp_path / name
    shutil.copytree(SHIPPED, folder)
    (folder / "manifest.sig").unlink(missing_ok=True)
    write_manifest(folder, replace(load_bundle(folder).manifest, views=views))
    return FaceModel(load_bundle(folder), get_runtime("ai_edge_litert"))


def _face() -> np.ndarray:
    """A left-right asymmetric BGR crop: its mirror image and its shifted crops give other outputs."""
    face = np.ascontiguousarray(np.load(SHIPPED / "golden.npz")["faces"][0][:, :, ::-1])
    third = face.shape[1] // 3
    face[:, :third] = cv2.GaussianBlur(face[:, :third], (0, 0), 4)
    return face


def test_apply_view_zooms_shifts_and_mirrors_at_the_crop_size():
    crop = np.arange(100 * 100, dtype=np.float32).reshape(100, 100) % 251
    crop = np.repeat(crop[:, :, None], 3, axis=2).astype(np.uint8)
    np.testing.assert_array_equal(apply_view(crop, View()), crop)
    np.testing.assert_array_equal(apply_view(crop, View(mirror=True)), crop[:, ::-1])
    zoomed = apply_view(crop, View(zoom=0.5))
    assert zoomed.shape == crop.shape
    np.testing.assert_array_equal(zoomed, cv2.resize(crop[25:75, 25:75], (100, 100), interpolation=cv2.INTER_LINEAR))
    right = apply_view(crop, View(zoom=0.5, dx=0.1))
    np.testing.assert_array_equal(right, cv2.resize(crop[25:75, 35:85], (100, 100), interpolation=cv2.INTER_LINEAR))
    far = apply_view(crop, View(zoom=0.9, dx=0.25))  # kept inside the crop
    np.testing.assert_array_equal(far, cv2.resize(crop[5:95, 10:100], (100, 100), interpolation=cv2.INTER_LINEAR))
    assert apply_view(crop[:, :, 0], View(zoom=0.8, mirror=True)).shape == (100, 100)


def test_outputs_are_the_mean_over_the_manifests_views(tmp_path):
    plain = _bundle(tmp_path, PLAIN, "plain")
    crops = _bundle(tmp_path, PRESETS["crops"], "crops")
    face = _face()
    per_view = [plain.raw_outputs(plain.preprocess(apply_view(face, v))) for v in PRESETS["crops"]]
    assert any(not np.allclose(a, b) for a, b in zip(per_view[0], per_view[1]))  # the mirror differs
    assert any(not np.allclose(a, b) for a, b in zip(per_view[0], per_view[4]))  # a shifted crop differs
    for got, ys in zip(crops.outputs(face), zip(*per_view)):
        np.testing.assert_allclose(got, np.mean(ys, axis=0), atol=1e-6)
    for got, y in zip(plain.outputs(face), per_view[0]):
        np.testing.assert_array_equal(got, y)
    age = crops.predict(face).heads["age"].value
    assert age == pytest.approx(float(np.mean([ys[0][0] for ys in per_view])), abs=1e-5)


def test_evaluation_outputs_are_the_devices(tmp_path):
    mirror = _bundle(tmp_path, PRESETS["mirror"], "mirror")
    faces_rgb = np.stack([_face()[:, :, ::-1], _face()[::-1, :, ::-1]])
    got = face_model_outputs(mirror, faces_rgb)
    want = mirror.outputs(np.ascontiguousarray(faces_rgb[1][:, :, ::-1]))
    for spec, y in zip(mirror.manifest.outputs, want):
        np.testing.assert_allclose(got[spec.name][1], y, atol=1e-6)


def test_views_survive_the_manifest_round_trip_and_default_to_one_plain_call(tmp_path):
    manifest = _bundle(tmp_path, PRESETS["crops"], "crops").manifest
    data = manifest_to_dict(manifest)
    assert len(data["views"]) == 12 and "views" not in manifest.extra
    assert parse_manifest(yaml.safe_load(yaml.safe_dump(data))).views == PRESETS["crops"]
    del data["views"]
    assert parse_manifest(data).views == PLAIN
    assert "views" not in manifest_to_dict(parse_manifest(data))


@pytest.mark.parametrize("views, message", [
    ("mirror", "views must be a non-empty list"),
    ([], "views must be a non-empty list"),
    ([{"zoom": 0.9, "flip": True}], r"views\[0\] must be a mapping of zoom, dx, dy, mirror"),
    ([{}, {"mirror": "yes"}], r"views\[1\].mirror must be true or false"),
    ([{"zoom": "big"}], "must be numbers"),
    ([{"zoom": 0.2}], r"zoom must be in \[0.5, 1\]"),
    ([{"dx": 0.4}], r"dx, dy in \[-0.25, 0.25\]"),
])
def test_a_bad_views_list_is_refused_naming_the_entry(tmp_path, views, message):
    data = manifest_to_dict(_bundle(tmp_path, PLAIN, "plain").manifest)
    data["views"] = views
    with pytest.raises(BundleError, match=message):
        parse_manifest(data)


def test_views_are_chosen_by_mean_rank_over_the_heads_ties_to_fewer_calls():
    from trainer.multitask.views_choice import choose_views, views_table_md

    row = lambda mae, g, e, r, calls: {"age_mae": mae, "gender_accuracy": g, "emotion_accuracy": e,  # noqa: E731
                                       "ethnicity_accuracy": r, "calls": calls}
    table = {"plain": row(6.0, 0.92, 0.62, 0.79, 1), "mirror": row(5.9, 0.93, 0.63, 0.78, 2),
             "crops": row(5.8, 0.91, 0.64, 0.80, 12)}
    assert choose_views(table) == "crops"      # ranks: plain 6, mirror 4, crops 3 (age, emotion, ethnicity best)
    table["crops"]["ethnicity_accuracy"] = 0.77
    assert choose_views(table) == "mirror"     # ranks: plain 5, mirror 3, crops 4
    same = {n: row(6.0, 0.9, 0.6, 0.8, c) for n, c in (("plain", 1), ("mirror", 2), ("crops", 12))}
    assert choose_views(same) == "plain"       # nothing gained: the fewest calls
    table["crops"]["ethnicity_accuracy"] = 0.80
    assert choose_views(table, max_calls=2) == "mirror"   # crops ranks best but makes 12 calls
    assert choose_views(table, max_calls=1) == "plain"
    with pytest.raises(ValueError, match="at most 0 model calls"):
        choose_views(table, max_calls=0)
    assert "| **mirror** (chosen) | 2 | 5.90 | 0.930 |" in views_table_md(table, "mirror")


CARD = """# multitask: model card

- **task**: multitask
- **version**: 0.3.0

## Outputs

| output | kind | labels | thresholds | not shown (unreliable) |
|---|---|---|---|---|
| gender | sigmoid | female | 0.58 | - |

## Rebuild

```bash
face-train fit multitask --out runs/x
face-convert runs/x --quant int8 --out models/multitask
```
"""


def test_the_views_section_goes_after_the_facts_and_replaces_an_earlier_one():
    from trainer.multitask.bundle_views import with_facts, with_rebuild_line, with_views_section

    card = with_facts(with_rebuild_line(CARD, "face-train views models/multitask --data D"), "0.3.1", 0.42)
    card = with_views_section(card, "## Test-time views (version 0.3.1)\n\nfirst\n")
    assert card.index("- **version**: 0.3.1") < card.index("## Test-time views") < card.index("## Outputs")
    assert "| gender | sigmoid | female | 0.42 | - |" in card
    assert card.count("face-train views models/multitask --data D") == 1
    assert card.index("--out models/multitask\nface-train views") > 0 and card.rstrip().endswith("```")
    again = with_views_section(with_rebuild_line(card, "face-train views models/multitask --data E"),
                               "## Test-time views (version 0.3.2)\n\nsecond\n")
    assert "first" not in again and again.count("## Test-time views") == 1 and "second" in again
    assert "--data D" not in again and again.count("face-train views") == 1


def test_views_are_refused_for_a_signed_or_non_multitask_bundle(tmp_path):
    from tests.helpers.tiny_bundles import attribute_heads, build_bundle
    from trainer.errors import DataError
    from trainer.multitask.bundle_views import tune_bundle_views

    attributes = build_bundle(tmp_path / "attributes", "attributes", "attributes", attribute_heads())
    with pytest.raises(DataError, match="views are chosen for multitask bundles"):
        tune_bundle_views(attributes, tmp_path)
    signed = tmp_path / "signed"
    shutil.copytree(SHIPPED, signed)
    (signed / "manifest.sig").write_bytes(b"x")
    with pytest.raises(DataError, match="is signed"):
        tune_bundle_views(signed, tmp_path)
    with pytest.raises(DataError, match="UTKFace not found"):
        tune_bundle_views(SHIPPED, tmp_path)


def test_models_views_false_runs_one_call_per_face(tmp_path):
    from edge.config import settings_from_dict
    from edge.pipeline import load_models

    _bundle(tmp_path, PRESETS["crops"], "multitask")
    on, errors = load_models(settings_from_dict({"models": {"dir": str(tmp_path), "bundles": ["multitask"]}}))
    off, _ = load_models(settings_from_dict({"models": {"dir": str(tmp_path), "bundles": ["multitask"],
                                                        "views": False}}))
    assert not errors and on["multitask"].manifest.views == PRESETS["crops"] and off["multitask"].manifest.views == PLAIN
    face = _face()
    single = off["multitask"].raw_outputs(off["multitask"].preprocess(face))
    for got, y in zip(off["multitask"].outputs(face), single):
        np.testing.assert_array_equal(got, y)


def test_held_out_breakdown_has_decades_gender_by_ethnicity_and_emotion_recall():
    from trainer.multitask.report import breakdown_md, head_metrics

    nan = float("nan")
    labels = {"age": np.array([5.0, 25.0, 27.0, 85.0, nan, nan]),
              "gender": np.array([0, 1, 1, 0, -1, -1]),
              "ethnicity": np.array([0, 0, 2, 2, -1, -1]),
              "emotion": np.array([-1, -1, -1, -1, 3, 4])}
    out = {"age": np.array([[7.0], [25.0], [30.0], [70.0], [30.0], [30.0]]),
           "gender": np.array([[0.1], [0.9], [0.2], [0.3], [0.5], [0.5]]),
           "ethnicity": np.eye(5)[[0, 0, 2, 2, 0, 0]],
           "emotion": np.eye(7)[[0, 0, 0, 0, 3, 3]]}
    text = breakdown_md(head_metrics(out, labels, 0.5), out, labels, 0.5)
    assert "| 0-9 | 1 | 2.00 |" in text and "| 20-29 | 2 | 1.50 |" in text and "| 80+ | 1 | 15.00 |" in text
    assert "| white | 2 | 1.000 |" in text and "| asian | 2 | 0.500 |" in text
    assert "| happy | 1 | 1.000 |" in text and "| sad | 1 | 0.000 |" in text
    assert "| angry | 0 | - |" in text
