"""Masked per-head losses and their weighting, on tiny examples computed by hand."""
from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from trainer.losses.multitask import (FixedWeighting, UncertaintyWeighting, masked_binary_crossentropy,
                                      head_loss, masked_categorical_crossentropy, masked_huber)

NAN = float("nan")


def _f(x) -> float:
    return float(keras.ops.convert_to_numpy(x))


def test_masked_huber_ignores_missing_ages():
    # errors 10 y and 0 y (scale 10 -> 1.0 and 0.0); the NaN row is ignored: (0.5 * 1^2 + 0) / 2
    assert _f(masked_huber(np.array([10.0, NAN, 30.0]), np.array([[20.0], [50.0], [30.0]]))) == pytest.approx(0.25)
    # beyond delta the loss is linear: error 30 y -> 3.0 -> 3 - 0.5
    assert _f(masked_huber(np.array([0.0]), np.array([[30.0]]))) == pytest.approx(2.5)


def test_age_delta_turns_the_regression_loss_nearly_l1():
    # errors 20 y and 2 y (2.0 and 0.2 in units of 10 y); delta 0.1 is linear for both: 0.1 * (e - 0.05)
    true, pred = np.array([0.0, 40.0]), np.array([[20.0], [42.0]])
    assert _f(head_loss("regression", true, pred, age_delta=0.1)) == pytest.approx((0.195 + 0.015) / 2)
    assert _f(head_loss("regression", true, pred)) == pytest.approx((1.5 + 0.02) / 2)


def test_masked_bce_and_ce_match_hand_computation():
    bce = masked_binary_crossentropy(np.array([[1], [-1], [0]]), np.array([[0.8], [0.3], [0.4]]))
    assert _f(bce) == pytest.approx((-math.log(0.8) - math.log(0.6)) / 2, rel=1e-5)
    ce = masked_categorical_crossentropy(np.array([2, -1]), np.array([[0.2, 0.3, 0.5], [0.9, 0.05, 0.05]]))
    assert _f(ce) == pytest.approx(-math.log(0.5), rel=1e-5)
    smooth = masked_categorical_crossentropy(np.array([0]), np.array([[0.5, 0.25, 0.25]]), label_smoothing=0.3)
    expected = -(0.8 * math.log(0.5) + 0.1 * math.log(0.25) + 0.1 * math.log(0.25))
    assert _f(smooth) == pytest.approx(expected, rel=1e-5)


def test_all_missing_gives_zero_loss_and_finite_gradients():
    pred = tf.Variable([[0.3], [0.6]])
    with tf.GradientTape() as tape:
        total = (masked_huber(tf.constant([NAN, NAN]), pred * 100)
                 + masked_binary_crossentropy(tf.constant([[-1.0], [-1.0]]), pred))
    grad = tape.gradient(total, pred)
    assert _f(total) == 0.0
    assert np.all(np.isfinite(grad.numpy())) and np.all(grad.numpy() == 0)


def test_missing_labels_do_not_leak_nan_into_gradients():
    pred = tf.Variable([[20.0], [50.0]])
    with tf.GradientTape() as tape:
        loss = masked_huber(tf.constant([10.0, NAN]), pred)
    grad = tape.gradient(loss, pred).numpy()
    assert np.all(np.isfinite(grad)) and grad[1, 0] == 0 and grad[0, 0] > 0


KINDS = {"age": "regression", "gender": "sigmoid", "emotion": "softmax"}
LOSSES = {"age": 0.4, "gender": 0.2, "emotion": 1.5}


def test_fixed_weighting_is_the_weighted_sum():
    w = FixedWeighting(KINDS, {"age": 2.0, "emotion": 0.5})
    assert _f(w({k: tf.constant(v) for k, v in LOSSES.items()})) == pytest.approx(2 * 0.4 + 0.2 + 0.5 * 1.5)


def test_uncertainty_weighting_follows_kendall():
    w = UncertaintyWeighting(KINDS)
    losses = {k: tf.constant(v) for k, v in LOSSES.items()}
    # s = 0 everywhere: 1/2 L_age + L_gender + L_emotion
    assert _f(w(losses)) == pytest.approx(0.5 * 0.4 + 0.2 + 1.5, rel=1e-6)
    w.log_vars["emotion"].assign(math.log(3.0))
    assert _f(w(losses)) == pytest.approx(0.5 * 0.4 + 0.2 + 1.5 / 3 + 0.5 * math.log(3.0), rel=1e-6)
    assert w.weights_now()["emotion"] == pytest.approx(1 / 3, rel=1e-6)


def test_uncertainty_weights_are_learned_toward_the_loss_scale():
    # d/ds (exp(-s) L + s/2) = 0 at s = log(2L): a head with a larger loss gets a smaller weight.
    w = UncertaintyWeighting({"a": "softmax", "b": "softmax"})
    opt = keras.optimizers.SGD(0.2)
    losses = {"a": tf.constant(2.0), "b": tf.constant(0.25)}
    for _ in range(300):
        with tf.GradientTape() as tape:
            total = w(losses)
        grads = tape.gradient(total, w.trainable_weights)
        opt.apply_gradients(zip(grads, w.trainable_weights))
    assert _f(w.log_vars["a"]) == pytest.approx(math.log(4.0), abs=0.05)
    assert _f(w.log_vars["b"]) == pytest.approx(math.log(0.5), abs=0.05)


def test_loss_weights_option_sets_named_heads_and_refuses_unknown_ones():
    from trainer.errors import DataError
    from trainer.tasks.multitask import parse_loss_weights

    assert parse_loss_weights("emotion=2, gender=1.5") == {"age": 1.0, "gender": 1.5, "emotion": 2.0, "ethnicity": 1.0}
    assert parse_loss_weights("") == {"age": 1.0, "gender": 1.0, "emotion": 1.0, "ethnicity": 1.0}
    with pytest.raises(DataError, match="'smile' is not a head"):
        parse_loss_weights("smile=2")
    with pytest.raises(DataError, match="not head=number"):
        parse_loss_weights("emotion=lots")


def test_loss_weights_without_fixed_weighting_stops_before_reading_data(tmp_path, capsys):
    from trainer.cli import main as face_train

    code = face_train(["fit", "multitask", "--data", str(tmp_path), "--out", str(tmp_path / "run"),
                       "--loss-weights", "emotion=2"])
    assert code != 0
    assert "give --weighting fixed with it" in capsys.readouterr().err
