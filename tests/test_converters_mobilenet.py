"""MobileNetV3-Small (+SE, hard-swish) and MobileNetV2 backbones convert to fully int8 bundles that edge runs."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("keras")
pytest.importorskip("ai_edge_litert")

from converters.convert import convert_run  # noqa: E402
from converters.quantize import _interpreter, float_ops_in  # noqa: E402
from converters.synthetic import make_run  # noqa: E402
from edge.bundle import load_bundle  # noqa: E402
from edge.models import FaceModel  # noqa: E402
from edge.runtime import get_runtime  # noqa: E402


@pytest.mark.slow
@pytest.mark.parametrize("backbone, must_have", [("mobilenet_v3_small", {"HARD_SWISH", "MUL"}),
                                                 ("mobilenet_v2", {"DEPTHWISE_CONV_2D"})])
def test_mobilenet_backbone_quantizes_fully_to_int8(tmp_path, backbone, must_have):
    # Barely trained (1 epoch): the check is that every op quantizes and the int8 embedding
    # points where the float one does, not the floor (a near-constant untrained head ties classes).
    run = make_run(tmp_path / "run", "embedding", backbone=backbone, size=32, n_train=120, n_heldout=40, epochs=1)
    out = convert_run(run, tmp_path / "bundle", quant="int8", rep_size=100, compare_modes=False, force=True,
                      latency_repeats=5)
    flat = (out / "model.tflite").read_bytes()
    interp = _interpreter(flat)
    ops = {op["op_name"] for op in interp._get_ops_details()}
    assert must_have <= ops, ops
    assert float_ops_in(flat) == []
    model = FaceModel(load_bundle(out), get_runtime("ai_edge_litert"))
    vector = model.predict(np.zeros((32, 32, 3), np.uint8)).heads["embedding"].vector
    assert vector.shape == (16,) and abs(np.linalg.norm(vector) - 1.0) < 1e-3
    head = json.loads((out / "parity.json").read_text())["heads"]["embedding"]
    assert head["mean_cosine"] > 0.9, head
