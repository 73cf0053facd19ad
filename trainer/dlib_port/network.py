"""The layers of dlib's face recognition ResNet (``anet_type``) and the .dat reader that checks them.

``anet_type`` in dlib's examples/dnn_face_recognition_ex.cpp::

    block<N,BN,stride,S>  = BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,S>>>>>
    residual<...,S>       = add_prev1<block<N,BN,1,tag1<S>>>
    residual_down<...,S>  = add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,BN,2,tag1<S>>>>>>
    ares<N,S>             = relu<residual<block,N,affine,S>>
    ares_down<N,S>        = relu<residual_down<block,N,affine,S>>
    anet_type = loss_metric<fc_no_bias<128,avg_pool_everything<
        ares_down<256, ares<256, ares<256, ares_down<256,
        ares<128, ares<128, ares_down<128,
        ares<64, ares<64, ares<64, ares_down<64,
        ares<32, ares<32, ares<32,
        max_pool<3,3,2,2, relu<affine<con<32,7,7,2,2, input_rgb_image_sized<150>>>>>>>>>>>>>>>>>>>>>>

dlib pads a convolution or pooling with stride 1 by half its window and one with stride 2 not
at all; ``add_prev`` adds two tensors of different shapes by zero-padding the smaller one at
the end of each dimension (channels, rows, columns). :func:`read_dat` walks the file in dlib's
order (each layer's wrappers outside-in, then the layers' own fields inside-out) and compares
every layer with :func:`anet_layers`; the first one that differs is named in the error.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from trainer.errors import DataError

from .serialization import DlibStream

INPUT_SIZE = 150
DESCRIPTOR_SIZE = 128


@dataclass(frozen=True)
class LayerSpec:
    """One layer of the expected network: its kind and the numbers that must match the file."""

    kind: str                      # con, affine, relu, max_pool, avg_pool, add_prev, tag, skip, fc, input, loss_metric
    filters: int = 0               # con / fc outputs
    window: int = 0                # con / pool window side (0 = whole input for avg_pool)
    stride: int = 1
    tag: int = 0                   # tag / skip / add_prev id

    @property
    def padding(self) -> int:
        """Return dlib's default padding of this convolution or pooling (half the window at stride 1)."""
        return self.window // 2 if self.stride == 1 else 0

    def describe(self) -> str:
        """Return the layer as dlib would write it, e.g. ``con<64,3,3,2,2>``."""
        if self.kind == "con":
            return f"con<{self.filters},{self.window},{self.window},{self.stride},{self.stride}>"
        if self.kind in ("max_pool", "avg_pool"):
            return f"{self.kind}<{self.window},{self.window},{self.stride},{self.stride}>"
        if self.kind in ("tag", "skip", "add_prev"):
            return f"{self.kind}{self.tag}"
        if self.kind == "fc":
            return f"fc_no_bias<{self.filters}>"
        if self.kind == "input":
            return f"input_rgb_image_sized<{INPUT_SIZE}>"
        return self.kind


@dataclass
class Layer:
    """A layer read from the file: its spec and parameters (conv weights OIHW, affine gamma/beta, fc weights)."""

    spec: LayerSpec
    params: dict[str, np.ndarray] = field(default_factory=dict)


def _block(n: int, stride: int) -> list[LayerSpec]:
    # Outside-in: BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,...>>>>>
    return [LayerSpec("affine"), LayerSpec("con", n, 3, 1), LayerSpec("relu"),
            LayerSpec("affine"), LayerSpec("con", n, 3, stride)]


def _ares(n: int) -> list[LayerSpec]:
    return [LayerSpec("relu"), LayerSpec("add_prev", tag=1), *_block(n, 1), LayerSpec("tag", tag=1)]


def _ares_down(n: int) -> list[LayerSpec]:
    return [LayerSpec("relu"), LayerSpec("add_prev", tag=2), LayerSpec("avg_pool", window=2, stride=2),
            LayerSpec("skip", tag=1), LayerSpec("tag", tag=2), *_block(n, 2), LayerSpec("tag", tag=1)]


def anet_layers() -> list[LayerSpec]:
    """Return the layers of ``anet_type`` from the loss (outermost) to the input (innermost)."""
    layers = [LayerSpec("loss_metric"), LayerSpec("fc", DESCRIPTOR_SIZE), LayerSpec("avg_pool", window=0, stride=1)]
    for kind, n in (("down", 256), ("res", 256), ("res", 256), ("down", 256), ("res", 128), ("res", 128),
                    ("down", 128), ("res", 64), ("res", 64), ("res", 64), ("down", 64),
                    ("res", 32), ("res", 32), ("res", 32)):
        layers += _ares_down(n) if kind == "down" else _ares(n)
    layers += [LayerSpec("max_pool", window=3, stride=2), LayerSpec("relu"), LayerSpec("affine"),
               LayerSpec("con", 32, 7, 2), LayerSpec("input")]
    return layers


@dataclass
class DlibNetwork:
    """The parsed network: layers input-first (wrappers included), the input means, the loss settings."""

    layers: list[Layer]                         # input first, loss last
    mean_rgb: tuple[float, float, float]
    loss: dict[str, float]

    def convolutions(self) -> list[Layer]:
        """Return the con layers, input first."""
        return [layer for layer in self.layers if layer.spec.kind == "con"]


class _Reader:
    def __init__(self, stream: DlibStream, specs: list[LayerSpec]):
        self.s = stream
        self.specs = specs
        self.layers: list[Layer] = []            # filled inside-out = input first
        self.mean_rgb = (0.0, 0.0, 0.0)
        self.loss: dict[str, float] = {}

    def mismatch(self, i: int, found: str) -> DataError:
        spec = self.specs[i]
        return DataError(f"{self.s.where}: layer {i} from the output should be {spec.describe()} of dlib's "
                         f"face recognition ResNet (anet_type), found {found}: not this network")

    def version_string(self, i: int, allowed: tuple[str, ...]) -> str:
        start = self.s.pos
        try:
            version = self.s.string("a layer name")
        except DataError:
            self.s.pos = start
            raise self.mismatch(i, "something else") from None
        if version not in allowed:
            raise self.mismatch(i, repr(version))
        return version

    def wrapper_version(self, i: int, allowed: tuple[int, ...]) -> int:
        version = self.s.int("a layer version")
        if version not in allowed:
            raise self.mismatch(i, f"a wrapper of version {version}")
        return version

    def read(self, i: int) -> None:
        spec = self.specs[i]
        if spec.kind == "loss_metric":
            self.wrapper_version(i, (1,))
            name = self.version_string(i, ("loss_metric_", "loss_metric_2"))
            if name == "loss_metric_2":
                self.loss = {"margin": self.s.float(), "distance_threshold": self.s.float()}
            else:
                self.loss = {"margin": 0.1, "distance_threshold": 0.75}
            self.read(i + 1)
            return
        if spec.kind in ("tag", "skip"):
            self.wrapper_version(i, (1,))
            self.read(i + 1)
            self.layers.append(Layer(spec))
            return
        if self.specs[i + 1].kind == "input":       # add_layer<LAYER, INPUT>: input first
            version = self.wrapper_version(i, (2, 3))
            self.read_input(i + 1)
            self.read_details(i)
            for _ in range(3):
                self.s.bool()
            for _ in range(3):                       # x_grad, cached_output, grad_final
                self.s.tensor()
            if version >= 3:
                self.s.int()
            return
        version = self.wrapper_version(i, (1, 2))
        self.read(i + 1)
        self.read_details(i)
        for _ in range(3):
            self.s.bool()
        for _ in range(2 if version == 1 else 3):    # x_grad, cached_output (+ params_grad)
            self.s.tensor()

    def read_input(self, i: int) -> None:
        self.version_string(i, ("input_rgb_image_sized",))
        self.mean_rgb = (self.s.float(), self.s.float(), self.s.float())
        rows, cols = self.s.int(), self.s.int()
        if (rows, cols) != (INPUT_SIZE, INPUT_SIZE):
            raise self.mismatch(i, f"an input of {rows}x{cols}")
        self.layers.append(Layer(self.specs[i]))

    def read_details(self, i: int) -> None:
        spec = self.specs[i]
        s = self.s
        params: dict[str, np.ndarray] = {}
        if spec.kind == "con":
            version = self.version_string(i, ("con_4", "con_5"))
            flat = s.tensor().reshape(-1)
            filters, rows, cols = s.int(), s.int(), s.int()
            stride = (s.int(), s.int())
            padding = (s.int(), s.int())
            shape = s.alias_tensor()
            s.alias_tensor()                                           # the bias alias
            for _ in range(4):
                s.float()
            use_bias = s.bool() if version == "con_5" else True
            if (filters, rows, cols, stride, padding) != (spec.filters, spec.window, spec.window,
                                                          (spec.stride,) * 2, (spec.padding,) * 2):
                raise self.mismatch(i, f"con<{filters},{rows},{cols},{stride[0]},{stride[1]}> with padding {padding}")
            n_weights = int(np.prod(shape))
            params["kernel"] = flat[:n_weights].reshape(shape)          # (out, in, rows, cols)
            bias = flat[n_weights:n_weights + filters] if use_bias and flat.size >= n_weights + filters else None
            params["bias"] = bias if bias is not None else np.zeros(filters, np.float32)
        elif spec.kind == "affine":
            version = self.version_string(i, ("affine_", "affine_2", "bn_con2"))
            flat = s.tensor().reshape(-1)
            gamma_shape, _ = s.alias_tensor(), s.alias_tensor()
            n = int(np.prod(gamma_shape))
            gamma, beta = flat[:n], flat[n:2 * n]
            if version == "bn_con2":               # batch norm: fold the running statistics in, as dlib does
                s.tensor(), s.tensor()
                means, variances = s.tensor().reshape(-1), s.tensor().reshape(-1)
                s.int(), s.int()
                for _ in range(4):
                    s.float()
                eps = s.float()
                gamma = gamma / np.sqrt(variances + eps)
                beta = beta - gamma * means
            else:
                s.int()
                if version == "affine_2" and s.bool():
                    gamma, beta = np.ones_like(gamma), np.zeros_like(beta)
            params["gamma"], params["beta"] = gamma.astype(np.float32), beta.astype(np.float32)
        elif spec.kind == "fc":
            version = self.version_string(i, ("fc_2", "fc_3"))
            outputs, inputs = s.int(), s.int()
            flat = s.tensor().reshape(-1)
            s.alias_tensor(), s.alias_tensor()
            bias_mode = s.int()
            for _ in range(4):
                s.float()
            if version == "fc_3":
                s.bool()
            if outputs != spec.filters or bias_mode != 1:
                raise self.mismatch(i, f"fc with {outputs} outputs and bias mode {bias_mode}")
            params["weights"] = flat[:inputs * outputs].reshape(inputs, outputs)
        elif spec.kind in ("max_pool", "avg_pool"):
            self.version_string(i, (f"{spec.kind}_2",))
            rows, cols, sy, sx, py, px = (s.int() for _ in range(6))
            if (rows, cols, sy, sx, py, px) != (spec.window, spec.window, spec.stride, spec.stride,
                                                spec.padding, spec.padding):
                raise self.mismatch(i, f"{spec.kind}<{rows},{cols},{sy},{sx}> with padding ({py}, {px})")
        elif spec.kind == "relu":
            self.version_string(i, ("relu_",))
        elif spec.kind == "add_prev":
            self.version_string(i, ("add_prev_",))
        else:  # pragma: no cover - anet_layers() has no other kinds
            raise self.mismatch(i, "an unsupported layer")
        self.layers.append(Layer(spec, params))


def read_dat(path: str | Path, specs: Optional[list[LayerSpec]] = None) -> DlibNetwork:
    """Return the DlibNetwork in a dlib .dat file; DataError names the first layer that is not ``anet_type``'s."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    specs = specs or anet_layers()
    reader = _Reader(DlibStream(data, str(path)), specs)
    reader.read(0)
    if not reader.s.at_end():
        raise DataError(f"{path}: {len(data) - reader.s.pos} bytes left after the network: not this network")
    return DlibNetwork(reader.layers, reader.mean_rgb, reader.loss)
