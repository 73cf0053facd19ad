"""A model (bundle or training RUN) and the edge image API that finds and crops faces for it.

Faces are found and cut exactly as ``face-edge recognize`` does (:class:`edge.api.Analyzer`:
Haar at full resolution with ``edge.detect.PhotoDetector``, each model's crop through
``edge.look.look_at``, aligned crops from a landmarks bundle), so a bundle's predictions are
the device's. A RUN folder's Keras model (:class:`KerasFaceModel`) is looked at on the same
crops, so a run and its bundle are compared on equal terms.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from edge.align import AlignmentError
from edge.api import Analyzer, load_image
from edge.bundle import MANIFEST, Manifest
from edge.config import Settings, load_settings
from edge.crop import Box, whole_image_box
from edge.errors import BundleError

from ..errors import DataError
from . import heads
from .keras_model import KerasFaceModel, is_run

SHIPPED = Path(__file__).resolve().parents[2] / "models"
NO_FACE = ("skip", "whole")

Image = Union[str, Path, np.ndarray]


def load_face_model(folder: str | Path, settings: Settings) -> Any:
    """Return the model in ``folder``: an edge FaceModel for a bundle (checked and loaded as the device
    loads it, with ``settings.models``' runtime, threads, views and public key) or a KerasFaceModel for a RUN."""
    path = Path(folder)
    if is_run(path):
        return KerasFaceModel(path, views=settings.models.views)
    if not (path / MANIFEST).is_file():
        raise DataError(f"{path}: neither a bundle (no {MANIFEST}) nor a training run (no run.yaml)")
    from edge.pipeline import load_models

    models, errors = load_models(settings, [str(path.resolve())])
    if errors:
        raise BundleError(errors[0])
    return next(iter(models.values()))


def landmarks_folder(model_dir: Path, given: Optional[str | Path]) -> Path:
    """Return the landmarks bundle (or RUN) for a model with an aligned crop: ``given``, else a
    ``landmarks`` folder beside the model, else the shipped models/landmarks; DataError when none exists."""
    if given is not None:
        if not Path(given).is_dir():
            raise DataError(f"--landmarks {given}: no such folder")
        return Path(given)
    for candidate in (model_dir.parent / "landmarks", SHIPPED / "landmarks"):
        if (candidate / MANIFEST).is_file():
            return candidate
    raise DataError(f"{model_dir}: its crop is 'aligned', which needs a landmarks bundle: give --landmarks FOLDER")


class Predictor:
    """``faces(image)`` returns every face's result dict, ``predict(image)`` the largest face's."""

    def __init__(self, model: str | Path, landmarks: Optional[str | Path] = None,
                 settings: Optional[Settings] = None, no_face: str = "skip"):
        if no_face not in NO_FACE:
            raise DataError(f"no_face must be one of {', '.join(NO_FACE)}, not {no_face!r}")
        settings = settings or Settings()
        self.model = load_face_model(model, settings)
        models = {self.model.name: self.model}
        if self.manifest.crop.aligned and self.task != "landmarks":
            folder = landmarks_folder(Path(model), landmarks)
            marker = load_face_model(folder, settings)
            if marker.task != "landmarks":
                raise DataError(f"{folder}: its task is {marker.task}, not landmarks")
            models[marker.name if marker.name not in models else f"{marker.name} (landmarks)"] = marker
        self.analyzer = Analyzer(settings, models)
        self.no_face = no_face

    @property
    def manifest(self) -> Manifest:
        """Return the model's manifest (a bundle's manifest.yaml, or a run's run.yaml parsed the same way)."""
        return self.model.manifest

    @property
    def task(self) -> str:
        """Return the model's task (attributes, multitask, embedding, distortion, landmarks)."""
        return self.model.task

    def faces(self, image: Image, largest: bool = False) -> list[dict[str, Any]]:
        """Return one result dict per face of an image (path or BGR uint8 array), largest first
        (``largest``: only the largest face's).

        Each dict: ``face_found`` (Haar found it), ``box`` [x, y, w, h] in image pixels, one entry per
        model output (:func:`trainer.predict.heads.describe`), ``landmarks`` when the face was aligned
        (or the model is a landmarks model), and ``skipped`` (why the model could not look at the
        face, e.g. too small to align) instead of the outputs. No face: [] (``no_face="skip"``) or one
        result for the whole image taken as the face, with face_found False (``no_face="whole"``).
        """
        bgr = load_image(image) if isinstance(image, (str, Path)) else image
        boxes = self.analyzer.face_locations(bgr)
        found = bool(boxes)
        if not boxes and self.no_face == "whole":
            spec = self.analyzer.landmarker.spec if self.manifest.crop.aligned else self.manifest.crop
            boxes = [whole_image_box(bgr, spec)]
        return [self._face(bgr, box, found) for box in (boxes[:1] if largest else boxes)]

    def predict(self, image: Image) -> dict[str, Any]:
        """Return the largest face's result dict (see :meth:`faces`); ``{"face_found": False, "box": None}``
        when there is none."""
        found = self.faces(image, largest=True)
        return found[0] if found else {"face_found": False, "box": None}

    def _face(self, image: np.ndarray, box: Box, found: bool) -> dict[str, Any]:
        result: dict[str, Any] = {"face_found": found, "box": [int(v) for v in box]}
        if self.task == "landmarks":
            try:
                result["landmarks"] = heads.points_dict(self.analyzer.landmarker.points(image, box))
            except AlignmentError as exc:
                result["skipped"] = str(exc)
            return result
        face = self.analyzer.analyze(image, [box])[0]
        prediction = next((p for p in face.predictions if p.model == self.model.name), None)
        if prediction is None:
            result["skipped"] = face.skipped.get(self.model.name, "the model did not look at this face")
            return result
        for spec in self.manifest.outputs:
            result[spec.name] = heads.describe(spec, prediction.heads[spec.name])
        if face.landmarks is not None:
            result["landmarks"] = heads.points_dict(face.landmarks)
        return result

    def header(self) -> list[str]:
        """Return the CSV columns this model's faces always have (see :func:`trainer.predict.heads.header`)."""
        return heads.header([] if self.task == "landmarks" else self.manifest.outputs)

    def columns(self, result: dict[str, Any], vectors: bool = False) -> dict[str, Any]:
        """Return {CSV column: value} of one face's result dict (``vectors``: every embedding component)."""
        row: dict[str, Any] = {}
        if self.task != "landmarks":
            for spec in self.manifest.outputs:
                if spec.name in result:
                    row.update(heads.columns(spec, result[spec.name], vectors))
        if result.get("landmarks"):
            row.update(heads.point_columns(result["landmarks"]["points"]))
        return row


@lru_cache(maxsize=8)
def _cached(model: str, landmarks: Optional[str], config: Optional[str]) -> Predictor:
    return Predictor(model, landmarks, load_settings(config) if config else None)


def predictor_for(model: str | Path, task: Optional[str] = None, landmarks: Optional[str | Path] = None,
                  config: Optional[str | Path] = None) -> Predictor:
    """Return the (cached) Predictor of a bundle or RUN folder; DataError when it is not a ``task`` model.

    ``config``: an edge.yaml whose detector and models settings (runtime, threads, views, public key)
    are used, as on the device; default: the built-in defaults.
    """
    predictor = _cached(str(Path(model).resolve()), None if landmarks is None else str(landmarks),
                        None if config is None else str(config))
    if task is not None and predictor.task != task:
        raise DataError(f"{model}: its task is {predictor.task}, not {task}")
    return predictor


def predict(image: Image, model: str | Path, landmarks: Optional[str | Path] = None) -> dict[str, Any]:
    """Return the largest face's result dict of any model (bundle or RUN); see :meth:`Predictor.faces`."""
    return predictor_for(model, landmarks=landmarks).predict(image)
