"""Face models driven only by their bundle's manifest (attributes, multitask, embedding, distortion, landmarks).

A :class:`FaceModel` turns a face crop into a :class:`Prediction`: for each output of
the manifest, sigmoid scores per label, softmax probabilities, a regression value, an
L2-normalised embedding or landmark points. Preprocessing, quantization, labels and thresholds come from the
manifest and the model's tensors; there is no model-specific code here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import cv2
import numpy as np

from .bundle import Bundle, Manifest, OutputSpec
from .distance import COSINE, EUCLIDEAN, check_distance, model_vector
from .errors import BundleError
from .runtime import Runtime, get_runtime
from .views import PLAIN, apply_view


@dataclass
class HeadResult:
    """One output of one model for one face."""

    name: str
    kind: str
    scores: dict[str, float] = field(default_factory=dict)
    value: Optional[float] = None
    vector: Optional[np.ndarray] = None
    unit: str = ""
    points: Optional[np.ndarray] = None   # landmarks: K x 2, fractions of the crop side


    def top(self) -> tuple[str, float]:
        """Return the (label, probability) with the highest score of a softmax head."""
        label = max(self.scores, key=self.scores.__getitem__)
        return label, self.scores[label]


@dataclass
class Prediction:
    """Every head's result for one face from one model."""

    model: str
    heads: dict[str, HeadResult]


def _resolve_output_indices(interp: Any, manifest: Manifest) -> list[int]:
    details = interp.get_output_details()
    by_name = {d["name"]: d["index"] for d in details}
    try:
        signature = interp._get_full_signature_list()  # public get_signature_list has no indices
        sig_outputs: dict[str, int] = next(iter(signature.values()))["outputs"] if signature else {}
    except Exception:
        sig_outputs = {}
    indices = []
    for out in manifest.outputs:
        if out.tensor and out.tensor in sig_outputs:
            indices.append(sig_outputs[out.tensor])
        elif out.tensor and out.tensor in by_name:
            indices.append(by_name[out.tensor])
        elif out.index is not None and any(d["index"] == out.index for d in details):
            indices.append(out.index)
        elif len(manifest.outputs) == 1 and len(details) == 1:
            indices.append(details[0]["index"])
        else:
            raise BundleError(f"bundle {manifest.name}: output {out.name!r} (tensor {out.tensor!r}) "
                              "is not among the model's output tensors")
    return indices


class FaceModel:
    """One loaded bundle: ``predict(crop)`` returns a Prediction for a face crop."""

    def __init__(self, bundle: Bundle, runtime: Optional[Runtime] = None, num_threads: int = 1):
        self.bundle = bundle
        self.manifest = bundle.manifest
        self.runtime = runtime or get_runtime()
        try:
            self.interpreter = self.runtime.interpreter(str(bundle.model_path), num_threads)
        except Exception as exc:
            raise BundleError(f"bundle {bundle.name}: model.tflite does not load "
                              f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
        self._input = self.interpreter.get_input_details()[0]
        shape = tuple(int(v) for v in self._input["shape"])
        inp = self.manifest.input
        if shape[1:3] != (inp.height, inp.width) or shape[3] != inp.channels:
            raise BundleError(f"bundle {bundle.name}: manifest input {inp.height}x{inp.width}x{inp.channels} "
                              f"does not match the model's input tensor {shape[1:]}")
        self._out_indices = _resolve_output_indices(self.interpreter, self.manifest)
        self._out_quant = {d["index"]: d["quantization"] for d in self.interpreter.get_output_details()}
        lo, hi = inp.value_range
        mean = np.asarray(inp.mean, np.float32)
        std = np.asarray(inp.std, np.float32)
        # Fold pixel->range mapping, normalisation and input quantization into one affine map.
        gain = (hi - lo) / 255.0 / std
        offset = (lo - mean) / std
        scale, zero = self._input["quantization"]
        self._dtype = self._input["dtype"]
        if np.issubdtype(self._dtype, np.integer) and scale:
            gain, offset = gain / scale, offset / scale + zero
            info = np.iinfo(self._dtype)
            self._clip: Optional[tuple[int, int]] = (info.min, info.max)
        else:
            self._clip = None
        self._gain = gain.astype(np.float32)
        self._offset = offset.astype(np.float32)
        self._identity = (self._clip is not None and np.allclose(self._gain, 1.0)
                          and np.allclose(self._offset, 0.0) and self._dtype == np.uint8)

    @property
    def name(self) -> str:
        """Return the model's bundle name."""
        return self.manifest.name

    @property
    def task(self) -> str:
        """Return the model's task (attributes, multitask, embedding, distortion, landmarks)."""
        return self.manifest.task

    @property
    def multiply_accumulates(self) -> int:
        """Return the multiply-accumulates of one face (every test-time view): what a board's speed scales with."""
        return multiply_accumulates(self.interpreter) * len(self.manifest.views)

    def preprocess(self, crop_bgr: np.ndarray) -> np.ndarray:
        """Return the input tensor (batch of 1) for a BGR uint8 face crop."""
        inp = self.manifest.input
        img = crop_bgr
        if img.shape[0] != inp.height or img.shape[1] != inp.width:
            img = cv2.resize(img, (inp.width, inp.height), interpolation=cv2.INTER_AREA)
        if img.ndim == 2:
            img = img[:, :, None]
        if inp.channels == 1:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[:, :, None] if img.shape[2] == 3 else img
        elif img.shape[2] == 1:
            img = np.repeat(img, 3, axis=2)
        elif inp.color == "rgb":
            img = img[:, :, ::-1]
        if self._identity:
            return np.ascontiguousarray(img[None], dtype=np.uint8)
        x = img.astype(np.float32) * self._gain + self._offset
        if self._clip is not None:
            x = np.clip(np.rint(x), *self._clip)
        return x[None].astype(self._dtype)

    def raw_outputs(self, tensor: np.ndarray) -> list[np.ndarray]:
        """Return each manifest output, dequantized to float32, for an input tensor."""
        self.interpreter.set_tensor(self._input["index"], tensor)
        self.interpreter.invoke()
        return [dequantize(self.interpreter.get_tensor(idx), *self._out_quant[idx]) for idx in self._out_indices]

    def outputs(self, crop_bgr: np.ndarray) -> list[np.ndarray]:
        """Return each manifest output (float32) for one BGR uint8 face crop.

        The outputs are averaged over the manifest's ``views`` of the crop (edge.views), one
        model call each; a manifest without views gets one plain call.
        """
        views = self.manifest.views
        if views == PLAIN:
            return self.raw_outputs(self.preprocess(crop_bgr))
        per_view = [self.raw_outputs(self.preprocess(apply_view(crop_bgr, view))) for view in views]
        return [np.mean(ys, axis=0, dtype=np.float32) for ys in zip(*per_view)]

    def predict(self, crop_bgr: np.ndarray) -> Prediction:
        """Return the Prediction of every head for one BGR uint8 face crop."""
        heads = {}
        for spec, y in zip(self.manifest.outputs, self.outputs(crop_bgr)):
            heads[spec.name] = interpret_output(spec, y)
        return Prediction(model=self.name, heads=heads)


def multiply_accumulates(interpreter: Any) -> int:
    """Return the multiply-accumulates of one invocation of a TFLite interpreter (its convolution,
    depthwise convolution, transposed convolution and fully connected ops; the rest is small)."""
    shapes = {}
    for detail in interpreter.get_tensor_details():
        shapes[detail["index"]] = tuple(int(v) for v in detail["shape"])
    total = 0
    for op in interpreter._get_ops_details():  # no public API lists the ops with their tensors
        name = op["op_name"]
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"):
            continue
        weights = shapes.get(int(op["inputs"][1]), ())
        out = shapes.get(int(op["outputs"][0]), ())
        if not weights or not out:
            continue
        if name == "FULLY_CONNECTED":
            total += int(np.prod(out)) * int(weights[-1])
        elif name == "DEPTHWISE_CONV_2D":
            total += int(np.prod(out)) * weights[1] * weights[2]
        else:
            total += int(np.prod(out)) * int(np.prod(weights[1:]))
    return total


def dequantize(tensor: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Return an output tensor as a flat float32 vector (integer tensors through scale and zero point)."""
    y = np.asarray(tensor)
    if scale and np.issubdtype(y.dtype, np.integer):
        return ((y.astype(np.float32) - zero_point) * scale).reshape(-1)
    return y.astype(np.float32).reshape(-1)


def interpret_output(spec: OutputSpec, y: np.ndarray) -> HeadResult:
    """Return the HeadResult of one dequantized output vector according to its spec."""
    if spec.kind in ("sigmoid", "softmax"):
        if len(spec.labels) == 1 and y.size == 1:
            scores = {spec.labels[0]: float(y[0])}
        else:
            if y.size != len(spec.labels):
                raise BundleError(f"output {spec.name}: {y.size} values for {len(spec.labels)} labels")
            scores = {label: float(v) for label, v in zip(spec.labels, y)}
        return HeadResult(spec.name, spec.kind, scores=scores)
    if spec.kind == "regression":
        return HeadResult(spec.name, spec.kind, value=float(y[0]), unit=spec.unit)
    if spec.kind == "landmarks":
        if y.size % 2:
            raise BundleError(f"output {spec.name}: {y.size} values cannot be (x, y) landmark pairs")
        return HeadResult(spec.name, spec.kind, points=y.reshape(-1, 2).astype(np.float32))
    return HeadResult(spec.name, spec.kind, vector=embedding_vector(y, spec), unit=spec.unit)


def embedding_vector(y: np.ndarray, spec: OutputSpec) -> np.ndarray:
    """Return the vector a gallery compares for raw output ``y`` (edge.distance): ``y`` itself for an output
    of unit ``euclidean``; else the L2-normalised embedding, and with a manifest ``centre`` the unit vector
    minus that centre (the mean of the model's training embeddings), renormalised."""
    if check_distance(spec.unit) == EUCLIDEAN:
        return model_vector(y, EUCLIDEAN)
    v = model_vector(y, COSINE)
    if spec.centre:
        if len(spec.centre) != v.size:
            raise BundleError(f"output {spec.name}: centre has {len(spec.centre)} values for a {v.size}-d embedding")
        v = v - np.asarray(spec.centre, np.float32)
        norm = float(np.linalg.norm(v))
        v = v / norm if norm > 0 else v
    return v.astype(np.float32)
