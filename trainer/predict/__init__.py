"""Predictions of any face model on photos, as the device makes them: ``face-train predict`` and one ``predict(image)`` per task.

    from trainer.predict import attributes, embedding, landmarks, multitask
    multitask.predict("photo.jpg")        # the shipped models/multitask bundle; model=... for another bundle or RUN

Modules: :mod:`.predictor` (a bundle or RUN plus edge's image API: detection, crops, alignment),
:mod:`.keras_model` (a RUN's Keras model behind edge's FaceModel interface), :mod:`.heads` (each
output kind as a dict and as CSV columns: every probability, score, value, vector digest and
point), :mod:`.table` (a folder of photos -> CSV rows and the summary line), and one module per
task whose ``predict(image)`` documents what it returns.
"""
from __future__ import annotations

from .predictor import Predictor, predict, predictor_for

__all__ = ["Predictor", "predict", "predictor_for"]
