"""trainer.bundle_weights: a converted multitask network copied back into Keras computes what the Keras one did."""
from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("ai_edge_litert")

from converters.quantize import QuantConfig, convert_keras  # noqa: E402
from trainer.bundle_weights import load_bundle_weights, tflite_layers  # noqa: E402
from trainer.errors import DataError  # noqa: E402
from trainer.multitask.model import AGE_OFFSET, AGE_SCALE, build_models  # noqa: E402

SIZE = 64
FIXUPS = {"age_unit": (AGE_SCALE, AGE_OFFSET)}


@pytest.fixture(scope="module")
def source():
    """A multitask network with random weights and BatchNorm statistics that are not the identity."""
    keras.utils.set_random_seed(3)
    model = build_models(size=SIZE, weights=None, hidden=16, dropout=0.3).full
    rng = np.random.default_rng(3)
    for weights_owner in _bn_layers(model):
        gamma, beta, mean, var = weights_owner.get_weights()
        weights_owner.set_weights([rng.uniform(0.5, 1.5, gamma.shape).astype(np.float32),
                                   rng.normal(0, 0.2, beta.shape).astype(np.float32),
                                   rng.normal(0, 0.2, mean.shape).astype(np.float32),
                                   rng.uniform(0.5, 2.0, var.shape).astype(np.float32)])
    faces = rng.integers(0, 256, (24, SIZE, SIZE, 3)).astype(np.float32)
    return model, faces


def _bn_layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers"):
            yield from _bn_layers(layer)
        elif isinstance(layer, keras.layers.BatchNormalization):
            yield layer


def _outputs(model, faces):
    out = model.predict(faces, verbose=0)
    return {k: np.asarray(v).reshape(len(faces), -1) for k, v in out.items()}


def _fresh():
    return build_models(size=SIZE, weights=None, hidden=16, dropout=0.3).full


@pytest.mark.slow
def test_a_float_bundle_comes_back_as_the_same_network(source, tmp_path):
    model, faces = source
    path = tmp_path / "model.tflite"
    path.write_bytes(convert_keras(model, QuantConfig(mode="float32")))
    copy = _fresh()
    counts = load_bundle_weights(copy, path, FIXUPS)
    assert counts == {"convolutions": 52, "dense": 8}
    want, got = _outputs(model, faces), _outputs(copy, faces)
    for head in want:
        assert np.abs(want[head] - got[head]).max() <= 1e-3 * (1 + np.abs(want[head]).max()), head
    assert all(not bn.trainable or bn.get_weights()[2].max() == 0 for bn in _bn_layers(copy))


@pytest.mark.slow
def test_an_int8_bundle_comes_back_dequantized(source, tmp_path):
    model, faces = source
    f32, i8 = tmp_path / "f32.tflite", tmp_path / "i8.tflite"
    f32.write_bytes(convert_keras(model, QuantConfig(mode="float32")))
    i8.write_bytes(convert_keras(model, QuantConfig(mode="int8"), faces))
    exact, dequantized = tflite_layers(f32), tflite_layers(i8)
    assert [w.op for w in exact] == [w.op for w in dequantized] and len(exact) == 60
    for a, b in zip(exact, dequantized):
        assert b.kernel.dtype == np.float32 and a.kernel.shape == b.kernel.shape
        # per output channel, int8 weights are within half a quantization step (max |w| / 127 / 2)
        channels = 3 if a.op == "DEPTHWISE_CONV_2D" else 0
        step = np.abs(a.kernel).max(axis=tuple(i for i in range(a.kernel.ndim) if i != channels), keepdims=True) / 127
        assert np.all(np.abs(a.kernel - b.kernel) <= step * 0.51 + 1e-7), a.name
    copy = _fresh()
    load_bundle_weights(copy, i8, FIXUPS)
    assert np.isfinite(_outputs(copy, faces)["age"]).all()


@pytest.mark.slow
def test_another_network_is_refused(source, tmp_path):
    model, _ = source
    path = tmp_path / "model.tflite"
    path.write_bytes(convert_keras(model, QuantConfig(mode="float32")))
    wider = build_models(size=SIZE, weights=None, hidden=32, dropout=0.3).full
    with pytest.raises(DataError, match="kernel"):
        load_bundle_weights(wider, path, FIXUPS)
