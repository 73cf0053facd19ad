"""Read a training RUN folder (docs/run-format.md): run.yaml, model.keras and samples/."""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import yaml

from edge.bundle import Manifest, parse_manifest
from edge.errors import BundleError

from .errors import ConvertError

RUN_FILE = "run.yaml"
KERAS_FILE = "model.keras"
TRAIN_FACES = "samples/train_faces.npy"
HELDOUT_FACES = "samples/heldout_faces.npy"
HELDOUT_LABELS = "samples/heldout_labels.npz"
# run.yaml keys that are training history, not something a device needs in its manifest.
RUN_ONLY_KEYS = ("history", "card")  # "card": extra model-card prose (converters.convert._card_extra)


@dataclass
class Run:
    """A validated run folder: its raw run.yaml, the manifest fields parsed from it, and paths."""

    path: Path
    raw: dict[str, Any]
    manifest: Manifest

    @property
    def keras_path(self) -> Path:
        """Return the path of the run's model.keras."""
        return self.path / KERAS_FILE

    def train_faces(self) -> np.ndarray:
        """Return samples/train_faces.npy (N x H x W x 3 uint8 RGB); ConvertError if absent or wrong."""
        return self._faces(TRAIN_FACES, required=True)  # type: ignore[return-value]

    def heldout_faces(self) -> Optional[np.ndarray]:
        """Return samples/heldout_faces.npy, or None when the run has no held-out faces."""
        return self._faces(HELDOUT_FACES, required=False)

    def heldout_labels(self) -> dict[str, np.ndarray]:
        """Return the arrays of samples/heldout_labels.npz keyed by output name ({} when absent)."""
        path = self.path / HELDOUT_LABELS
        if not path.is_file():
            return {}
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: np.asarray(data[k]) for k in data.files}
        except Exception as exc:
            raise ConvertError(f"run {self.path}: cannot read {HELDOUT_LABELS} ({exc})") from None

    def _faces(self, rel: str, required: bool) -> Optional[np.ndarray]:
        path = self.path / rel
        if not path.is_file():
            if required:
                raise ConvertError(f"run {self.path}: {rel} is missing (the representative set; see docs/run-format.md)")
            return None
        try:
            faces = np.load(path, allow_pickle=False)
        except Exception as exc:
            raise ConvertError(f"run {self.path}: cannot read {rel} ({exc})") from None
        inp = self.manifest.input
        want = (inp.height, inp.width, inp.channels)
        if faces.ndim != 4 or tuple(faces.shape[1:]) != want or faces.dtype != np.uint8:
            raise ConvertError(f"run {self.path}: {rel} is {faces.dtype} {faces.shape}, expected uint8 N x "
                               f"{want[0]} x {want[1]} x {want[2]}")
        return faces


def load_run(path: str | Path) -> Run:
    """Return the Run in ``path``; ConvertError (one line) when it is not a run folder."""
    path = Path(path)
    if not path.is_dir():
        raise ConvertError(f"{path} is not a run folder (no such directory)")
    missing = [name for name in (RUN_FILE, KERAS_FILE) if not (path / name).is_file()]
    if missing:
        raise ConvertError(f"{path} is not a run folder: {' and '.join(missing)} missing (see docs/run-format.md)")
    try:
        raw = yaml.safe_load((path / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConvertError(f"run {path}: cannot read {RUN_FILE} ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ConvertError(f"run {path}: {RUN_FILE} is not a YAML mapping")
    try:
        manifest = parse_manifest(raw, f"run {path}: {RUN_FILE}")
    except BundleError as exc:
        raise ConvertError(str(exc)) from None
    return Run(path=path, raw=raw, manifest=manifest)


def _import_trainer_layers() -> None:
    # Custom layers registered with keras.saving.register_keras_serializable live in trainer
    # modules; importing them registers the classes so model.keras can be deserialised.
    try:
        trainer = importlib.import_module("trainer")
    except ImportError:
        return
    for info in pkgutil.walk_packages(trainer.__path__, "trainer.", onerror=lambda name: None):
        if {"cli", "commands", "__main__"} & set(info.name.split(".")):
            continue
        try:
            importlib.import_module(info.name)
        except Exception:
            continue


def load_keras_model(run: Run) -> Any:
    """Return the run's Keras model (not compiled); ConvertError when it cannot be loaded."""
    import keras

    try:
        return keras.models.load_model(run.keras_path, compile=False)
    except Exception:
        _import_trainer_layers()
    try:
        return keras.models.load_model(run.keras_path, compile=False)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConvertError(f"run {run.path}: {KERAS_FILE} does not load in Keras ({first[:300]})") from None


def keras_output_names(model: Any) -> list[str]:
    """Return the names of the model's outputs in the order Keras returns them."""
    outputs = model.output
    if isinstance(outputs, dict):
        return list(outputs.keys())
    names = getattr(model, "output_names", None)
    if names:
        return list(names)
    return [t.name.split("/")[0] for t in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]


def keras_predict(model: Any, faces: np.ndarray, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Return the float model's outputs on uint8 RGB ``faces``, keyed by output name (N x D float32)."""
    names = keras_output_names(model)
    rows: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(faces), batch_size):
        # A direct call, not model.predict: no tf.function retracing for each new batch shape.
        result = model(faces[start:start + batch_size].astype(np.float32), training=False)
        if not isinstance(result, dict):
            result = dict(zip(names, result if isinstance(result, (list, tuple)) else [result]))
        for name, value in result.items():
            rows.setdefault(name, []).append(np.asarray(value, np.float32).reshape(len(value), -1))
    return {name: np.concatenate(parts) for name, parts in rows.items()}
