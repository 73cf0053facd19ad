"""Masked per-head losses and their weighting for multi-task training on mixed data sets.

A sample carries only the labels of its source (UTKFace: age, gender, ethnicity; FER: emotion).
Missing labels are NaN (regression) or -1 (class heads); each head's loss is the mean over the
samples that have its label, and 0 when the batch has none. Two ways to combine the heads:

- :class:`FixedWeighting`: ``sum_i w_i * L_i`` with hand-set weights;
- :class:`UncertaintyWeighting`: learned homoscedastic uncertainty (Kendall, Gal & Cipolla,
  CVPR 2018): with ``s_i = log sigma_i^2`` a trainable scalar per head,
  ``sum_i c_i * exp(-s_i) * L_i + s_i / 2`` where ``c_i`` = 1/2 for regression (Gaussian
  likelihood) and 1 for classification (softmax/Bernoulli likelihood).
"""
from __future__ import annotations

from typing import Mapping, Optional

import keras
from keras import ops

REGRESSION, BINARY, CATEGORICAL = "regression", "sigmoid", "softmax"
_EPS = 1e-7


def _masked_mean(values: "keras.KerasTensor", mask: "keras.KerasTensor") -> "keras.KerasTensor":
    mask = ops.cast(mask, values.dtype)
    return ops.sum(values * mask) / ops.maximum(ops.sum(mask), 1.0)


def masked_huber(y_true, y_pred, scale: float = 10.0, delta: float = 1.0):
    """Return the Huber loss of (pred - true) / ``scale`` over samples whose label is not NaN (scalar)."""
    y_true = ops.reshape(ops.cast(y_true, "float32"), (-1,))
    y_pred = ops.reshape(ops.cast(y_pred, "float32"), (-1,))
    mask = ops.logical_not(ops.isnan(y_true))
    safe = ops.where(mask, y_true, y_pred)  # NaN labels must not reach the gradient
    err = ops.abs(safe - y_pred) / scale
    huber = ops.where(err <= delta, 0.5 * ops.square(err), delta * (err - 0.5 * delta))
    return _masked_mean(huber, mask)


def masked_binary_crossentropy(y_true, y_pred, label_smoothing: float = 0.0):
    """Return the binary cross-entropy of probabilities over labels that are 0 or 1 (-1 = missing; scalar)."""
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.reshape(ops.cast(y_pred, "float32"), ops.shape(y_true))
    mask = y_true >= 0
    target = ops.where(mask, y_true, 0.0)
    if label_smoothing:
        target = target * (1.0 - label_smoothing) + 0.5 * label_smoothing
    p = ops.clip(y_pred, _EPS, 1.0 - _EPS)
    bce = -(target * ops.log(p) + (1.0 - target) * ops.log(1.0 - p))
    return _masked_mean(bce, mask)


def masked_categorical_crossentropy(y_true, y_pred, label_smoothing: float = 0.0):
    """Return the cross-entropy of softmax probabilities over integer labels >= 0 (-1 = missing; scalar)."""
    labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
    classes = ops.shape(y_pred)[-1]
    mask = labels >= 0
    onehot = ops.one_hot(ops.where(mask, labels, 0), classes)
    if label_smoothing:
        onehot = onehot * (1.0 - label_smoothing) + label_smoothing / ops.cast(classes, "float32")
    logp = ops.log(ops.clip(ops.cast(y_pred, "float32"), _EPS, 1.0))
    ce = -ops.sum(onehot * logp, axis=-1)
    return _masked_mean(ce, mask)


def head_loss(kind: str, y_true, y_pred, label_smoothing: float = 0.0, age_scale: float = 10.0,
              age_delta: float = 1.0):
    """Return the masked loss of one head of ``kind`` (regression | sigmoid | softmax).

    Regression is Huber on (pred - true) / ``age_scale`` with ``age_delta``: 1.0 is quadratic up
    to 10 years (it fits the mean age of a look), a small delta is close to L1 (the median, which
    is what a mean absolute error rewards).
    """
    if kind == REGRESSION:
        return masked_huber(y_true, y_pred, scale=age_scale, delta=age_delta)
    if kind == BINARY:
        return masked_binary_crossentropy(y_true, y_pred, label_smoothing)
    if kind == CATEGORICAL:
        return masked_categorical_crossentropy(y_true, y_pred, label_smoothing)
    raise ValueError(f"no masked loss for output kind {kind!r}")


class FixedWeighting(keras.layers.Layer):
    """``total = sum_i w_i * L_i`` with fixed weights (heads without a weight count 1)."""

    def __init__(self, kinds: Mapping[str, str], weights: Optional[Mapping[str, float]] = None, **kwargs):
        super().__init__(**kwargs)
        self.kinds = dict(kinds)
        self.fixed = {name: float((weights or {}).get(name, 1.0)) for name in self.kinds}

    def call(self, losses: Mapping[str, "keras.KerasTensor"]) -> "keras.KerasTensor":
        """Return the weighted sum of the per-head losses."""
        return sum(self.fixed[name] * losses[name] for name in self.kinds)

    def weights_now(self) -> dict[str, float]:
        """Return the effective weight of each head."""
        return dict(self.fixed)


class UncertaintyWeighting(keras.layers.Layer):
    """Kendall et al. (2018) learned task weighting: one trainable ``log sigma^2`` per head."""

    def __init__(self, kinds: Mapping[str, str], initial_log_var: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.kinds = dict(kinds)
        self.log_vars = {name: self.add_weight(name=f"log_var_{name}", shape=(),
                                               initializer=keras.initializers.Constant(initial_log_var),
                                               trainable=True)
                         for name in self.kinds}

    def call(self, losses: Mapping[str, "keras.KerasTensor"]) -> "keras.KerasTensor":
        """Return ``sum_i c_i exp(-s_i) L_i + s_i / 2`` (c = 1/2 for regression, 1 otherwise)."""
        total = 0.0
        for name, kind in self.kinds.items():
            s = self.log_vars[name]
            c = 0.5 if kind == REGRESSION else 1.0
            total = total + c * ops.exp(-s) * losses[name] + 0.5 * s
        return total

    def weights_now(self) -> dict[str, float]:
        """Return the current effective weight ``c_i exp(-s_i)`` of each head."""
        out = {}
        for name, kind in self.kinds.items():
            c = 0.5 if kind == REGRESSION else 1.0
            out[name] = float(c * ops.convert_to_numpy(ops.exp(-self.log_vars[name])))
        return out


def make_weighting(mode: str, kinds: Mapping[str, str],
                   fixed_weights: Optional[Mapping[str, float]] = None) -> keras.layers.Layer:
    """Return the weighting layer for ``mode`` = "fixed" or "uncertainty"."""
    if mode == "fixed":
        return FixedWeighting(kinds, fixed_weights, name="loss_weighting")
    if mode == "uncertainty":
        return UncertaintyWeighting(kinds, name="loss_weighting")
    raise ValueError(f"--weighting {mode!r} is not 'fixed' or 'uncertainty'")
