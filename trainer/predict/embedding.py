"""The recognition embedding of the largest face in a photo: the unit vector the device matches against the gallery.

    >>> from trainer.predict.embedding import predict
    >>> predict("photo.jpg")                       # the shipped models/embedding bundle
    {'face_found': True, 'box': [112, 80, 160, 160],
     'embedding': {'vector': [0.031, -0.118, ...], 'digest': '3fa2c19d07be'},
     'landmarks': {'points': [[201.3, 130.8], ...]}}   # only for an aligned embedding model

An aligned model (crop kind 'aligned') needs a landmarks bundle: ``landmarks=`` names it, else
the ``landmarks`` folder beside the model, else the shipped models/landmarks. ``skipped`` replaces
the vector when the face cannot be aligned (e.g. smaller than 20 px).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from .predictor import SHIPPED, Image, predictor_for

DEFAULT_MODEL = SHIPPED / "embedding"


def predict(image: Image, model: str | Path = DEFAULT_MODEL, landmarks: Optional[str | Path] = None) -> dict[str, Any]:
    """Return the largest face's {"face_found", "box", "embedding": {"vector", "digest"}[, "landmarks"]} for an
    image path or BGR array; ``model``: an embedding bundle or RUN folder. No face: {"face_found": False, "box": None}."""
    return predictor_for(model, "embedding", landmarks).predict(image)
