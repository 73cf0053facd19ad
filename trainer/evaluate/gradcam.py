"""Grad-CAM: which part of the face drove one output of a model built by trainer.nets."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import cv2
import keras
import numpy as np
import tensorflow as tf

from .gallery import prediction_gallery


def _feature_tensor(model: keras.Model) -> keras.KerasTensor:
    try:
        return model.get_layer("pool").input  # the backbone's last feature map
    except ValueError:
        for layer in reversed(model.layers):
            shape = getattr(layer, "output", None)
            if shape is not None and len(layer.output.shape) == 4:
                return layer.output
    raise ValueError("model has no 4-D feature map for Grad-CAM")


_GRAD_MODELS: dict[int, keras.Model] = {}


def _grad_model(model: keras.Model) -> keras.Model:
    key = id(model)
    if key not in _GRAD_MODELS:
        _GRAD_MODELS[key] = keras.Model(model.inputs, [_feature_tensor(model), model.output])
    return _GRAD_MODELS[key]


def gradcam_with_scores(model: keras.Model, images: np.ndarray, output: Optional[str] = None,
                        index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return (N x H x W heatmaps in [0, 1], N output values) of one unit for ``images`` (0..255 RGB).

    ``output`` names the model output (first one when None); ``index`` is the unit of that
    output (e.g. the attribute's column). The heatmap shows the regions whose features push
    the unit's logit towards the decision taken (towards "yes" when p >= 0.5, else "no").
    """
    x = tf.convert_to_tensor(np.asarray(images, np.float32))
    with tf.GradientTape() as tape:
        fmap, outs = _grad_model(model)(x, training=False)
        y = outs[output] if isinstance(outs, dict) and output else (
            next(iter(outs.values())) if isinstance(outs, dict) else outs)
        y = tf.reshape(y, (tf.shape(y)[0], -1))[:, index]
        logit = tf.math.log(tf.clip_by_value(y, 1e-6, 1.0)) - tf.math.log(tf.clip_by_value(1.0 - y, 1e-6, 1.0))
        # Explain the decision taken: evidence for "yes" when p >= 0.5, for "no" otherwise.
        score = tf.where(y >= 0.5, logit, -logit)
    grads = tape.gradient(score, fmap)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * fmap, axis=-1)).numpy()
    h, w = images.shape[1:3]
    out = np.zeros((len(images), h, w), np.float32)
    for i, c in enumerate(cam):
        c = c / c.max() if c.max() > 0 else c
        out[i] = cv2.resize(c, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    return out, y.numpy()


def gradcam(model: keras.Model, images: np.ndarray, output: Optional[str] = None, index: int = 0) -> np.ndarray:
    """Return N x H x W Grad-CAM heatmaps in [0, 1] (see :func:`gradcam_with_scores`)."""
    return gradcam_with_scores(model, images, output, index)[0]


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Return the RGB uint8 image blended with a jet-coloured heatmap."""
    colour = cv2.applyColorMap((heatmap * 255).astype(np.uint8), cv2.COLORMAP_JET)[:, :, ::-1]
    return (image.astype(np.float32) * (1 - alpha) + colour * alpha).clip(0, 255).astype(np.uint8)


def gradcam_figure(model: keras.Model, images: np.ndarray, path: str | Path, output: Optional[str],
                   index: int, label: str, true_text: Sequence[str]) -> Path:
    """Write a grid of faces with their Grad-CAM overlay for one label; return the PNG path."""
    heat, probs = gradcam_with_scores(model, images, output, index)
    tiles = np.stack([overlay(np.asarray(img, np.uint8), h) for img, h in zip(images, heat)])
    both = np.concatenate([np.stack([np.asarray(i, np.uint8) for i in images]), tiles])
    titles_true = list(true_text) + [f"Grad-CAM: why {'yes' if p >= 0.5 else 'no'}" for p in probs]
    titles_pred = [f"p({label})={p:.2f}" for p in probs] * 2
    return prediction_gallery(both, titles_true, titles_pred, path, cols=len(images))
