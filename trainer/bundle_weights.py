"""A converted bundle's weights copied back into its Keras network: a warm start when the Keras run is gone.

face-convert folds every BatchNormalization into the convolution before it, and quantizes the
weights (int8 per channel, or float16). :func:`load_bundle_weights` undoes what can be undone: it
dequantizes each convolution and dense layer of the bundle's ``model.tflite`` and writes it into
the Keras layer of the same name, with the BatchNormalization after it set to "add the folded bias"
(gamma 1, mean 0, variance 1 - epsilon). The network then computes what the bundle computes, in
float. BatchNorm must stay frozen when such a network is trained further (its statistics are gone).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .errors import DataError

WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


@dataclass(eq=False)   # compared by identity: its fields hold arrays
class TfliteLayer:
    """One weighted op of a .tflite graph: kind, weight tensor name, float kernel and bias, in/out tensor ids."""

    op: str
    name: str
    kernel: np.ndarray   # as stored by TFLite: conv [out, kh, kw, in], depthwise [1, kh, kw, C], dense [out, in]
    bias: np.ndarray
    input_id: int
    output_id: int


def _dequantized(interpreter: Any, detail: dict[str, Any]) -> np.ndarray:
    value = interpreter.get_tensor(detail["index"])
    q = detail.get("quantization_parameters") or {}
    scales = np.asarray(q.get("scales", []), np.float64)
    if value.dtype in (np.float32, np.float16) or scales.size == 0:
        return value.astype(np.float32)
    zeros = np.asarray(q.get("zero_points", np.zeros_like(scales)), np.float64)
    axis = int(q.get("quantized_dimension", 0))
    shape = [1] * value.ndim
    if scales.size > 1:
        shape[axis] = scales.size
    return ((value.astype(np.float64) - zeros.reshape(shape)) * scales.reshape(shape)).astype(np.float32)


def tflite_layers(model_path: str | Path) -> list[TfliteLayer]:
    """Return the convolution and dense ops of ``model_path`` in execution order, weights in float."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from edge.runtime import native_stderr_filtered

    with native_stderr_filtered():  # without XNNPACK, which may drop the constant tensors read here
        interpreter = Interpreter(model_path=str(model_path),
                                  experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        interpreter.allocate_tensors()
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    found = []
    for op in interpreter._get_ops_details():  # noqa: SLF001  the only API that lists a graph's ops
        if op["op_name"] not in WEIGHT_OPS:
            continue
        data, weight, bias = (list(op["inputs"]) + [-1])[:3]
        weight_detail = details[weight]
        kernel = _dequantized(interpreter, weight_detail)
        bias_value = _dequantized(interpreter, details[bias]) if bias >= 0 else np.zeros(kernel.shape[0], np.float32)
        found.append(TfliteLayer(op["op_name"], weight_detail["name"], kernel, bias_value.reshape(-1), data,
                                 int(op["outputs"][0])))
    return found


def _walk(model: Any) -> Iterator[Any]:
    for layer in model.layers:
        if hasattr(layer, "layers"):
            yield from _walk(layer)
        else:
            yield layer


def _bn_after(layers_in_order: list[Any], index: int) -> Any:
    from keras import layers

    following = layers_in_order[index + 1] if index + 1 < len(layers_in_order) else None
    return following if isinstance(following, layers.BatchNormalization) else None


def _set_folded(layer: Any, bn: Any, kernel: np.ndarray, bias: np.ndarray) -> None:
    if bn is not None:
        layer.set_weights([kernel])
        eps = float(bn.epsilon)
        bn.set_weights([np.ones_like(bias), bias, np.zeros_like(bias), np.full_like(bias, 1.0 - eps)])
    elif layer.use_bias:
        layer.set_weights([kernel, bias])
    else:
        raise DataError(f"{layer.name}: the bundle has a bias here that the Keras layer has no place for")


def load_bundle_weights(model: Any, model_path: str | Path,
                        dense_fixups: dict[str, tuple[float, float]] | None = None) -> dict[str, int]:
    """Copy the weights of the .tflite at ``model_path`` into the Keras ``model``; return counts per layer kind.

    Convolutions are matched in order and each must carry the Keras layer's name; dense layers are
    matched by name. ``dense_fixups`` maps a Keras dense layer to (scale, offset) that the converter
    folded into it (y = scale * dense(x) + offset, e.g. a Rescaling after it), undone here. Raises
    DataError when the two networks differ.
    """
    from keras import layers

    found = tflite_layers(model_path)
    convs = [t for t in found if t.op != "FULLY_CONNECTED"]
    dense = [t for t in found if t.op == "FULLY_CONNECTED"]
    ordered = list(_walk(model))
    keras_convs = [(i, l) for i, l in enumerate(ordered) if isinstance(l, (layers.Conv2D, layers.DepthwiseConv2D))]
    if len(keras_convs) != len(convs):
        raise DataError(f"{model_path}: {len(convs)} convolutions, the Keras network has {len(keras_convs)}")
    for (index, layer), source in zip(keras_convs, convs):
        if layer.name not in source.name:
            raise DataError(f"{model_path}: convolution {source.name!r} where the Keras network has {layer.name!r}")
        if isinstance(layer, layers.DepthwiseConv2D):
            kernel = source.kernel[0][..., None]
        else:
            kernel = source.kernel.transpose(1, 2, 3, 0)
        expected = tuple(layer.kernel.shape)
        if kernel.shape != expected:
            raise DataError(f"{layer.name}: kernel {kernel.shape} in the bundle, {expected} in Keras")
        _set_folded(layer, _bn_after(ordered, index), kernel, source.bias)
    keras_dense = {l.name: l for l in ordered if isinstance(l, layers.Dense)}
    matched = {name: t for name in keras_dense for t in dense if f"/{name}_1/" in t.name}
    producers = {t.output_id: name for name, t in matched.items()}
    for name in keras_dense:
        if name in matched:
            continue
        # A dense layer folded with the layer after it (age_unit + the Rescaling "age") carries that layer's
        # name in the bundle: it is the op fed by this head's hidden layer.
        head = name.split("_")[0]
        hits = [t for t in dense if t not in matched.values() and producers.get(t.input_id) == f"{head}_hidden"]
        if len(hits) != 1:
            raise DataError(f"{model_path}: no single dense op for the Keras layer {name!r}")
        matched[name] = hits[0]
    fixups = dense_fixups or {}
    for name, layer in keras_dense.items():
        source = matched[name]
        kernel, bias = source.kernel.T, source.bias
        if name in fixups:
            scale, offset = fixups[name]
            kernel, bias = kernel / scale, (bias - offset) / scale
        if kernel.shape != tuple(layer.kernel.shape):
            raise DataError(f"{name}: kernel {kernel.shape} in the bundle, {tuple(layer.kernel.shape)} in Keras")
        layer.set_weights([kernel, bias])
    return {"convolutions": len(convs), "dense": len(keras_dense)}
