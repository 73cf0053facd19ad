"""End to end: `face-train fit attributes` on a few hundred shared CelebA faces, then eval/predict/gradcam/report.

The fit is tiny (64 px, head on cached ImageNet features + one fine-tuning epoch) but real:
it must beat the majority-class baseline on held-out faces.
"""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml

from edge.bundle import parse_manifest

from .conftest import shared_path

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from trainer.cli import main

    data = shared_path("data", "celeba")
    tmp = tmp_path_factory.mktemp("attr")
    rc = main(["fit", "attributes", "--data", str(data), "--out", str(tmp / "run"), "--limit", "500",
               "--size", "64", "--features-stage1", "--stage1-epochs", "4", "--lr1", "3e-3",
               "--stage2-epochs", "1", "--unfreeze", "1", "--batch", "32", "--train-samples", "64",
               "--cache-dir", str(tmp / "cache"), "--quiet"])
    assert rc == 0
    return tmp / "run"


def test_fit_beats_majority_baseline(run_dir):
    info = yaml.safe_load((run_dir / "run.yaml").read_text())
    labels = np.load(run_dir / "samples" / "heldout_labels.npz")["attributes"]
    names = info["outputs"][0]["labels"]
    male = labels[:, names.index("Male")]
    baseline = max(male.mean(), 1 - male.mean())
    assert info["metrics"]["float"]["headline_accuracy"]["Male"] > baseline + 0.05
    aucs = [m["auc"] for m in info["metrics"]["per_label"].values() if m.get("auc") is not None]
    assert np.mean(aucs) > 0.6  # ranking better than chance over all attributes


def test_run_folder_follows_the_contract(run_dir):
    info = yaml.safe_load((run_dir / "run.yaml").read_text())
    manifest = parse_manifest(info)
    out = manifest.output("attributes")
    assert out.kind == "sigmoid" and len(out.labels) == 40 and len(out.thresholds) == 40
    assert set(out.unreliable) <= set(out.labels)
    assert manifest.input.height == 64 and manifest.crop.size == 64 and manifest.input.dtype == "uint8"
    assert info["training"]["task"] == "attributes" and info["training"]["command"].startswith("face-train")
    assert info["data"]["split"] == "official partition file" and info["history"]["stage"][-1] == 2
    train = np.load(run_dir / "samples" / "train_faces.npy")
    held = np.load(run_dir / "samples" / "heldout_faces.npy")
    labels = np.load(run_dir / "samples" / "heldout_labels.npz")["attributes"]
    assert train.dtype == np.uint8 and train.shape[1:] == (64, 64, 3)
    assert held.shape[0] == labels.shape[0] and labels.shape[1] == 40


def test_eval_files_exist_and_parse(run_dir):
    folder = run_dir / "eval"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert set(metrics) == {"data", "thresholded", "threshold_0.5"}
    assert len(metrics["thresholded"]["per_label"]) == 40
    with open(folder / "per_label.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 40 and all(0.0 <= float(r["accuracy"]) <= 1.0 for r in rows)
    assert "== Male (threshold" in (folder / "classification_report.txt").read_text()
    for png in ("attribute_correlation", "training_curves", "confusion_matrices", "balanced_accuracy",
                "prediction_gallery", "gradcam_Male", "gradcam_Young"):
        assert (folder / f"{png}.png").read_bytes()[:4] == b"\x89PNG", png


def test_eval_predict_gradcam_report_commands(run_dir, tmp_path, capsys):
    from trainer.cli import main

    assert main(["eval", str(run_dir), "--limit", "20"]) == 0
    info = yaml.safe_load((run_dir / "run.yaml").read_text())
    assert info["metrics"]["float"]["n"] == 20
    images = sorted(shared_path("data", "celeba", "img_align_celeba").iterdir())[:3]
    out_csv = tmp_path / "out.csv"
    assert main(["predict", str(run_dir), *map(str, images), "--csv", str(out_csv), "--largest",
                 "--no-face", "whole"]) == 0
    with open(out_csv) as fh:
        rows = list(csv.DictReader(fh))
    assert [r["image"] for r in rows] == [str(p) for p in images]
    assert all(0.0 <= float(r["Male_score"]) <= 1.0 and r["Male"] in ("0", "1") for r in rows)
    assert main(["gradcam", str(run_dir), "--label", "Smiling", "--count", "3", "--out", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["report", str(run_dir)]) == 0
    assert "| Male |" in capsys.readouterr().out
    assert main(["gradcam", str(run_dir), "--label", "Smilling"]) == 2
    assert "is not a label of output 'attributes'" in capsys.readouterr().err


def test_bad_inputs_are_one_line_errors(tmp_path, capsys):
    from trainer.cli import main

    data = shared_path("data", "celeba")
    assert main(["fit", "attributes", "--data", str(data), "--out", str(tmp_path / "r"),
                 "--attributes", "Male,Smilling"]) == 2
    assert "no attribute named Smilling" in capsys.readouterr().err
    assert main(["fit", "attributes", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")]) == 2
    assert "no such folder" in capsys.readouterr().err
    tiny = tmp_path / "tiny"
    (tiny / "img_align_celeba").mkdir(parents=True)
    for i, src in enumerate(sorted((data / "img_align_celeba").iterdir())[:3]):
        (tiny / "img_align_celeba" / f"{i + 1:06d}.jpg").write_bytes(src.read_bytes())
    (tiny / "list_attr_celeba.txt").write_text("3\nMale Young\n000001.jpg 1 1\n000002.jpg -1 1\n000003.jpg 1 -1\n")
    assert main(["fit", "attributes", "--data", str(tiny), "--out", str(tmp_path / "r"), "--size", "32",
                 "--cache-dir", str(tmp_path / "c")]) == 2
    assert "split is empty" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "no-run")]) == 2
    assert "no such folder" in capsys.readouterr().err
