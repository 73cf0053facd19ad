"""One look at one face: every loaded model run once on its own input, the embedding matched.

The live loop (edge.pipeline) takes a look at a tracked face when it is due; the image API
(edge.api, ``face-edge recognize``) takes one look at each face of a photo. Both call
:func:`look_at`, so a face gets the same answers in both.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import numpy as np

from .align import AlignmentError, FaceInputs, Landmarker
from .crop import Box
from .models import FaceModel, Prediction


@dataclass
class Look:
    """What one look at a face gave: each model's prediction, the embedding and its gallery match."""

    predictions: list[Prediction] = field(default_factory=list)
    vector: Optional[np.ndarray] = None         # the embedding model's vector (edge.distance)
    match: Any = None                           # edge.gallery.Match when a gallery is open
    points: Optional[np.ndarray] = None         # five landmarks (frame pixels) when an aligned model ran
    skipped: dict[str, str] = field(default_factory=dict)   # model -> why it could not look (alignment)
    failed: dict[str, str] = field(default_factory=dict)    # model -> error (a broken model)


def landmarker_of(models: Mapping[str, FaceModel]) -> Optional[Landmarker]:
    """Return a Landmarker on the first model of task ``landmarks`` (what aligned crops need), or None."""
    for model in models.values():
        if model.task == "landmarks":
            return Landmarker(model)
    return None


def embedding_model(models: Mapping[str, FaceModel]) -> Optional[FaceModel]:
    """Return the first model whose task is ``embedding`` (the one recognition uses), or None."""
    for model in models.values():
        if model.task == "embedding":
            return model
    return None


def look_at(frame: np.ndarray, box: Box, models: Mapping[str, FaceModel], landmarker: Optional[Landmarker] = None,
            gallery: Any = None, skip: frozenset[str] = frozenset()) -> Look:
    """Return the Look of the face in ``box``: every model but the landmarks (which only align) and those
    in ``skip`` runs once; the embedding is matched against ``gallery`` when one is given and the face is
    at least ``gallery.min_face_px`` wide (a narrower one is listed in ``skipped`` under "recognition").

    A model whose input cannot be made (alignment) is listed in ``skipped``; one that raises is
    listed in ``failed`` under its own name, or under the landmarks model's when that one broke.
    """
    look = Look()
    inputs = FaceInputs(frame, box, landmarker)
    embedder = embedding_model(models)
    for name, model in models.items():
        if name in skip or model.task == "landmarks":
            continue
        try:
            prediction = model.predict(inputs.crop(model.manifest.crop))
        except AlignmentError as exc:
            look.skipped[name] = str(exc)
            continue
        except Exception as exc:  # one broken model must not stop the others
            culprit = name
            if landmarker is not None and model.manifest.crop.aligned and not inputs.has_points:
                culprit = landmarker.model.name
            look.failed[culprit] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            continue
        look.predictions.append(prediction)
        if model is embedder:
            look.vector = next((h.vector for h in prediction.heads.values() if h.vector is not None), None)
            if look.vector is not None and gallery is not None:
                smallest = int(getattr(gallery, "min_face_px", 0))
                if box[2] < smallest:
                    look.skipped["recognition"] = (f"face {int(box[2])} px wide, under recognition.min_face_px "
                                                   f"{smallest}: too small to name")
                else:
                    look.match = gallery.match(look.vector)
    if inputs.has_points:
        look.points = inputs.points()
    return look
