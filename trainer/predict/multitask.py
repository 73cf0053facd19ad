"""Age, gender, emotion and ethnicity of the largest face in a photo, as the device computes them.

    >>> from trainer.predict.multitask import predict
    >>> predict("photo.jpg")                       # the shipped int8 bundle models/multitask
    {'face_found': True, 'box': [112, 80, 160, 160],
     'age': {'value': 31.4, 'unit': 'years', 'group': '30-39'},
     'gender': {'label': 'female', 'confidence': 0.97, 'probabilities': {'female': 0.97, 'male': 0.03},
                'score': 0.95, 'threshold': 0.42},
     'emotion': {'label': 'happy', 'confidence': 0.87, 'probabilities': {'angry': 0.01, ...}},
     'ethnicity': {'label': 'white', 'confidence': 0.82, 'probabilities': {'white': 0.82, ...}}}

Age is one regressed number (no confidence: the model gives none). Gender's label is the device's
decision at the manifest threshold and its probabilities are the score re-centred on that threshold
(:mod:`trainer.predict.heads`), so the chosen class's confidence is at least 0.5.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .predictor import SHIPPED, Image, predictor_for

DEFAULT_MODEL = SHIPPED / "multitask"


def predict(image: Image, model: str | Path = DEFAULT_MODEL) -> dict[str, Any]:
    """Return the largest face's {"face_found", "box", "age", "gender", "emotion", "ethnicity"} (as above)
    for an image path or BGR array; ``model``: a multitask bundle or RUN folder. No face: {"face_found": False, "box": None}."""
    return predictor_for(model, "multitask").predict(image)
