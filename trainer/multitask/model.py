"""The multi-task network: one MobileNet trunk, four heads, and the wrapper that trains it.

:func:`build_models` returns three views that share their layers:

- ``full``: 0..255 RGB image -> {"age", "gender", "emotion", "ethnicity"} (what ships);
- ``lower``: image -> the feature map at ``cut`` (the frozen ImageNet part, cached once);
- ``top``: that feature map -> the four outputs (the part that is trained).

With ``--trunk top`` the lower blocks keep their starting weights (ImageNet, or the trunk of
another run given with ``--backbone-from``; BatchNorm in inference mode) in every stage and only
``top`` trains, on cached features of a few augmented variants per face. With ``--trunk all`` the
trainer wraps ``full`` itself: every block is fine-tuned on freshly augmented images (about
120 faces/s at 112 px on the two cores of the development machine).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

import keras
import tensorflow as tf
from keras import layers, ops

from trainer import nets
from trainer.losses.multitask import head_loss

from .spec import HEADS, KINDS

AGE_SCALE, AGE_OFFSET = 20.0, 33.0  # UTKFace age std / mean: the age unit starts near the data


@dataclass
class Models:
    """The shipped model and its two training views (shared layers)."""

    full: keras.Model
    lower: keras.Model
    top: keras.Model


def _head_layers(hidden: int, dropout: float, classes: Mapping[str, int]) -> dict[str, list[layers.Layer]]:
    out: dict[str, list[layers.Layer]] = {}
    for head in HEADS:
        stack: list[layers.Layer] = [layers.Dense(hidden, activation="relu", name=f"{head}_hidden")]
        if head == "age":
            stack += [layers.Dense(1, name="age_unit"),
                      layers.Rescaling(AGE_SCALE, offset=AGE_OFFSET, name="age")]
        elif head == "gender":
            stack.append(layers.Dense(1, activation="sigmoid", name="gender"))
        else:
            stack.append(layers.Dense(classes[head], activation="softmax", name=head))
        out[head] = stack
    return out


def _apply_heads(fmap: Any, heads: Mapping[str, list[layers.Layer]], dropout: float, tag: str) -> dict[str, Any]:
    x = layers.GlobalAveragePooling2D(name="pool" if not tag else f"pool_{tag}")(fmap)
    if dropout:
        x = layers.Dropout(dropout, name=f"dropout{'_' + tag if tag else ''}")(x)
    outputs = {}
    for head, stack in heads.items():
        h = stack[0](x)
        if dropout:
            h = layers.Dropout(dropout / 2, name=f"{head}_dropout{'_' + tag if tag else ''}")(h)
        for layer in stack[1:]:
            h = layer(h)
        outputs[head] = h
    return outputs


def build_models(size: int = 96, alpha: float = 1.0, weights: Optional[str] = None, cut: str = "block_5_add",
                 hidden: int = 128, dropout: float = 0.3, emotions: int = 7, ethnicities: int = 5,
                 backbone: str = "mobilenet_v2") -> Models:
    """Return the full / lower / top views of a fresh multi-task network (see module doc)."""
    bb = nets.build_backbone(backbone, alpha, size, weights)
    base = nets.backbone_of(bb)
    try:
        cut_tensor = base.get_layer(cut).output
    except ValueError:
        raise ValueError(f"--cut {cut!r} is not a layer of {backbone}") from None
    heads = _head_layers(hidden, dropout, {"emotion": emotions, "ethnicity": ethnicities})
    full = keras.Model(bb.input, _apply_heads(bb.output, heads, dropout, ""), name="multitask")
    lower_core = keras.Model(base.input, cut_tensor, name="lower_backbone")
    img = keras.Input((size, size, 3), name="image")
    lower = keras.Model(img, lower_core(bb.get_layer("preprocess")(img)), name="lower")
    upper = keras.Model(cut_tensor, base.output, name="backbone")  # nets.unfreeze_top finds it by name
    feat = keras.Input(tuple(cut_tensor.shape[1:]), name="features")
    top = keras.Model(feat, _apply_heads(upper(feat), heads, dropout, "top"), name="multitask_top")
    return Models(full=full, lower=lower, top=top)


def clean_copy(models: Models, **build_kwargs: Any) -> keras.Model:
    """Return a freshly built full model holding the trained weights (no training-only graph links)."""
    fresh = build_models(**build_kwargs).full
    fresh.set_weights(models.full.get_weights())
    return fresh


class MultitaskTrainer(keras.Model):
    """Trains ``net`` with masked per-head losses combined by a weighting layer.

    Logs per head: ``<head>_loss``, and accuracy (gender/emotion/ethnicity) or ``age_mae``;
    ``plain_loss`` = the unweighted sum of head losses, comparable across weightings (the
    validation monitor for early stopping and the best checkpoint).
    """

    def __init__(self, net: keras.Model, weighting: layers.Layer, label_smoothing: float = 0.0,
                 age_delta: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.net = net
        self.weighting = weighting
        self.label_smoothing = float(label_smoothing)
        self.age_delta = float(age_delta)
        self.plain_loss = keras.metrics.Mean(name="plain_loss")
        self.age_mae = keras.metrics.Mean(name="age_mae")
        self.gender_acc = keras.metrics.Mean(name="gender_acc")
        self.emotion_acc = keras.metrics.Mean(name="emotion_acc")
        self.ethnicity_acc = keras.metrics.Mean(name="ethnicity_acc")
        self.head_losses = [keras.metrics.Mean(name=f"{h}_loss") for h in HEADS]

    def call(self, x: Any, training: bool = False) -> Any:
        return self.net(x, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Return the weighted total of the masked head losses; update the per-head logs."""
        losses = {h: head_loss(KINDS[h], y[h], y_pred[h],
                               0.0 if KINDS[h] == "regression" else self.label_smoothing,
                               age_delta=self.age_delta) for h in HEADS}
        # Under tf.distribute each replica's loss is divided by the number of replicas, so the
        # all-reduced (summed) gradient is the gradient of the mean over the global batch, as Keras's
        # own losses do (keras scale_loss_for_distribution); Keras un-scales the logged "loss".
        total = self.weighting(losses) / tf.distribute.get_strategy().num_replicas_in_sync
        self.plain_loss.update_state(sum(losses.values()))
        for tracker, h in zip(self.head_losses, HEADS):
            tracker.update_state(losses[h])
        age_t = ops.reshape(ops.cast(y["age"], "float32"), (-1,))
        age_p = ops.reshape(y_pred["age"], (-1,))
        known = ops.logical_not(ops.isnan(age_t))
        self.age_mae.update_state(ops.abs(ops.where(known, age_t, age_p) - age_p),
                                  sample_weight=ops.cast(known, "float32"))
        g_t = ops.reshape(ops.cast(y["gender"], "float32"), (-1,))
        g_p = ops.cast(ops.reshape(y_pred["gender"], (-1,)) >= 0.5, "float32")
        self.gender_acc.update_state(ops.cast(g_t == g_p, "float32"), sample_weight=ops.cast(g_t >= 0, "float32"))
        for tracker, h in ((self.emotion_acc, "emotion"), (self.ethnicity_acc, "ethnicity")):
            t = ops.reshape(ops.cast(y[h], "int32"), (-1,))
            p = ops.cast(ops.argmax(y_pred[h], axis=-1), "int32")
            tracker.update_state(ops.cast(t == p, "float32"), sample_weight=ops.cast(t >= 0, "float32"))
        return total
