"""Multi-label losses for sigmoid attribute heads. Targets of -1 mean "missing" and are ignored.

- :class:`MaskedBCE`: plain binary cross-entropy averaged over known labels.
- :class:`WeightedBCE`: class-weighted BCE; positives weigh 0.5/p and negatives 0.5/(1-p)
  with p the training positive rate (clipped), so rare attributes are not ignored.
- :class:`CorrelationWeightedBCE`: BCE plus a penalty on errors made together on correlated
  attributes: ``lam * sum_jk |C_jk| e_j e_k / L^2`` with e = |y - p| and C the attribute
  correlation matrix of the training labels (diagonal zeroed). It pushes the predictions
  of e.g. Male / Goatee / Heavy_Makeup to be wrong less often at the same time.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import keras
import numpy as np
from keras import ops

EPS = 1e-6


def _bce(y: Any, p: Any) -> Any:
    p = ops.clip(p, EPS, 1.0 - EPS)
    return -(y * ops.log(p) + (1.0 - y) * ops.log(1.0 - p))


def _mask(y_true: Any) -> tuple[Any, Any]:
    y_true = ops.cast(y_true, "float32")
    known = ops.cast(ops.greater_equal(y_true, 0.0), "float32")
    return ops.maximum(y_true, 0.0), known


@keras.saving.register_keras_serializable(package="face_edge")
class MaskedBCE(keras.losses.Loss):
    """Binary cross-entropy over the known (>= 0) targets."""

    def __init__(self, name: str = "masked_bce", **kwargs: Any):
        super().__init__(name=name, **kwargs)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y, known = _mask(y_true)
        loss = _bce(y, y_pred) * known
        return ops.sum(loss, axis=-1) / ops.maximum(ops.sum(known, axis=-1), 1.0)


@keras.saving.register_keras_serializable(package="face_edge")
class WeightedBCE(keras.losses.Loss):
    """Class-weighted BCE with per-label positive/negative weights from the training positive rates."""

    def __init__(self, positive_rate: Sequence[float], clip: float = 0.02, name: str = "weighted_bce",
                 **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self.positive_rate = [float(v) for v in positive_rate]
        self.clip = float(clip)
        p = np.clip(np.asarray(self.positive_rate, np.float32), clip, 1.0 - clip)
        self._w_pos = (0.5 / p).astype(np.float32)
        self._w_neg = (0.5 / (1.0 - p)).astype(np.float32)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y, known = _mask(y_true)
        weight = y * self._w_pos + (1.0 - y) * self._w_neg
        loss = _bce(y, y_pred) * weight * known
        return ops.sum(loss, axis=-1) / ops.maximum(ops.sum(known, axis=-1), 1.0)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "positive_rate": self.positive_rate, "clip": self.clip}


@keras.saving.register_keras_serializable(package="face_edge")
class CorrelationWeightedBCE(keras.losses.Loss):
    """BCE plus ``lam`` times the correlation-weighted product of simultaneous label errors."""

    def __init__(self, correlation: Sequence[Sequence[float]], lam: float = 1.0,
                 name: str = "correlation_bce", **kwargs: Any):
        super().__init__(name=name, **kwargs)
        corr = np.abs(np.nan_to_num(np.asarray(correlation, np.float32)))
        np.fill_diagonal(corr, 0.0)
        self.correlation = corr.tolist()
        self.lam = float(lam)
        self._corr = corr

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y, known = _mask(y_true)
        bce = ops.sum(_bce(y, y_pred) * known, axis=-1) / ops.maximum(ops.sum(known, axis=-1), 1.0)
        err = ops.abs(y - y_pred) * known
        pair = ops.sum(ops.matmul(err, self._corr) * err, axis=-1)
        # Divided by L so the pair term is per label, on the scale of the mean BCE.
        return bce + self.lam * pair / float(self._corr.shape[0])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "correlation": self.correlation, "lam": self.lam}


def masked_binary_accuracy(y_true: Any, y_pred: Any) -> Any:
    """Return the mean 0.5-threshold accuracy over known (>= 0) targets, per sample."""
    y, known = _mask(y_true)
    hit = ops.cast(ops.equal(ops.cast(y_pred >= 0.5, "float32"), y), "float32") * known
    return ops.sum(hit, axis=-1) / ops.maximum(ops.sum(known, axis=-1), 1.0)


def attribute_loss(kind: str, train_labels: np.ndarray, lam: float = 1.0) -> keras.losses.Loss:
    """Return the loss called ``kind`` (bce | weighted_bce | corr_bce) set up from N x L training labels."""
    from ..evaluate.classification import label_correlation

    labels = np.asarray(train_labels)
    if kind == "bce":
        return MaskedBCE()
    if kind == "weighted_bce":
        known = labels >= 0
        rate = np.where(known, labels, 0).sum(0) / np.maximum(known.sum(0), 1)
        return WeightedBCE(rate.tolist())
    if kind == "corr_bce":
        return CorrelationWeightedBCE(label_correlation(labels).tolist(), lam)
    raise ValueError(f"--loss {kind!r} is not one of bce, weighted_bce, corr_bce")


def prior_logits(train_labels: np.ndarray, clip: float = 1e-3) -> Optional[list[float]]:
    """Return log-odds of each label's training positive rate (the sigmoid head's starting bias)."""
    labels = np.asarray(train_labels, np.float64)
    known = labels >= 0
    rate = np.clip(np.where(known, labels, 0).sum(0) / np.maximum(known.sum(0), 1), clip, 1 - clip)
    return np.log(rate / (1 - rate)).tolist()
