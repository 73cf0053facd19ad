"""Replay a bundle in a TFLite runtime that cannot live in this Python: another interpreter.

tflite_runtime 2.14 (the last release, cp311 at most) breaks beside numpy 2, which the trainer
needs; it runs in a small venv of its own (``python -m venv V && V/bin/pip install
tflite-runtime==2.14.0 "numpy<2"``). :func:`check_with_python` feeds that interpreter the same
input tensors edge feeds LiteRT here (the golden faces through the bundle's preprocessing),
and compares every output with LiteRT's the way edge.push judges golden faces.
"""
from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from edge.models import FaceModel, dequantize
from edge.push import golden_error

from .bundle_writer import GOLDEN_ATOL, GOLDEN_MIN_COSINE

# Runs in the other interpreter: numpy and tflite_runtime only.
CHILD = r'''
import json, sys
import numpy as np
import tflite_runtime
from tflite_runtime.interpreter import Interpreter

model, inputs, outputs = sys.argv[1:4]
interp = Interpreter(model_path=model, num_threads=1)
interp.allocate_tensors()
feed = np.load(inputs)
index = interp.get_input_details()[0]["index"]
result = {}
for k in range(len(feed.files)):
    interp.set_tensor(index, feed[f"x{k}"])
    interp.invoke()
    for d in interp.get_output_details():
        result[f"{k}/{d['name']}"] = interp.get_tensor(d["index"])
np.savez(outputs, **result)
print(json.dumps({"version": getattr(tflite_runtime, "__version__", "?"), "numpy": np.__version__}))
'''
def check_with_python(model: FaceModel, python: str | Path, timeout_s: float = 120.0) -> tuple[str, str]:
    """Return (runtime label, 'ok' | reason) for ``model``'s golden faces replayed by tflite_runtime in ``python``."""
    with np.load(model.bundle.path / "golden.npz", allow_pickle=False) as golden:
        faces = golden["faces"]
    tensors = [model.preprocess(np.ascontiguousarray(f[..., ::-1])) for f in faces]
    reference = [model.raw_outputs(x) for x in tensors]     # per face: each manifest output, dequantized
    with tempfile.TemporaryDirectory(prefix="face-convert-runtime-") as tmp:
        feed, got_path, script = Path(tmp) / "in.npz", Path(tmp) / "out.npz", Path(tmp) / "replay.py"
        np.savez(feed, **{f"x{k}": x for k, x in enumerate(tensors)})
        script.write_text(CHILD, encoding="utf-8")
        try:
            done = subprocess.run([str(python), str(script), str(model.bundle.path / "model.tflite"), str(feed),
                                   str(got_path)], capture_output=True, text=True, timeout=timeout_s)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return "tflite_runtime", f"could not run {python}: {exc}"
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            return "tflite_runtime", f"fails in {python}: {last}"
        info = json.loads(done.stdout.strip().splitlines()[-1])
        label = f"tflite_runtime {info['version']}"
        with np.load(got_path, allow_pickle=False) as got_file:
            got = {k: got_file[k] for k in got_file.files}
    return label, _compare(model, reference, got)


def _compare(model: FaceModel, reference: list[list[np.ndarray]], got: dict[str, np.ndarray]) -> str:
    """Return 'ok' or the first difference, judged per manifest output by edge.push.golden_error
    (the rule install-bundle applies to golden faces on the device)."""
    golden = model.bundle.manifest.extra.get("golden") or {}
    atol = float(golden.get("atol", GOLDEN_ATOL))
    min_cos = float(golden.get("min_cosine", GOLDEN_MIN_COSINE))
    names = {d["index"]: d["name"] for d in model.interpreter.get_output_details()}
    for i, (spec, index) in enumerate(zip(model.manifest.outputs, model._out_indices)):
        scale, zero = model._out_quant.get(index, (0.0, 0))
        for k, want_all in enumerate(reference):
            key = f"{k}/{names[index]}"
            if key not in got:
                return f"{spec.name}: tflite_runtime gave no tensor {names[index]!r}"
            want, y = want_all[i], dequantize(got[key], scale, zero)
            if y.shape != want.shape:
                return f"{spec.name}: shape {y.shape} vs {want.shape}"
            err, limit = golden_error(spec, y, want, float(scale or 0.0), atol, min_cos)
            if err > limit:
                return f"{spec.name} on face {k}: error {err:.4g} from LiteRT > {limit:.4g}"
    return "ok"
