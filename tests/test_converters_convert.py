"""face-convert on tiny synthetic runs of every task: int8 bundles load in ai_edge_litert via edge
and agree with Keras; multi-output tensors map by name in every mode; parity is reported."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("ai_edge_litert")

from converters.convert import convert_run  # noqa: E402
from converters.quantize import float_ops_in, signature_outputs  # noqa: E402
from converters.run import keras_predict, load_keras_model, load_run  # noqa: E402
from converters.synthetic import make_run  # noqa: E402
from edge.bundle import load_bundle  # noqa: E402
from edge.models import FaceModel  # noqa: E402
from edge.runtime import get_runtime  # noqa: E402


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny trained run per task (32x32 input, two conv layers)."""
    root = tmp_path_factory.mktemp("runs")
    return {task: make_run(root / task, task, n_train=400, n_heldout=120, epochs=4)
            for task in ("attributes", "multitask", "embedding", "distortion")}


def _agrees(kind: str, float_y: np.ndarray, quant_y: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    if kind == "sigmoid":
        return ((float_y >= thresholds) == (quant_y >= thresholds)).all(axis=1)
    if kind == "softmax":
        return np.argmax(float_y, 1) == np.argmax(quant_y, 1)
    if kind == "regression":
        return np.abs(float_y[:, 0] - quant_y[:, 0]) <= 0.05 * (np.ptp(float_y[:, 0]) + 1e-6)
    fu = float_y / np.linalg.norm(float_y, axis=1, keepdims=True)
    return np.sum(fu * quant_y, axis=1) >= 0.95


def _edge_vs_keras(run_dir: Path, bundle_dir: Path) -> dict[str, float]:
    """Return per-head agreement of the bundle run through edge (BGR crops) and the Keras model."""
    run = load_run(run_dir)
    faces = run.heldout_faces()[:60]
    float_outs = keras_predict(load_keras_model(run), faces)
    model = FaceModel(load_bundle(bundle_dir), get_runtime("ai_edge_litert"), num_threads=1)
    agreement = {}
    for spec in model.manifest.outputs:
        quant = []
        for face in faces:
            head = model.predict(np.ascontiguousarray(face[:, :, ::-1])).heads[spec.name]
            if spec.kind in ("sigmoid", "softmax"):
                quant.append([head.scores[label] for label in spec.labels])
            elif spec.kind == "regression":
                quant.append([head.value])
            else:
                quant.append(head.vector)
        thresholds = np.array([spec.threshold(label) for label in spec.labels])
        agreement[spec.name] = float(np.mean(_agrees(spec.kind, float_outs[spec.name], np.array(quant), thresholds)))
    return agreement


@pytest.mark.parametrize("task", ["attributes", "multitask", "embedding", "distortion"])
def test_int8_bundle_of_each_task_loads_in_litert_and_agrees_with_keras(runs, tmp_path, task):
    out = convert_run(runs[task], tmp_path / task, quant="int8", compare_modes=False)
    bundle = load_bundle(out)
    manifest = bundle.manifest
    assert manifest.input.dtype == "uint8"
    assert manifest.extra["quantization"]["input_scale"] == pytest.approx(1.0)
    assert manifest.extra["quantization"]["input_zero_point"] == 0
    assert float_ops_in((out / "model.tflite").read_bytes()) == []
    assert "ai_edge_litert" in manifest.runtimes_checked
    assert sorted(manifest.files) == ["MODEL_CARD.md", "golden.npz", "model.tflite", "parity.json"]
    agreement = _edge_vs_keras(runs[task], out)
    assert min(agreement.values()) >= 0.9, agreement
    parity = json.loads((out / "parity.json").read_text())
    assert set(parity["heads"]) == {o.name for o in manifest.outputs}
    assert parity["floor_met"] and parity["min_agreement"] >= 0.97
    card = (out / "MODEL_CARD.md").read_text()
    assert "## Float vs int8 parity" in card and manifest.name in card


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["float32", "float16", "dynamic"])
def test_multi_output_tensors_map_by_name_in_every_mode(runs, tmp_path, mode):
    out = convert_run(runs["multitask"], tmp_path / mode, quant=mode, compare_modes=False)
    manifest = load_bundle(out).manifest
    signature = signature_outputs((out / "model.tflite").read_bytes())
    assert {o.name: (o.tensor, o.index) for o in manifest.outputs} == {n: (n, i) for n, i in signature.items()}
    assert manifest.input.dtype == "float32"
    assert min(_edge_vs_keras(runs["multitask"], out).values()) >= 0.95


@pytest.mark.slow
def test_int8_with_int8_io_and_per_tensor_weights(runs, tmp_path):
    out = convert_run(runs["multitask"], tmp_path / "i8", quant="int8", io_type="int8", per_channel=False,
                      compare_modes=False)
    manifest = load_bundle(out).manifest
    assert manifest.input.dtype == "int8"
    assert manifest.extra["quantization"]["input_zero_point"] == -128
    signature = signature_outputs((out / "model.tflite").read_bytes())
    assert {o.name: o.index for o in manifest.outputs} == signature
    assert min(_edge_vs_keras(runs["multitask"], out).values()) >= 0.9


def test_default_conversion_reports_every_mode_and_golden_outputs_replay(runs, tmp_path):
    out = convert_run(runs["attributes"], tmp_path / "attributes", rep_size=200, latency_repeats=10)
    parity = json.loads((out / "parity.json").read_text())
    assert list(parity["modes"]) == ["float32", "float16", "dynamic", "int8"]
    sizes = {m: r["bytes"] for m, r in parity["modes"].items()}
    assert sizes["int8"] < sizes["float32"] and sizes["float16"] < sizes["float32"]
    assert all(r["latency_ms"] > 0 for r in parity["modes"].values())
    bundle = load_bundle(out)
    assert bundle.manifest.extra["quantization"]["rep_faces"] == 200
    model = FaceModel(bundle, get_runtime("ai_edge_litert"))
    with np.load(out / "golden.npz") as golden:
        for i, face in enumerate(golden["faces"]):  # RGB, as edge.push reads them
            y = model.raw_outputs(model.preprocess(np.ascontiguousarray(face[:, :, ::-1])))[0]
            np.testing.assert_allclose(y, golden["attributes"][i], atol=1e-6)


def test_int8_figures_of_the_run_travel_with_the_bundle_and_are_hashed(runs, tmp_path):
    figure = runs["multitask"] / "eval" / "confusion_emotion_int8.png"
    figure.parent.mkdir(exist_ok=True)
    figure.write_bytes(b"\x89PNG not really")
    try:
        int8 = convert_run(runs["multitask"], tmp_path / "mt", compare_modes=False)
        f16 = convert_run(runs["multitask"], tmp_path / "mt16", quant="float16", compare_modes=False)
    finally:
        figure.unlink()
    assert (int8 / "figures" / figure.name).read_bytes() == b"\x89PNG not really"
    assert "figures/confusion_emotion_int8.png" in load_bundle(int8).manifest.files
    assert not (f16 / "figures").exists()  # int8 plots do not describe a float16 model


def test_embedding_parity_reports_cosine_and_pair_accuracy(runs, tmp_path):
    out = convert_run(runs["embedding"], tmp_path / "emb", quant="dynamic", compare_modes=False)
    head = json.loads((out / "parity.json").read_text())["heads"]["embedding"]
    assert 0.95 <= head["mean_cosine"] <= 1.0 + 1e-6
    assert head["metrics_float"]["pair_accuracy"] > 0.8      # 8 synthetic identities, learnable
    assert abs(head["metrics_float"]["pair_accuracy"] - head["metrics_converted"]["pair_accuracy"]) < 0.05


def test_final_l2_inside_a_nested_head_is_left_to_edge(runs):
    # The recognition trainer nests Dense -> BN -> UnitNormalization in an "embedding_head" sub-model.
    from converters.convert import strip_unit_normalization
    from converters.quantize import QuantConfig, convert_keras, representative_set

    feat_in = keras.Input((16,))
    head = keras.Model(feat_in, keras.layers.UnitNormalization()(keras.layers.Dense(8)(feat_in)), name="embedding_head")
    image = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255.0)(image)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(16, 3)(x))
    model = keras.Model(image, {"embedding": head(x)})
    run = load_run(runs["embedding"])
    stripped, notes = strip_unit_normalization(model, run.manifest)
    assert notes and "UnitNormalization" in notes[0]
    faces = run.heldout_faces()[:8].astype(np.float32)
    full = np.asarray(model(faces)["embedding"])
    pre = np.asarray(stripped(faces)["embedding"])
    np.testing.assert_allclose(pre / np.linalg.norm(pre, axis=1, keepdims=True), full, atol=1e-5)
    flat = convert_keras(stripped, QuantConfig(), representative_set(run.train_faces(), 50, 0))
    assert float_ops_in(flat) == [] and list(signature_outputs(flat)) == ["embedding"]
