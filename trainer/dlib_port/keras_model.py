"""dlib's face recognition ResNet as a Keras model with the weights of a .dat file.

The model takes a 150x150 RGB chip aligned like ``dlib.get_face_chip`` (0..255 as float32)
and returns the 128-d descriptor (not normalised, as dlib returns it) as output ``embedding``.
Folded exactly, so the graph is plain convolutions:

- dlib's input layer computes ``(pixel - mean_rgb) / 256``; the first convolution has no
  padding, so that affine map is folded into its weights and bias;
- every ``affine`` (a per-channel scale and shift, batch norm at inference) directly follows
  a convolution and is folded into it.

``add_prev`` of two tensors of different shapes zero-pads the smaller one at the end of the
rows, columns and channels (:class:`ZeroPadTo`); that is how a ``residual_down`` adds its
2x2-average-pooled input to its block's output, which has more channels and, where the row
count is even, one row and column fewer.
"""
from __future__ import annotations

from typing import Any, Sequence

import keras
import numpy as np

from .network import DESCRIPTOR_SIZE, INPUT_SIZE, DlibNetwork, Layer

OUTPUT = "embedding"


@keras.saving.register_keras_serializable(package="face_edge")
class ZeroPadTo(keras.layers.Layer):
    """Zero-pads an NHWC tensor at the end of its rows, columns and channels to ``(rows, cols, channels)``."""

    def __init__(self, target: Sequence[int], **kwargs: Any):
        super().__init__(**kwargs)
        self.target = tuple(int(v) for v in target)

    def call(self, x: Any) -> Any:
        _, rows, cols, channels = x.shape
        pads = [[0, 0], [0, self.target[0] - rows], [0, self.target[1] - cols], [0, self.target[2] - channels]]
        return keras.ops.pad(x, pads)

    def compute_output_shape(self, input_shape: Sequence[Any]) -> tuple[Any, ...]:
        return (input_shape[0], *self.target)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "target": list(self.target)}


def _pad_add(a: Any, b: Any, name: str) -> Any:
    """Return a + b with dlib's add_prev rule: the smaller tensor zero-padded at the end of each axis."""
    target = tuple(max(int(x), int(y)) for x, y in zip(a.shape[1:], b.shape[1:]))
    padded = [t if tuple(int(v) for v in t.shape[1:]) == target else ZeroPadTo(target, name=f"{name}_pad{k}")(t)
              for k, t in enumerate((a, b))]
    return keras.layers.Add(name=name)(padded)


def _folded_conv(layers: list[Layer], i: int, mean_rgb: Sequence[float]) -> tuple[np.ndarray, np.ndarray, int]:
    """Return (HWIO kernel, bias, layers consumed) of the con at ``i`` with its following affine folded in."""
    con = layers[i]
    kernel = con.params["kernel"].astype(np.float64)          # (out, in, rows, cols)
    bias = con.params["bias"].astype(np.float64)
    if i == 1:  # the first convolution sees (pixel - mean) / 256; it has no padding, so this is exact
        mean = np.asarray(mean_rgb, np.float64)
        bias = bias - np.einsum("oirc,i->o", kernel, mean) / 256.0
        kernel = kernel / 256.0
    used = 1
    if i + 1 < len(layers) and layers[i + 1].spec.kind == "affine":
        gamma = layers[i + 1].params["gamma"].astype(np.float64)
        beta = layers[i + 1].params["beta"].astype(np.float64)
        kernel = kernel * gamma[:, None, None, None]
        bias = bias * gamma + beta
        used = 2
    return kernel.transpose(2, 3, 1, 0).astype(np.float32), bias.astype(np.float32), used


def build_keras_model(net: DlibNetwork, name: str = "dlib_resnet") -> keras.Model:
    """Return the Keras model of ``net`` (input 150x150x3 RGB 0..255, output ``embedding``, 128 values)."""
    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="chip")
    x = inputs
    tags: dict[int, Any] = {}
    layers = net.layers
    i = 1                                   # layers[0] is the input
    counts: dict[str, int] = {}

    def next_name(kind: str) -> str:
        counts[kind] = counts.get(kind, 0) + 1
        return f"{kind}{counts[kind]}"

    while i < len(layers):
        spec = layers[i].spec
        if spec.kind == "con":
            kernel, bias, used = _folded_conv(layers, i, net.mean_rgb)
            conv = keras.layers.Conv2D(spec.filters, spec.window, strides=spec.stride,
                                       padding="same" if spec.stride == 1 else "valid", name=next_name("conv"))
            x = conv(x)
            conv.set_weights([kernel, bias])
            i += used
            continue
        if spec.kind == "relu":
            x = keras.layers.ReLU(name=next_name("relu"))(x)
        elif spec.kind == "max_pool":
            x = keras.layers.MaxPooling2D(spec.window, spec.stride, padding="valid", name=next_name("max_pool"))(x)
        elif spec.kind == "avg_pool" and spec.window == 0:
            x = keras.layers.GlobalAveragePooling2D(name="avg_pool_everything")(x)
        elif spec.kind == "avg_pool":
            x = keras.layers.AveragePooling2D(spec.window, spec.stride, padding="valid", name=next_name("avg_pool"))(x)
        elif spec.kind == "tag":
            tags[spec.tag] = x
        elif spec.kind == "skip":
            x = tags[spec.tag]
        elif spec.kind == "add_prev":
            x = _pad_add(x, tags[spec.tag], next_name("add"))
        elif spec.kind == "fc":
            dense = keras.layers.Dense(DESCRIPTOR_SIZE, use_bias=False, name=OUTPUT)
            x = dense(x)
            dense.set_weights([layers[i].params["weights"]])
        elif spec.kind == "affine":  # pragma: no cover - every affine follows a con in anet_type
            raise ValueError("an affine layer that does not follow a convolution")
        i += 1
    return keras.Model(inputs, {OUTPUT: x}, name=name)


def multiply_accumulates(model: keras.Model) -> int:
    """Return the multiply-accumulate count of one forward pass (convolutions and the dense layer)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            _, oh, ow, _ = layer.output.shape
            total += int(kh * kw * cin * cout * oh * ow)
        elif isinstance(layer, keras.layers.Dense):
            cin, cout = layer.kernel.shape
            total += int(cin * cout)
    return total
