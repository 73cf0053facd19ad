"""The five landmarks of the largest face in a photo (dlib's 5-point order), in image pixels, as the device aligns faces.

    >>> from trainer.predict.landmarks import predict
    >>> predict("photo.jpg")                       # the models/landmarks bundle
    {'face_found': True, 'box': [112, 80, 160, 160],
     'landmarks': {'points': [[231.5, 141.0], [204.2, 143.1], [150.7, 140.9], [176.0, 143.3], [190.4, 191.8]]}}

The points are the outer and inner corner of the eye on the image's right, then of the other eye,
then the bottom of the nose (edge.align). ``skipped`` replaces them when the face cannot be
aligned (smaller than 20 px, or points off the face).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .predictor import SHIPPED, Image, predictor_for

DEFAULT_MODEL = SHIPPED / "landmarks"


def predict(image: Image, model: str | Path = DEFAULT_MODEL) -> dict[str, Any]:
    """Return the largest face's {"face_found", "box", "landmarks": {"points": 5 x [x, y]}} for an image path
    or BGR array; ``model``: a landmarks bundle or RUN folder. No face: {"face_found": False, "box": None}."""
    return predictor_for(model, "landmarks").predict(image)
