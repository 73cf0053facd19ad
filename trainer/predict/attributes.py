"""CelebA attributes (Smiling, Eyeglasses, Male, ...) of the largest face in a photo, as the device computes them.

    >>> from trainer.predict.attributes import predict
    >>> predict("photo.jpg")                       # the shipped int8 bundle models/attributes
    {'face_found': True, 'box': [112, 80, 160, 160],
     'attributes': {'present': ['Male', 'No_Beard', 'Smiling', ...], 'shown': ['Male', 'No_Beard', 'Smiling', ...],
                    'scores': {'5_o_Clock_Shadow': 0.04, ...}, 'thresholds': {'5_o_Clock_Shadow': 0.5, ...}}}

``present``: labels whose sigmoid score reaches their threshold (tuned on validation, in the
manifest); ``shown``: those the device shows (the manifest marks the others unreliable).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .predictor import SHIPPED, Image, predictor_for

DEFAULT_MODEL = SHIPPED / "attributes"


def predict(image: Image, model: str | Path = DEFAULT_MODEL) -> dict[str, Any]:
    """Return the largest face's {"face_found", "box", "attributes": {"present", "shown", "scores", "thresholds"}}
    for an image path or BGR array; ``model``: an attributes bundle or RUN folder. No face: {"face_found": False, "box": None}."""
    return predictor_for(model, "attributes").predict(image)
