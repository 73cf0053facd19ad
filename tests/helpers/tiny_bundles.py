"""Tiny but real TFLite model bundles for tests: attributes, multitask, embedding and landmarks.

Each builder makes a small random-weight Keras network, converts it with TensorFlow's
TFLite converter (``quant="int8"``: full-integer with a uint8 input, the way shipped
bundles are built; ``"float"``: float32), and writes a complete bundle folder:
``model.tflite``, ``MODEL_CARD.md`` and ``manifest.yaml`` with the sha256 of both (written
through :func:`edge.bundle.manifest_to_dict`, so it is exactly what ``load_bundle`` reads).

The converted ``.tflite`` is cached under ``<repo>/.cache/tiny_bundles/`` keyed by the build
parameters and the TensorFlow version, so TensorFlow is imported only on the first build;
later test runs just copy the file and write the manifest.

    from tests.helpers.tiny_bundles import build_attributes_bundle
    folder = build_attributes_bundle(tmp_path / "attributes")
    bundle = edge.bundle.load_bundle(folder)

The weights are random: outputs are deterministic per build, but mean nothing.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np
import yaml

from edge.bundle import (CARD, MANIFEST, MODEL_FILE, InputSpec, Manifest, OutputSpec, manifest_to_dict,
                         sha256_file)
from edge.crop import CropSpec

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "tiny_bundles"

ATTRIBUTE_LABELS = ("Smiling", "Eyeglasses", "Male", "Young", "Wearing_Hat")
GENDER_LABELS = ("female", "male")
EMOTION_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


@dataclass(frozen=True)
class Head:
    """One output of a tiny model: its manifest name, kind, width and labels."""

    name: str
    kind: str                          # sigmoid | softmax | regression | embedding | landmarks
    units: int
    labels: tuple[str, ...] = ()
    thresholds: tuple[float, ...] = ()
    unreliable: tuple[str, ...] = ()
    unit: str = ""
    constant: tuple[float, ...] = ()   # landmarks: the (almost) fixed output, whatever the face

    def spec(self) -> OutputSpec:
        """Return the manifest OutputSpec of this head (tensor name = head name)."""
        return OutputSpec(name=self.name, kind=self.kind, tensor=self.name, labels=self.labels,
                          thresholds=self.thresholds, unreliable=self.unreliable, unit=self.unit)


@dataclass(frozen=True)
class BuildSpec:
    """Everything that determines a converted model (the cache key)."""

    heads: tuple[Head, ...]
    size: int = 32
    channels: int = 3
    quant: str = "int8"                # int8 (uint8 input, float outputs) | int8_io (int8 outputs too) | float
    arch: str = "tiny"                 # tiny (two convs) | mobilenet_v2 (alpha 0.35, random weights)
    seed: int = 0

    def key(self, tf_version: str) -> str:
        """Return the cache key of this build under ``tf_version``."""
        blob = json.dumps({"spec": repr(self), "tf": tf_version, "format": 2}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]


def keras_model(spec: BuildSpec) -> Any:
    """Return the float Keras model of ``spec``: input float32 in [0, 1], a dict of named outputs."""
    import keras

    keras.utils.set_random_seed(spec.seed)
    inputs = keras.Input((spec.size, spec.size, spec.channels), name="image")
    if spec.arch == "mobilenet_v2":
        backbone = keras.applications.MobileNetV2(input_shape=(spec.size, spec.size, spec.channels), alpha=0.35,
                                                  include_top=False, weights=None, pooling="avg")
        x = backbone(keras.layers.Rescaling(2.0, offset=-1.0)(inputs))
    elif spec.arch == "tiny":
        x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
        x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
    else:
        raise ValueError(f"unknown arch {spec.arch!r}")
    outputs = {}
    for head in spec.heads:
        activation = {"sigmoid": "sigmoid", "softmax": "softmax"}.get(head.kind)
        if head.kind == "regression":
            # Spread the random output over a plausible range (e.g. ages 0..80) so tests see values.
            y = keras.layers.Dense(head.units, name=f"{head.name}_dense")(x)
            y = keras.layers.Rescaling(20.0, offset=35.0, name=head.name)(y)
        elif head.constant:
            # Tiny weights and the wanted points as bias: the same points (to ~1e-3) for every face.
            y = keras.layers.Dense(head.units, name=head.name,
                                   kernel_initializer=keras.initializers.RandomUniform(-1e-3, 1e-3),
                                   bias_initializer=keras.initializers.Constant(list(head.constant)))(x)
        else:
            y = keras.layers.Dense(head.units, activation=activation, name=head.name)(x)
        outputs[head.name] = y
    return keras.Model(inputs, outputs, name="tiny")


def convert(spec: BuildSpec, model: Any = None) -> bytes:
    """Return the TFLite flatbuffer of ``spec`` (signature outputs named after the heads' layers)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    model = model if model is not None else keras_model(spec)
    shape = (1, spec.size, spec.size, spec.channels)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    return _quantize_and_convert(tf, converter, spec, shape)


def _quantize_and_convert(tf: Any, converter: Any, spec: BuildSpec, shape: tuple[int, ...]) -> bytes:
    if spec.quant in ("int8", "int8_io"):
        rng = np.random.default_rng(spec.seed)

        def representative() -> Iterable[list[np.ndarray]]:
            for _ in range(16):
                yield [rng.random(shape, dtype=np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        if spec.quant == "int8_io":
            converter.inference_output_type = tf.int8
    elif spec.quant != "float":
        raise ValueError(f"unknown quant {spec.quant!r}")
    # The converter prints the exported SavedModel's signature to stdout; tests do not need it.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return converter.convert()


def tflite_bytes(spec: BuildSpec) -> bytes:
    """Return the converted model of ``spec``, from the cache when it was built before."""
    try:
        from importlib import metadata
        tf_version = metadata.version("tensorflow-cpu")
    except Exception:
        tf_version = "tf"
    path = CACHE / spec.key(tf_version) / MODEL_FILE
    if path.is_file():
        return path.read_bytes()
    data = convert(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return data


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    """Write ``manifest`` to folder/manifest.yaml with the sha256 of model.tflite and MODEL_CARD.md; return it."""
    files = {rel: sha256_file(folder / rel) for rel in (MODEL_FILE, CARD) if (folder / rel).is_file()}
    manifest = replace(manifest, files=files)
    path = folder / MANIFEST
    path.write_text(yaml.safe_dump(manifest_to_dict(manifest), sort_keys=False), encoding="utf-8")
    return path


def build_bundle(folder: str | Path, name: str, task: str, heads: Sequence[Head], *, size: int = 32,
                 channels: int = 3, quant: str = "int8", arch: str = "tiny", seed: int = 0,
                 version: str = "1", crop: Optional[CropSpec] = None,
                 metrics: Optional[dict[str, Any]] = None, extra: Optional[dict[str, Any]] = None) -> Path:
    """Build a complete bundle folder (model.tflite, MODEL_CARD.md, manifest.yaml); return the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    spec = BuildSpec(tuple(heads), size, channels, quant, arch, seed)
    (folder / MODEL_FILE).write_bytes(tflite_bytes(spec))
    (folder / CARD).write_text(f"# {name} (test bundle)\n\nA tiny {arch} network with random weights, built by "
                               "tests/helpers/tiny_bundles.py. Not a real model: its outputs mean nothing.\n",
                               encoding="utf-8")
    integer = quant in ("int8", "int8_io")
    manifest = Manifest(
        name=name, task=task, version=str(version), created="2026-01-01T00:00:00Z",
        input=InputSpec(height=size, width=size, channels=channels, color="rgb" if channels == 3 else "gray",
                        value_range=(0.0, 1.0), mean=(0.0,), std=(1.0,), dtype="uint8" if integer else "float32"),
        crop=crop or CropSpec(size=size, margin=0.25, shift_y=0.0),
        outputs=tuple(h.spec() for h in heads),
        metrics=dict(metrics or {"note": "random weights, no metrics"}),
        runtimes_checked=("ai_edge_litert",),
        extra=dict(extra or {}))
    write_manifest(folder, manifest)
    return folder


def attribute_heads(labels: Sequence[str] = ATTRIBUTE_LABELS, thresholds: Optional[Sequence[float]] = None,
                    unreliable: Sequence[str] = ()) -> tuple[Head, ...]:
    """Return the one sigmoid head of an attributes model."""
    thresholds = tuple(thresholds) if thresholds is not None else tuple(0.5 for _ in labels)
    return (Head("attributes", "sigmoid", len(labels), tuple(labels), thresholds, tuple(unreliable)),)


def multitask_heads() -> tuple[Head, ...]:
    """Return the age (regression, years), gender and emotion (softmax) heads of a multitask model."""
    return (Head("age", "regression", 1, unit="years"),
            Head("gender", "softmax", len(GENDER_LABELS), GENDER_LABELS),
            Head("emotion", "softmax", len(EMOTION_LABELS), EMOTION_LABELS))


def build_attributes_bundle(folder: str | Path, name: str = "attributes", labels: Sequence[str] = ATTRIBUTE_LABELS,
                            thresholds: Optional[Sequence[float]] = None, unreliable: Sequence[str] = (),
                            **kwargs: Any) -> Path:
    """Build an ``attributes`` bundle (one sigmoid head over ``labels``); return its folder."""
    return build_bundle(folder, name, "attributes", attribute_heads(labels, thresholds, unreliable), **kwargs)


def build_multitask_bundle(folder: str | Path, name: str = "multitask", **kwargs: Any) -> Path:
    """Build a ``multitask`` bundle (age regression, gender and emotion softmax); return its folder."""
    return build_bundle(folder, name, "multitask", multitask_heads(), **kwargs)


def build_embedding_bundle(folder: str | Path, name: str = "embedding", dim: int = 16,
                           threshold: Optional[float] = None, **kwargs: Any) -> Path:
    """Build an ``embedding`` bundle (one L2-normalised ``dim`` vector); ``threshold`` goes to
    the manifest's ``recognition.threshold``. Returns its folder."""
    extra = dict(kwargs.pop("extra", None) or {})
    if threshold is not None:
        extra["recognition"] = {"threshold": float(threshold)}
    return build_bundle(folder, name, "embedding", (Head("embedding", "embedding", dim),), extra=extra, **kwargs)


# dlib's 5-point template face (edge.crop.FIVE_POINT_TEMPLATE) placed in a box crop of margin 0.1: a plausible face.
TEMPLATE_POINTS = (0.78, 0.38, 0.62, 0.39, 0.22, 0.38, 0.38, 0.39, 0.5, 0.68)


def build_landmarks_bundle(folder: str | Path, name: str = "landmarks", points: Sequence[float] = TEMPLATE_POINTS,
                           **kwargs: Any) -> Path:
    """Build a ``landmarks`` bundle whose output is (almost) always ``points`` (x0, y0, ..., x4, y4 as fractions
    of its crop), so tests know where it puts a face's landmarks. Returns its folder."""
    kwargs.setdefault("crop", CropSpec(size=kwargs.get("size", 32), margin=0.1))
    head = Head("landmarks", "landmarks", 10, constant=tuple(float(v) for v in points))
    return build_bundle(folder, name, "landmarks", (head,), **kwargs)


def corrupt_model(folder: str | Path, how: str = "truncate", keep_sha: bool = False) -> Path:
    """Damage folder/model.tflite (``truncate`` to half, or ``flip`` bytes in its middle); return its path.

    ``keep_sha=False`` leaves the manifest alone (load_bundle must refuse the bundle: sha256
    mismatch); ``keep_sha=True`` rewrites the manifest's sha256 so the damage reaches the runtime.
    """
    folder = Path(folder)
    path = folder / MODEL_FILE
    data = bytearray(path.read_bytes())
    if how == "truncate":
        data = data[: len(data) // 2]
    elif how == "flip":
        mid = len(data) // 2
        for i in range(mid, min(len(data), mid + 64)):
            data[i] ^= 0xFF
    else:
        raise ValueError(f"unknown corruption {how!r}")
    path.write_bytes(bytes(data))
    if keep_sha:
        raw = yaml.safe_load((folder / MANIFEST).read_text(encoding="utf-8"))
        raw["files"][MODEL_FILE] = sha256_file(path)
        (folder / MANIFEST).write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def edit_manifest(folder: str | Path, **changes: Any) -> Path:
    """Set top-level manifest fields (value None deletes the field) without touching the sha256s; return the path."""
    path = Path(folder) / MANIFEST
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    for key, value in changes.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path
