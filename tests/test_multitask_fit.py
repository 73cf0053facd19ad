"""A tiny multitask fit on the shared UTKFace + FER2013: beats the mean/majority baselines, writes its files."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from edge.bundle import parse_manifest
from edge.views import DEFAULT_MAX_CALLS, PRESETS
from trainer.multitask.views_choice import choose_views
from tests.conftest import shared_path
from trainer.cli import main as face_train
from trainer.run import read_run

EVAL_FILES = ("metrics.json", "fairness.md", "classification_report.txt", "confusion_emotion.png",
              "confusion_ethnicity.png", "confusion_gender.png", "confusion_age_groups.png", "age_scatter.png",
              "gallery.png", "gradcam_age.png", "gradcam_gender.png", "gradcam_emotion.png",
              "gradcam_ethnicity.png", "history.png")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    data = shared_path("data")
    out = tmp_path_factory.mktemp("mt") / "run"
    cache = out.parent / "cache"
    code = face_train(["fit", "multitask", "--data", str(data), "--out", str(out), "--limit", "300",
                       "--stage1-epochs", "2", "--stage2-epochs", "1", "--unfreeze", "3", "--batch", "32",
                       "--lr1", "3e-3", "--lr2", "5e-4", "--utk-variants", "2", "--fer-variants", "1",
                       "--utk-repeat", "3", "--train-samples", "50", "--cache-dir", str(cache), "--quiet"])
    assert code == 0
    return read_run(out)


@pytest.mark.slow
def test_tiny_fit_beats_the_mean_and_majority_baselines(tiny_run):
    held = tiny_run.info["metrics"]["heldout"]
    assert held["n_utkface"] > 20 and held["n_fer2013"] > 10
    assert held["age_mae"] < held["age_mean_baseline_mae"]
    assert held["gender_accuracy"] > held["gender_majority_baseline"]


@pytest.mark.slow
def test_run_folder_is_a_valid_multitask_manifest_with_masked_labels(tiny_run):
    manifest = parse_manifest(tiny_run.info)
    assert manifest.task == "multitask"
    assert [o.name for o in manifest.outputs] == ["age", "gender", "emotion", "ethnicity"]
    age = manifest.output("age")
    assert age.kind == "regression" and age.unit == "years"
    assert [g["label"] for g in age.groups] == ["0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59",
                                                "60-69", "70+"]
    assert manifest.output("gender").labels == ("female",)
    training = tiny_run.info["training"]  # the default --views auto: chosen on validation, written to the manifest
    assert set(training["views_comparison_val"]) == set(PRESETS) and manifest.views == PRESETS[training["views"]]
    assert training["views"] == choose_views(training["views_comparison_val"], DEFAULT_MAX_CALLS)
    assert len(manifest.views) <= DEFAULT_MAX_CALLS
    _, faces, labels = tiny_run.samples()
    assert faces.dtype == np.uint8 and faces.shape[1:] == (96, 96, 3)
    utk = labels["gender"].reshape(-1) >= 0
    assert np.all(np.isnan(labels["age"][~utk])) and np.all(labels["emotion"][utk] == -1)
    assert np.all(labels["ethnicity"][~utk] == -1) and np.all(labels["emotion"][~utk] >= 0)


@pytest.mark.slow
def test_eval_files_exist(tiny_run):
    for name in EVAL_FILES:
        assert (tiny_run.path / "eval" / name).stat().st_size > 0, name
    fairness = (tiny_run.path / "eval" / "fairness.md").read_text()
    assert "By gender" in fairness and "By ethnicity" in fairness and "gap" in fairness


@pytest.mark.slow
def test_predict_api_and_csv_command(tiny_run, tmp_path):
    from trainer.predict.multitask import predict

    images = sorted(shared_path("data", "utkface", "UTKFace").iterdir())[:3]
    folder = tmp_path / "imgs"
    folder.mkdir()
    for img in images:
        (folder / img.name).write_bytes(img.read_bytes())
    out_csv = tmp_path / "out.csv"
    # UTKFace chips are tight crops Haar often misses: --no-face whole takes each as the face.
    assert face_train(["predict", str(tiny_run.path), str(folder), "--csv", str(out_csv), "--largest",
                       "--no-face", "whole"]) == 0
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 3 and {"age", "age_group", "gender", "emotion", "ethnicity"} <= set(rows[0])
    for row in rows:
        assert 0.5 <= float(row["gender_confidence"]) <= 1.0 and row["gender"] in ("female", "male")
        assert abs(sum(float(row[f"emotion_{e}_p"]) for e in tiny_run.output("emotion")["labels"]) - 1) < 1e-3
    result = predict(images[0], model=tiny_run.path)
    if result["face_found"]:
        assert result["gender"]["label"] in ("female", "male") and result["age"]["group"]


@pytest.mark.slow
def test_backbone_from_copies_a_runs_trunk_at_another_size_and_refuses_another_width(tiny_run):
    from trainer import nets
    from trainer.errors import DataError
    from trainer.multitask.model import build_models
    from trainer.tasks.multitask import copy_backbone

    source = nets.backbone_of(tiny_run.load_model()).get_weights()
    fresh = build_models(size=112, weights=None).full
    assert not all(np.array_equal(a, b) for a, b in zip(source, nets.backbone_of(fresh).get_weights()))
    assert copy_backbone(tiny_run.path, fresh) == tiny_run.info["data"]["licence"]
    assert all(np.array_equal(a, b) for a, b in zip(source, nets.backbone_of(fresh).get_weights()))
    with pytest.raises(DataError, match="--backbone-from"):
        copy_backbone(tiny_run.path, build_models(size=96, alpha=0.5, weights=None).full)


def _first_conv(model) -> np.ndarray:
    from trainer import nets

    return np.asarray(nets.backbone_of(model).get_layer("Conv1").get_weights()[0])


@pytest.mark.slow
def test_trunk_all_fine_tunes_the_lowest_layers_that_trunk_top_keeps(tiny_run, tmp_path):
    from trainer import nets
    from trainer.multitask.model import build_models

    imagenet = _first_conv(build_models(size=96, weights=str(nets.IMAGENET_MOBILENET_V2)).full)
    assert np.array_equal(_first_conv(tiny_run.load_model()), imagenet)  # --trunk top: lower layers frozen
    out = tmp_path / "all"
    code = face_train(["fit", "multitask", "--data", str(shared_path("data")), "--out", str(out), "--limit", "120",
                       "--trunk", "all", "--stage1-epochs", "1", "--stage2-epochs", "1", "--batch", "32",
                       "--train-samples", "20", "--cache-dir", str(tmp_path / "cache"), "--no-eval", "--quiet"])
    assert code == 0
    run = read_run(out)
    assert run.info["training"]["trunk"] == "all" and "cut" not in run.info["training"]
    assert not np.allclose(_first_conv(run.load_model()), imagenet)


@pytest.mark.slow
def test_init_from_copies_every_weight_of_a_multitask_run_and_refuses_other_heads(tiny_run):
    from trainer.errors import DataError
    from trainer.multitask.model import build_models
    from trainer.tasks.multitask import copy_multitask

    source = tiny_run.load_model().get_weights()
    fresh = build_models(size=96, weights=None).full
    assert copy_multitask(tiny_run.path, fresh) == tiny_run.info["data"]["licence"]
    assert all(np.array_equal(a, b) for a, b in zip(source, fresh.get_weights()))
    with pytest.raises(DataError, match="--init-from"):
        copy_multitask(tiny_run.path, build_models(size=96, weights=None, hidden=64).full)


@pytest.mark.slow
def test_init_from_a_run_with_folded_batchnorm_keeps_it_frozen(tiny_run, tmp_path):
    """A run started from a bundle holds folded BatchNorm (identity statistics, folded biases): continuing it with
    --init-from must not let batch statistics replace them (its outputs were lost in the first epoch)."""
    import shutil

    import keras
    import yaml

    source = tmp_path / "folded"
    shutil.copytree(tiny_run.path, source, ignore=shutil.ignore_patterns("checkpoints"))
    info = yaml.safe_load((source / "run.yaml").read_text())
    info["training"]["fit"]["keep_bn_frozen"] = True
    (source / "run.yaml").write_text(yaml.safe_dump(info, sort_keys=False))

    def batchnorm(model) -> list[np.ndarray]:
        return [w for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)
                for w in layer.get_weights()]

    out = tmp_path / "continued"
    code = face_train(["fit", "multitask", "--data", str(shared_path("data")), "--out", str(out), "--limit", "120",
                       "--init-from", str(source), "--trunk", "all", "--stage1-epochs", "0", "--stage2-epochs", "1",
                       "--unfreeze", "100", "--batch", "32", "--cache-dir", str(tmp_path / "cache"), "--no-eval",
                       "--quiet"])
    assert code == 0
    before, after = batchnorm(read_run(source).load_model()), batchnorm(read_run(out).load_model())
    assert len(before) == len(after) > 0
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    assert "BatchNorm folded and frozen" in read_run(out).info["training"]["weights"]
