"""Keras -> TFLite in four modes: float32, float16, dynamic-range and full int8.

Full int8 calibrates on a seeded sample of the run's own training crops (the
representative set). Its input and output tensors are uint8 (default) or int8, and
weights are quantized per channel unless asked otherwise.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Iterator, Optional

import numpy as np

from .errors import ConvertError

MODES = ("float32", "float16", "dynamic", "int8")
IO_TYPES = ("uint8", "int8")


@dataclass(frozen=True)
class QuantConfig:
    """How to convert: the mode, int8 I/O type, per-channel weights and the representative set."""

    mode: str = "int8"
    io_type: str = "uint8"
    per_channel: bool = True
    rep_size: int = 300
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConvertError(f"quantization mode {self.mode!r} is not one of {', '.join(MODES)}")
        if self.io_type not in IO_TYPES:
            raise ConvertError(f"int8 I/O type {self.io_type!r} is not one of {', '.join(IO_TYPES)}")
        if self.rep_size < 1:
            raise ConvertError(f"representative set size must be at least 1, got {self.rep_size}")

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a plain dict for manifests and reports."""
        return asdict(self)


def representative_set(train_faces: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Return ``size`` seeded crops of ``train_faces`` (fewer when the run has fewer) as float32.

    Two pixels of the first crop are set to 0 and 255 so the calibrated input range is
    exactly 0..255: the int8 model then takes raw uint8 pixels with scale 1, zero point 0.
    """
    if train_faces is None or len(train_faces) == 0:
        raise ConvertError("representative set is empty: samples/train_faces.npy holds no faces")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(train_faces), size=min(size, len(train_faces)), replace=False)
    rep = train_faces[np.sort(pick)].astype(np.float32)
    rep[0, 0, 0, :] = 0.0
    rep[0, 0, 1, :] = 255.0
    return rep


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    select = re.search(r"TF Select ops: ([^\n]+)", text)
    if select:
        return f"ops not in the TFLite builtin set: {select.group(1).strip()}"
    op = re.search(r"'(tf\.[A-Za-z0-9_]+)' op", text)
    if op:
        return f"op {op.group(1)} cannot be converted"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]


def convert_keras(model: Any, config: QuantConfig, rep: Optional[np.ndarray] = None) -> bytes:
    """Return the TFLite flatbuffer of ``model`` converted as ``config`` says.

    ``rep`` (float32 N x H x W x C) is required for int8. ConvertError names the op
    when the model cannot be converted or int8-quantized.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if config.mode == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif config.mode == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif config.mode == "int8":
        if rep is None or len(rep) == 0:
            raise ConvertError("representative set is empty: int8 needs calibration faces")

        def samples() -> Iterator[list[np.ndarray]]:
            for face in rep:
                yield [face[None]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = samples
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        io_dtype = tf.uint8 if config.io_type == "uint8" else tf.int8
        converter.inference_input_type = io_dtype
        converter.inference_output_type = io_dtype
        if not config.per_channel:
            converter._experimental_disable_per_channel = True
    try:
        # The converter prints the exported SavedModel's signature to stdout and warns about input
        # statistics it does not need (the Rescaling layer sits inside the model).
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            flat = converter.convert()
    except Exception as exc:
        what = "int8-quantized" if config.mode == "int8" else "converted to TFLite"
        raise ConvertError(f"the model cannot be {what} ({_first_line(exc)})") from None
    if config.mode == "int8":
        float_ops = float_ops_in(flat)
        if float_ops:
            raise ConvertError(f"the model cannot be fully int8-quantized: op(s) {', '.join(float_ops)} "
                               "stay float32; use --quant dynamic or float16, or replace the layer")
    return flat


def _interpreter(flat: bytes) -> Any:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_content=flat,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    return interp


def float_ops_in(flat: bytes) -> list[str]:
    """Return the sorted names of ops in a TFLite model that compute on float32 tensors.

    QUANTIZE and DEQUANTIZE are the int8 model's edges and are not counted.
    """
    interp = _interpreter(flat)
    dtypes = {t["index"]: t["dtype"] for t in interp.get_tensor_details()}
    names = set()
    for op in interp._get_ops_details():
        if op["op_name"] in ("QUANTIZE", "DEQUANTIZE", "DELEGATE"):
            continue
        tensors = [i for i in list(op["inputs"]) + list(op["outputs"]) if i >= 0]
        if any(dtypes.get(i) == np.float32 for i in tensors):
            names.add(op["op_name"])
    return sorted(names)


def signature_outputs(flat: bytes) -> dict[str, int]:
    """Return the TFLite signature's output names mapped to their tensor indices."""
    interp = _interpreter(flat)
    signatures = interp._get_full_signature_list()
    if not signatures:
        return {}
    return dict(next(iter(signatures.values()))["outputs"])


def io_details(flat: bytes) -> dict[str, Any]:
    """Return the input tensor's dtype, shape and (scale, zero point), and each output's likewise."""
    interp = _interpreter(flat)
    inp = interp.get_input_details()[0]
    outs = {int(d["index"]): {"dtype": np.dtype(d["dtype"]).name,
                              "scale": float(d["quantization"][0]), "zero_point": int(d["quantization"][1])}
            for d in interp.get_output_details()}
    return {"input": {"dtype": np.dtype(inp["dtype"]).name, "shape": [int(v) for v in inp["shape"]],
                      "scale": float(inp["quantization"][0]), "zero_point": int(inp["quantization"][1])},
            "outputs": outs}
