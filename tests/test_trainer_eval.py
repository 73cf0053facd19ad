"""Evaluation metrics, threshold tuning, figures, losses and the RUN folder contract."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from trainer.evaluate.classification import (binary_metrics, classification_report_text, label_correlation,
                                             multiclass_metrics, multilabel_report, tune_thresholds)
from trainer.evaluate.plots import plot_binary_confusions, plot_correlation, plot_history
from trainer.evaluate.gallery import prediction_gallery
from trainer.errors import RunError

PNG = b"\x89PNG\r\n\x1a\n"


def test_binary_metrics_by_hand():
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0, -1])
    p = np.array([0.9, 0.8, 0.3, 0.2, 0.1, 0.6, 0.1, 0.0, 0.99])
    m = binary_metrics(y, p, 0.5)
    assert m["n"] == 8  # the -1 row is ignored
    assert m["confusion"] == [[4, 1], [1, 2]]
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["auc"] == pytest.approx(14 / 15)
    assert m["error_negative"] == pytest.approx(1 / 5) and m["error_positive"] == pytest.approx(1 / 3)
    assert m["majority_baseline"] == pytest.approx(5 / 8)


def test_threshold_tuning_finds_the_gap_and_flags_unreliable():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (400, 3))
    p = np.empty((400, 3))
    p[:, 0] = np.where(y[:, 0] == 1, rng.uniform(0.25, 0.35, 400), rng.uniform(0.0, 0.2, 400))  # separable at ~0.22
    p[:, 1] = rng.uniform(0, 1, 400)  # noise: unreliable
    p[:, 2] = np.where(y[:, 2] == 1, 0.9, 0.1)
    th = tune_thresholds(y, p)
    assert 0.2 <= th[0] <= 0.25 and th[2] == 0.5
    # Label "a" gains ~50 points over 0.5, so it keeps its tuned threshold; the noise label does not.
    strict = tune_thresholds(y, p, min_gain=0.2)
    assert 0.2 <= strict[0] <= 0.25 and strict[1] == 0.5
    report = multilabel_report(y, p, ["a", "b", "c"], th)
    assert report["per_label"]["a"]["accuracy"] == 1.0
    assert report["unreliable"] == ["b"]
    assert report["exact_match"] == pytest.approx(np.mean(y[:, 1] == (p[:, 1] >= th[1])))
    assert "== a (threshold" in classification_report_text(y, p, ["a", "b", "c"], th)
    with pytest.raises(ValueError):
        multilabel_report(y, p, ["a", "b"])


def test_multiclass_and_correlation():
    y = np.array([0, 1, 2, 2, 1, -1])
    prob = np.eye(3)[[0, 1, 1, 2, 1, 0]]
    m = multiclass_metrics(y, prob, ["x", "y", "z"])
    assert m["n"] == 5 and m["accuracy"] == pytest.approx(0.8)
    assert m["confusion"][2] == [0, 1, 1] and m["class_error"]["z"] == pytest.approx(0.5)
    corr = label_correlation(np.array([[1, 1, 0], [0, 0, 1], [1, 1, 1], [0, 0, 0]]))
    assert corr[0, 1] == pytest.approx(1.0) and corr.shape == (3, 3)


def test_figures_are_png(tmp_path):
    hist = {"loss": [1.0, 0.8, 0.6], "val_loss": [1.1, 0.9, 0.8], "acc": [0.6, 0.7, 0.8],
            "val_acc": [0.6, 0.65, 0.7], "stage": [1, 1, 2]}
    paths = [plot_history(hist, tmp_path / "curves.png"),
             plot_correlation(np.eye(3), ["a", "b", "c"], tmp_path / "corr.png"),
             plot_binary_confusions({"a": [[3, 1], [0, 2]], "b": [[1, 1], [1, 1]]}, tmp_path / "cm.png"),
             prediction_gallery(np.zeros((3, 32, 32, 3), np.uint8), ["a", "b", "c"], ["a", "c", "c"],
                                tmp_path / "g.png", correct=[True, False, True])]
    for path in paths:
        assert path.read_bytes()[:8] == PNG and path.stat().st_size > 2000


def test_losses_ignore_missing_and_weight_rare():
    tf = pytest.importorskip("tensorflow")
    from trainer.losses.attributes import attribute_loss, masked_binary_accuracy

    y = tf.constant([[1.0, -1.0], [0.0, 1.0]])
    p = tf.constant([[0.9, 0.01], [0.2, 0.7]])
    bce = attribute_loss("bce", np.array([[1, 0], [0, 1]]))
    expected = (-np.log(0.9) + (-np.log(0.8) - np.log(0.7)) / 2) / 2
    assert float(bce(y, p)) == pytest.approx(expected, rel=1e-4)
    assert masked_binary_accuracy(y, p).numpy().tolist() == [1.0, 1.0]
    labels = np.zeros((100, 2), np.int8)
    labels[:5, 0] = 1
    labels[:50, 1] = 1
    weighted = attribute_loss("weighted_bce", labels)
    miss_rare = tf.constant([[1.0, 1.0]]), tf.constant([[0.2, 0.8]])
    miss_common = tf.constant([[1.0, 1.0]]), tf.constant([[0.8, 0.2]])
    assert float(weighted(*miss_rare)) > float(weighted(*miss_common))
    corr = attribute_loss("corr_bce", np.array([[1, 1], [0, 0], [1, 1], [0, 0]]), lam=1.0)
    both_wrong = float(corr(tf.constant([[1.0, 1.0]]), tf.constant([[0.3, 0.3]])))
    assert both_wrong > float(bce(tf.constant([[1.0, 1.0]]), tf.constant([[0.3, 0.3]])))
    with pytest.raises(ValueError, match="--loss 'focal'"):
        attribute_loss("focal", labels)


def test_run_folder_round_trip_and_bad_run(tmp_path):
    keras = pytest.importorskip("keras")
    from trainer import nets
    from trainer.run import input_spec, read_run, update_run, write_run

    bb = nets.build_backbone("custom_cnn", 0.25, 32, None)
    model = keras.Model(bb.input, {"attributes": nets.sigmoid_head(nets.pooled_features(bb), 2, "attributes")})
    info = {"name": "t", "task": "attributes", "input": input_spec(32), "crop": {"size": 32, "margin": 0.25, "shift_y": 0.0},
            "outputs": [{"name": "attributes", "kind": "sigmoid", "tensor": "attributes", "labels": ["a", "b"],
                         "thresholds": [0.4, np.float32(0.6)], "unreliable": []}],
            "metrics": {"float": {"mean_accuracy": np.float64(0.5)}}, "training": {"task": "attributes"}}
    faces = np.zeros((4, 32, 32, 3), np.uint8)
    run = write_run(tmp_path / "run", model, info, faces, faces[:2], {"attributes": np.array([[1, 0], [0, -1]])})
    back = read_run(tmp_path / "run")
    assert back.info["outputs"][0]["thresholds"] == [0.4, pytest.approx(0.6)]
    assert back.crop.size == 32 and back.size == 32 and run.info["created"]
    train, held, labels = back.samples()
    assert train.shape == (4, 32, 32, 3) and labels["attributes"].tolist() == [[1, 0], [0, -1]]
    loaded = back.load_model()
    out = loaded.predict(faces.astype("float32"), verbose=0)
    assert set(out) == {"attributes"} and out["attributes"].shape == (4, 2)
    update_run(back, metrics={"int8": {"mean_accuracy": 0.4}})
    data = yaml.safe_load((tmp_path / "run" / "run.yaml").read_text())
    assert data["metrics"] == {"float": {"mean_accuracy": 0.5}, "int8": {"mean_accuracy": 0.4}}
    bad = dict(info, outputs=[{"name": "attributes", "kind": "sigmoid"}])
    with pytest.raises(RunError, match="a sigmoid output needs labels"):
        write_run(tmp_path / "bad", None, bad, faces, faces, {})
    (tmp_path / "run" / "run.yaml").write_text("name: [unclosed\n")
    with pytest.raises(RunError, match="run.yaml is not valid YAML"):
        read_run(tmp_path / "run")
    with pytest.raises(RunError, match="model.keras is missing"):
        read_run(tmp_path / "bad")
    assert json.dumps(data)  # plain types only
