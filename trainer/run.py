"""The training RUN folder of docs/run-format.md: write it after a fit, read it for eval/convert.

    RUN/model.keras  RUN/run.yaml  RUN/samples/{train_faces.npy, heldout_faces.npy,
    heldout_labels.npz}  RUN/eval/  (+ RUN/checkpoints/ while training)
"""
from __future__ import annotations

import datetime as _dt
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import yaml

from edge.bundle import parse_manifest
from edge.crop import CropSpec
from edge.errors import BundleError

from .errors import RunError

MODEL = "model.keras"
RUN_YAML = "run.yaml"
SAMPLES = "samples"
TRAIN_FACES = "train_faces.npy"
HELDOUT_FACES = "heldout_faces.npy"
HELDOUT_LABELS = "heldout_labels.npz"
EVAL = "eval"
CHECKPOINTS = "checkpoints"


def now_utc() -> str:
    """Return the current UTC time as an ISO-8601 string (seconds)."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def input_spec(size: int) -> dict[str, Any]:
    """Return the manifest ``input`` block of a trainer model: size^2 RGB uint8 pixels, 0..255."""
    return {"height": size, "width": size, "channels": 3, "color": "rgb", "value_range": [0, 255],
            "mean": [0.0], "std": [1.0], "dtype": "uint8"}


def _plain(value: Any) -> Any:
    """Return ``value`` with numpy scalars/arrays and tuples turned into YAML-safe Python types."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def write_yaml(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as block-style YAML (numpy values converted) to ``path``."""
    path.write_text(yaml.safe_dump(_plain(data), sort_keys=False, width=110), encoding="utf-8")


def command_line() -> str:
    """Return the face-train command that is running (for run.yaml training.command and the model card)."""
    return "face-train " + " ".join(shlex.quote(a) for a in sys.argv[1:])


@dataclass
class Run:
    """A run folder on disk and its run.yaml contents."""

    path: Path
    info: dict[str, Any]

    @property
    def crop(self) -> CropSpec:
        """Return the crop the run was trained with."""
        return CropSpec.from_dict(self.info.get("crop") or {"size": self.info["input"]["height"]})

    @property
    def size(self) -> int:
        """Return the model's input side in pixels."""
        return int(self.info["input"]["height"])

    @property
    def eval_dir(self) -> Path:
        """Return RUN/eval (created)."""
        folder = self.path / EVAL
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def output(self, name: str) -> dict[str, Any]:
        """Return the run.yaml output block called ``name``."""
        for out in self.info.get("outputs", []):
            if out["name"] == name:
                return out
        raise RunError(f"run {self.path}: no output named {name!r} in {RUN_YAML}")

    def load_model(self, compile: bool = False) -> Any:
        """Return the Keras model of the run (not compiled unless asked)."""
        import keras

        return keras.models.load_model(self.path / MODEL, compile=compile)

    def samples(self) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Return (train_faces, heldout_faces, heldout_labels) from RUN/samples."""
        folder = self.path / SAMPLES
        try:
            labels = np.load(folder / HELDOUT_LABELS)
            return (np.load(folder / TRAIN_FACES), np.load(folder / HELDOUT_FACES),
                    {k: labels[k] for k in labels.files})
        except OSError as exc:
            raise RunError(f"run {self.path}: cannot read samples ({exc})") from None

    def save_info(self) -> None:
        """Rewrite run.yaml from ``info``."""
        write_yaml(self.path / RUN_YAML, self.info)


def write_run(folder: str | Path, model: Any, info: Mapping[str, Any], train_faces: np.ndarray,
              heldout_faces: np.ndarray, heldout_labels: Mapping[str, np.ndarray]) -> Run:
    """Write model.keras, run.yaml and samples/ into ``folder``; return the Run.

    ``info`` holds the manifest fields (name, task, version, input, crop, outputs, metrics)
    plus data/training/history/seed; created and schema are filled in when absent. The
    manifest part is validated with edge's own parser so the converters can rely on it.
    """
    path = Path(folder)
    (path / SAMPLES).mkdir(parents=True, exist_ok=True)
    data = dict(info)
    data.setdefault("schema", 1)
    data.setdefault("created", now_utc())
    data.setdefault("version", "0.1.0")
    try:
        parse_manifest(_plain(data), f"{path}/{RUN_YAML}")
    except BundleError as exc:
        raise RunError(str(exc)) from None
    if train_faces.dtype != np.uint8 or heldout_faces.dtype != np.uint8:
        raise RunError("samples must be uint8 RGB crops")
    if model is not None:
        model.save(path / MODEL)
    np.save(path / SAMPLES / TRAIN_FACES, train_faces)
    np.save(path / SAMPLES / HELDOUT_FACES, heldout_faces)
    np.savez_compressed(path / SAMPLES / HELDOUT_LABELS, **{k: np.asarray(v) for k, v in heldout_labels.items()})
    write_yaml(path / RUN_YAML, data)
    return Run(path, _plain(data))


def read_run(folder: str | Path, need_model: bool = True) -> Run:
    """Return the Run in ``folder``; RunError names the missing file or bad field."""
    path = Path(folder)
    if not path.is_dir():
        raise RunError(f"run {path}: no such folder")
    if need_model and not (path / MODEL).is_file():
        raise RunError(f"run {path}: {MODEL} is missing (did the fit finish?)")
    try:
        info = yaml.safe_load((path / RUN_YAML).read_text(encoding="utf-8"))
    except OSError:
        raise RunError(f"run {path}: {RUN_YAML} is missing") from None
    except yaml.YAMLError as exc:
        raise RunError(f"run {path}: {RUN_YAML} is not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(info, dict):
        raise RunError(f"run {path}: {RUN_YAML} is not a mapping")
    for key in ("name", "task", "input", "outputs"):
        if key not in info:
            raise RunError(f"run {path}: {RUN_YAML} has no '{key}'")
    return Run(path, info)


def update_run(run: Run, **sections: Any) -> None:
    """Merge ``sections`` (e.g. metrics=..., outputs=...) into run.yaml and rewrite it."""
    for key, value in sections.items():
        if isinstance(value, Mapping) and isinstance(run.info.get(key), Mapping):
            run.info[key] = {**run.info[key], **_plain(value)}
        else:
            run.info[key] = _plain(value)
    run.save_info()

