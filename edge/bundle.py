"""Model bundles: a folder with model.tflite, manifest.yaml, MODEL_CARD.md and optional manifest.sig.

The manifest is the contract between converters, push and edge (see DESIGN.md).
:func:`load_bundle` checks the schema, every file's sha256 and, when a public key
is given, the Ed25519 signature of manifest.yaml; any failure raises BundleError
with one line that names the bundle and what is wrong.
"""
from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

import yaml

from .crop import CropSpec
from .distance import EUCLIDEAN, check_distance
from .errors import BundleError
from .views import PLAIN, View, parse_views, views_to_list

SCHEMA_VERSION = 1
TASKS = ("attributes", "multitask", "embedding", "distortion", "landmarks")
# landmarks: x0, y0, x1, y1, ... as fractions of the crop side (edge.align)
OUTPUT_KINDS = ("sigmoid", "softmax", "regression", "embedding", "landmarks")
COLOR_ORDERS = ("rgb", "bgr", "gray")
MANIFEST = "manifest.yaml"
SIGNATURE = "manifest.sig"
MODEL_FILE = "model.tflite"
CARD = "MODEL_CARD.md"
GOLDEN = "golden.npz"


@dataclass(frozen=True)
class InputSpec:
    """What the model's input tensor expects.

    Pixels (0..255, in ``color`` order) are mapped linearly onto ``value_range``, then
    ``(x - mean) / std`` per channel; the result is quantized with the input tensor's own
    scale and zero point when the tensor is an integer type.
    """

    height: int
    width: int
    channels: int = 3
    color: str = "rgb"
    value_range: tuple[float, float] = (0.0, 255.0)
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    dtype: str = "uint8"


@dataclass(frozen=True)
class OutputSpec:
    """One head of the model: its tensor, kind, labels and per-label decision thresholds."""

    name: str
    kind: str
    tensor: str = ""
    index: Optional[int] = None
    labels: tuple[str, ...] = ()
    thresholds: tuple[float, ...] = ()
    unreliable: tuple[str, ...] = ()
    unit: str = ""
    groups: tuple[Mapping[str, Any], ...] = ()
    negative_label: str = ""  # a one-label sigmoid's "no" side, e.g. male for p(female); see negative()
    centre: tuple[float, ...] = ()  # embedding: subtracted from the unit vector before renormalising
    # What the head measures (one value per face per quantity is shown); default: the head's name.
    quantity: str = ""
    # A multi-label head's labels that measure a quantity a dedicated head may own, e.g. {Male: gender,
    # Smiling: emotion}; None: the usual meanings of common labels (see label_quantity).
    quantities: Optional[Mapping[str, str]] = None

    def threshold(self, label: str) -> float:
        """Return the decision threshold of ``label`` (0.5 when none is recorded)."""
        if self.thresholds and label in self.labels:
            return float(self.thresholds[self.labels.index(label)])
        return 0.5

    def negative(self) -> str:
        """Return the class a one-label sigmoid head means below its threshold.

        ``negative_label`` when the manifest sets it, else the other gender word for a
        gender label (female/male, woman/man), else "not <label>".
        """
        if self.negative_label:
            return self.negative_label
        label = self.labels[0] if self.labels else self.name
        return _OPPOSITES.get(label.lower(), f"not {label}")


    def head_quantity(self) -> str:
        """Return the quantity this head reports (its ``quantity``, else its name: age, gender, emotion, ...)."""
        return self.quantity or self.name

    def label_quantity(self, label: str) -> Optional[str]:
        """Return the quantity a label of a multi-label head speaks about (Male -> gender), or None.

        The manifest's ``quantities`` when it has them, else the usual meaning of the label
        (CelebA's Male, Smiling and Young).
        """
        if self.quantities is not None:
            return self.quantities.get(label)
        return _LABEL_QUANTITIES.get(label.lower())


_OPPOSITES = {"female": "male", "male": "female", "woman": "man", "man": "woman"}
_LABEL_QUANTITIES = {"male": "gender", "female": "gender", "smiling": "emotion", "young": "age"}


@dataclass(frozen=True)
class Manifest:
    """A parsed, validated manifest.yaml."""

    name: str
    task: str
    version: str
    created: str
    input: InputSpec
    crop: CropSpec
    outputs: tuple[OutputSpec, ...]
    metrics: Mapping[str, Any] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)
    runtimes_checked: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA_VERSION
    # Outputs are averaged over these views of the crop (edge.views), one model call each.
    views: tuple[View, ...] = PLAIN

    def output(self, name: str) -> OutputSpec:
        """Return the output called ``name``; KeyError if the bundle has none."""
        for out in self.outputs:
            if out.name == name:
                return out
        raise KeyError(name)

    def output_of_kind(self, kind: str) -> Optional[OutputSpec]:
        """Return the first output of ``kind`` (e.g. embedding, landmarks), or None."""
        return next((out for out in self.outputs if out.kind == kind), None)


@dataclass
class Bundle:
    """A verified bundle on disk: its folder and manifest."""

    path: Path
    manifest: Manifest
    signed: bool = False

    @property
    def model_path(self) -> Path:
        """Return the path of the bundle's model.tflite."""
        return self.path / MODEL_FILE

    @property
    def name(self) -> str:
        """Return the bundle's name from its manifest."""
        return self.manifest.name


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _require(data: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in data:
        raise BundleError(f"{where}: missing field '{key}'")
    return data[key]


def _floats(value: Any, where: str) -> tuple[float, ...]:
    if isinstance(value, (int, float)):
        return (float(value),)
    try:
        return tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise BundleError(f"{where}: expected a number or list of numbers, got {value!r}") from None


def parse_manifest(data: Any, where: str = MANIFEST) -> Manifest:
    """Return the Manifest in ``data`` (a dict read from YAML); BundleError names the bad field."""
    if not isinstance(data, Mapping):
        raise BundleError(f"{where}: not a YAML mapping")
    schema = int(data.get("schema", SCHEMA_VERSION))
    if schema != SCHEMA_VERSION:
        raise BundleError(f"{where}: schema {schema} is not supported (this face-edge reads {SCHEMA_VERSION})")
    task = _require(data, "task", where)
    if task not in TASKS:
        raise BundleError(f"{where}: task {task!r} is not one of {', '.join(TASKS)}")
    raw_in = _require(data, "input", where)
    if not isinstance(raw_in, Mapping):
        raise BundleError(f"{where}: 'input' must be a mapping")
    try:
        color = str(raw_in.get("color", "rgb")).lower()
        if color not in COLOR_ORDERS:
            raise BundleError(f"{where}: input.color {color!r} is not one of {COLOR_ORDERS}")
        vr = _floats(raw_in.get("value_range", [0, 255]), f"{where}: input.value_range")
        if len(vr) != 2:
            raise BundleError(f"{where}: input.value_range must be [low, high]")
        inp = InputSpec(height=int(_require(raw_in, "height", f"{where}: input")),
                        width=int(_require(raw_in, "width", f"{where}: input")),
                        channels=int(raw_in.get("channels", 3)), color=color,
                        value_range=(vr[0], vr[1]),
                        mean=_floats(raw_in.get("mean", 0.0), f"{where}: input.mean"),
                        std=_floats(raw_in.get("std", 1.0), f"{where}: input.std"),
                        dtype=str(raw_in.get("dtype", "uint8")))
    except (TypeError, ValueError) as exc:
        raise BundleError(f"{where}: bad input spec: {exc}") from None
    if inp.channels not in (1, 3):
        raise BundleError(f"{where}: input.channels must be 1 or 3")
    try:
        crop = CropSpec.from_dict(data.get("crop") or {"size": inp.height})
    except (TypeError, ValueError) as exc:
        raise BundleError(f"{where}: bad crop spec: {exc}") from None
    raw_outs = _require(data, "outputs", where)
    if not isinstance(raw_outs, list) or not raw_outs:
        raise BundleError(f"{where}: 'outputs' must be a non-empty list")
    outputs = []
    for i, raw in enumerate(raw_outs):
        ow = f"{where}: outputs[{i}]"
        if not isinstance(raw, Mapping):
            raise BundleError(f"{ow}: not a mapping")
        kind = _require(raw, "kind", ow)
        if kind not in OUTPUT_KINDS:
            raise BundleError(f"{ow}: kind {kind!r} is not one of {', '.join(OUTPUT_KINDS)}")
        labels = tuple(str(v) for v in raw.get("labels", []) or [])
        thresholds = _floats(raw.get("thresholds", []) or [], f"{ow}.thresholds")
        if thresholds and len(thresholds) != len(labels):
            raise BundleError(f"{ow}: {len(thresholds)} thresholds for {len(labels)} labels")
        if kind in ("sigmoid", "softmax") and not labels:
            raise BundleError(f"{ow}: a {kind} output needs labels")
        unreliable = tuple(str(v) for v in raw.get("unreliable", []) or [])
        stray = set(unreliable) - set(labels)
        if stray:
            raise BundleError(f"{ow}: unreliable labels {sorted(stray)} are not among its labels")
        if kind == "embedding":
            _check_embedding_unit(raw, ow)
        index = raw.get("index")
        outputs.append(OutputSpec(name=str(_require(raw, "name", ow)), kind=kind,
                                  tensor=str(raw.get("tensor", "")),
                                  index=None if index is None else int(index),
                                  labels=labels, thresholds=thresholds, unreliable=unreliable,
                                  unit=str(raw.get("unit", "")),
                                  groups=tuple(raw.get("groups", []) or []),
                                  negative_label=str(raw.get("negative_label", "") or ""),
                                  centre=_floats(raw.get("centre", []) or [], f"{ow}.centre"),
                                  quantity=str(raw.get("quantity", "") or ""),
                                  quantities=_quantities(raw.get("quantities"), labels, ow)))
    _check_recognition_distance(data, outputs, where)
    views = parse_views(data.get("views"), where)
    known = {"schema", "name", "task", "version", "created", "input", "crop", "outputs",
             "metrics", "files", "runtimes_checked", "views"}
    return Manifest(name=str(_require(data, "name", where)), task=task,
                    version=str(_require(data, "version", where)),
                    created=str(data.get("created", "")), input=inp, crop=crop,
                    outputs=tuple(outputs), metrics=dict(data.get("metrics") or {}),
                    files=dict(data.get("files") or {}),
                    runtimes_checked=tuple(data.get("runtimes_checked") or ()),
                    extra={k: v for k, v in data.items() if k not in known}, schema=schema,
                    views=views)


def _check_embedding_unit(raw: Mapping[str, Any], where: str) -> None:
    """BundleError when an embedding output's ``unit`` names no distance (edge.distance), or pairs a ``centre``
    (a unit-vector offset) with raw Euclidean vectors."""
    try:
        distance = check_distance(raw.get("unit"))
    except ValueError as exc:
        raise BundleError(f"{where}: unit: {exc}") from None
    if distance == EUCLIDEAN and raw.get("centre"):
        raise BundleError(f"{where}: a centre applies to unit vectors; an output of unit euclidean cannot have one")


def _check_recognition_distance(data: Mapping[str, Any], outputs: list[OutputSpec], where: str) -> None:
    """BundleError when ``recognition.distance`` differs from what the embedding output's unit says: the
    threshold and impostor tail would be in other units than the distances the gallery computes."""
    recognition = data.get("recognition")
    if not isinstance(recognition, Mapping) or "distance" not in recognition:
        return
    embedding = next((o for o in outputs if o.kind == "embedding"), None)
    if embedding is None:
        return
    try:
        declared = check_distance(recognition.get("distance"))
    except ValueError as exc:
        raise BundleError(f"{where}: recognition.distance: {exc}") from None
    unit = check_distance(embedding.unit)
    if declared != unit:
        raise BundleError(f"{where}: recognition.distance is {declared} but output {embedding.name}'s unit is "
                          f"{unit}: the threshold would be in other units than the gallery's distances")


def _quantities(value: Any, labels: tuple[str, ...], where: str) -> Optional[dict[str, str]]:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise BundleError(f"{where}.quantities: expected a mapping of label: quantity")
    stray = set(map(str, value)) - set(labels)
    if stray:
        raise BundleError(f"{where}.quantities: labels {sorted(stray)} are not among its labels")
    return {str(k): str(v) for k, v in value.items()}


def load_public_key(path: str | Path) -> Any:
    """Return the Ed25519 public key in ``path`` (PEM, or raw 32 bytes as base64)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise BundleError(f"public key {path}: {exc.strerror}") from None
    try:
        if b"BEGIN" in raw:
            key = serialization.load_pem_public_key(raw)
        else:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(raw.strip()))
    except Exception as exc:
        raise BundleError(f"public key {path}: not an Ed25519 key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError(f"public key {path}: not an Ed25519 key")
    return key


def verify_signature(folder: Path, public_key: Any) -> None:
    """Check manifest.sig against manifest.yaml with ``public_key``; BundleError when it fails."""
    from cryptography.exceptions import InvalidSignature

    sig_path = folder / SIGNATURE
    if not sig_path.is_file():
        raise BundleError(f"bundle {folder.name}: unsigned (no {SIGNATURE}) but a public key is configured")
    sig = sig_path.read_bytes()
    try:
        sig = base64.b64decode(sig.strip(), validate=True) if len(sig) != 64 else sig
        public_key.verify(sig, (folder / MANIFEST).read_bytes())
    except (InvalidSignature, ValueError):
        raise BundleError(f"bundle {folder.name}: manifest signature does not match the configured key") from None


def read_manifest(folder: Path) -> Manifest:
    """Return the parsed manifest of the bundle folder, without checking file hashes."""
    path = folder / MANIFEST
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BundleError(f"bundle {folder}: cannot read {MANIFEST} ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise BundleError(f"bundle {folder.name}: {MANIFEST} is not UTF-8 text (corrupt or tampered)") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BundleError(f"bundle {folder.name}: {MANIFEST} is not valid YAML ({str(exc).splitlines()[0]})") from None
    return parse_manifest(data, f"bundle {folder.name}: {MANIFEST}")


def verify_files(folder: Path, manifest: Manifest, skip: tuple[str, ...] = ()) -> None:
    """Check that model.tflite is listed and every listed file but ``skip`` exists inside ``folder`` with its
    recorded sha256; BundleError names the first that does not."""
    if MODEL_FILE not in manifest.files:
        raise BundleError(f"bundle {folder.name}: manifest lists no sha256 for {MODEL_FILE}")
    for rel, expected in manifest.files.items():
        path = folder / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise BundleError(f"bundle {folder.name}: file entry {rel!r} leaves the bundle")
        if rel in skip:
            continue
        if not path.is_file():
            raise BundleError(f"bundle {folder.name}: {rel} is missing")
        if sha256_file(path) != str(expected):
            raise BundleError(f"bundle {folder.name}: {rel} does not match its sha256 (corrupt or tampered)")


def load_bundle(folder: str | Path, public_key: Any = None) -> Bundle:
    """Return the verified Bundle in ``folder``.

    Checks the manifest schema, that model.tflite is listed, that every listed file
    exists with its recorded sha256, and the signature when ``public_key`` is given.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise BundleError(f"bundle {folder}: no such folder")
    manifest = read_manifest(folder)
    verify_files(folder, manifest)
    if public_key is not None:
        verify_signature(folder, public_key)
    return Bundle(path=folder, manifest=manifest, signed=(folder / SIGNATURE).is_file())


def manifest_to_dict(manifest: Manifest) -> dict[str, Any]:
    """Return ``manifest`` as the plain dict written to manifest.yaml (files included)."""
    inp = manifest.input
    data: dict[str, Any] = {
        "schema": manifest.schema, "name": manifest.name, "task": manifest.task,
        "version": manifest.version, "created": manifest.created,
        "input": {"height": inp.height, "width": inp.width, "channels": inp.channels,
                  "color": inp.color, "value_range": list(inp.value_range),
                  "mean": list(inp.mean), "std": list(inp.std), "dtype": inp.dtype},
        "crop": manifest.crop.to_dict(),
        **({"views": views_to_list(manifest.views)} if manifest.views != PLAIN else {}),
        "outputs": [],
        "metrics": dict(manifest.metrics),
        "runtimes_checked": list(manifest.runtimes_checked),
    }
    for out in manifest.outputs:
        item: dict[str, Any] = {"name": out.name, "kind": out.kind, "tensor": out.tensor}
        if out.index is not None:
            item["index"] = out.index
        if out.labels:
            item["labels"] = list(out.labels)
        if out.thresholds:
            item["thresholds"] = [float(t) for t in out.thresholds]
        if out.unreliable:
            item["unreliable"] = list(out.unreliable)
        if out.unit:
            item["unit"] = out.unit
        if out.groups:
            item["groups"] = [dict(g) for g in out.groups]
        if out.negative_label:
            item["negative_label"] = out.negative_label
        if out.centre:
            item["centre"] = [float(v) for v in out.centre]
        if out.quantity:
            item["quantity"] = out.quantity
        if out.quantities is not None:
            item["quantities"] = dict(out.quantities)
        data["outputs"].append(item)
    data.update(dict(manifest.extra))
    data["files"] = dict(manifest.files)
    return data
