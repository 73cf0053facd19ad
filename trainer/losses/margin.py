"""Additive-margin softmax heads for identity training: ArcFace (angular) and CosFace (cosine).

``MarginLogits`` holds one unit-norm weight vector per identity and returns scaled cosine
logits with the margin applied to the true class only (Deng et al. 2019, ArcFace:
``s * cos(theta + m)``; Wang et al. 2018, CosFace: ``s * (cos(theta) - m)``). Feed them to a
sparse categorical cross-entropy from logits. The layer is used in training only: the
exported embedder ends at the L2-normalised embedding. :func:`cosine_distillation_loss` is
the distance to a teacher's descriptor.
"""
from __future__ import annotations

import math

import keras
from keras import ops

MARGIN_KINDS = ("arcface", "cosface")


@keras.saving.register_keras_serializable(package="face_edge")
class MarginLogits(keras.layers.Layer):
    """``[embedding (B, D), labels (B,)] -> logits (B, classes)`` with an ArcFace or CosFace margin.

    Rows with label -1 (unlabelled faces) get plain scaled cosines; mask them out of the loss.
    """

    def __init__(self, classes: int, kind: str = "arcface", scale: float = 30.0, margin: float = 0.5,
                 **kwargs):
        super().__init__(**kwargs)
        if kind not in MARGIN_KINDS:
            raise ValueError(f"margin kind {kind!r} is not one of {MARGIN_KINDS}")
        self.classes = int(classes)
        self.kind = kind
        self.scale = float(scale)
        self.margin = float(margin)

    def build(self, input_shape):
        dim = int(input_shape[0][-1])
        self.centres = self.add_weight(name="centres", shape=(dim, self.classes),
                                       initializer="glorot_uniform", trainable=True)

    def call(self, inputs):
        embedding, labels = inputs
        x = embedding / ops.maximum(ops.norm(embedding, axis=-1, keepdims=True), 1e-12)
        w = self.centres / ops.maximum(ops.norm(self.centres, axis=0, keepdims=True), 1e-12)
        cos = ops.clip(ops.matmul(x, w), -1.0 + 1e-7, 1.0 - 1e-7)
        labels = ops.cast(ops.reshape(labels, (-1,)), "int32")
        onehot = ops.one_hot(ops.maximum(labels, 0), self.classes) * ops.cast(
            ops.expand_dims(labels >= 0, -1), cos.dtype)
        if self.kind == "arcface":
            sin = ops.sqrt(ops.maximum(1.0 - cos * cos, 0.0))
            target = cos * math.cos(self.margin) - sin * math.sin(self.margin)
            # Past theta = pi - m, cos(theta + m) stops decreasing; use the CosFace-style fallback there.
            threshold = math.cos(math.pi - self.margin)
            target = ops.where(cos > threshold, target, cos - math.sin(math.pi - self.margin) * self.margin)
        else:
            target = cos - self.margin
        return self.scale * (onehot * target + (1.0 - onehot) * cos)

    def get_config(self):
        config = super().get_config()
        config.update(classes=self.classes, kind=self.kind, scale=self.scale, margin=self.margin)
        return config


def masked_margin_loss(labels, logits):
    """Return the mean sparse cross-entropy of margin logits over rows whose label is >= 0 (0 when none)."""
    labels = ops.cast(ops.reshape(labels, (-1,)), "int32")
    valid = ops.cast(labels >= 0, "float32")
    ce = keras.losses.sparse_categorical_crossentropy(ops.maximum(labels, 0), logits, from_logits=True)
    return ops.sum(ce * valid) / ops.maximum(ops.sum(valid), 1.0)


def cosine_distillation_loss(teacher, student):
    """Return the mean cosine distance 1 - cos(teacher_i, student_i) (rows of zeros in teacher are skipped)."""
    t_norm = ops.norm(teacher, axis=-1)
    valid = ops.cast(t_norm > 1e-6, "float32")
    t = teacher / ops.maximum(ops.expand_dims(t_norm, -1), 1e-12)
    s = student / ops.maximum(ops.norm(student, axis=-1, keepdims=True), 1e-12)
    dist = 1.0 - ops.sum(t * s, axis=-1)
    return ops.sum(dist * valid) / ops.maximum(ops.sum(valid), 1.0)
