"""MobileNetV3-Small (+SE, hard-swish) converts to a fully int8 bundle that edge runs.

MobileNetV2's int8 conversion (same check: no op left in float) runs in
benchmarks/convert_modes.py --synthetic; it is left out here to keep the suite short.
"""
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
def test_mobilenet_v3_small_with_hard_swish_and_se_quantizes_fully_to_int8(tmp_path):
    # Untrained: the check is that every op (hard-swish, SE multiply) has an int8 kernel and the int8
    # scores follow the float ones; the agreement floor means nothing for an untrained head, hence force.
    run = make_run(tmp_path / "run", "attributes", backbone="mobilenet_v3_small", size=32, n_train=80,
                   n_heldout=30, epochs=0)
    out = convert_run(run, tmp_path / "bundle", quant="int8", rep_size=50, compare_modes=False, force=True,
                      latency_repeats=5)
    flat = (out / "model.tflite").read_bytes()
    ops = {op["op_name"] for op in _interpreter(flat)._get_ops_details()}
    assert {"HARD_SWISH", "MUL", "DEPTHWISE_CONV_2D"} <= ops, ops
    assert float_ops_in(flat) == []
    model = FaceModel(load_bundle(out), get_runtime("ai_edge_litert"))
    scores = model.predict(np.full((32, 32, 3), 128, np.uint8)).heads["attributes"].scores
    assert set(scores) == {"red", "green", "blue"} and all(0.0 <= v <= 1.0 for v in scores.values())
    head = json.loads((out / "parity.json").read_text())["heads"]["attributes"]
    assert head["mean_abs_diff"] < 0.05, head
