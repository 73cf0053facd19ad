"""Augmented image batches of mixed UTKFace + FER crops, for fine-tuning the whole multi-task trunk.

With ``--trunk all`` nothing is cached below the heads: every epoch draws each face anew through
the shared augmentation (trainer.augment), UTKFace faces ``utk_repeat`` times, FER faces once.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import tensorflow as tf

from trainer.augment import build_augmenter
from trainer.data.multitask import FaceLabels

from . import features


def train_dataset(train: FaceLabels, utk_repeat: int, batch: int, seed: int,
                  augment: Mapping[str, Any]) -> tf.data.Dataset:
    """Return shuffled (augmented float32 0..255 RGB batch, labels) pairs over one epoch of ``train``."""
    faces_t = tf.convert_to_tensor(train.faces)
    labels_t = {k: tf.convert_to_tensor(v) for k, v in train.labels().items()}
    repeats = np.where(train.source == 0, utk_repeat, 1)
    aug = build_augmenter(augment)

    def gather(batch_ids: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        x = aug(tf.cast(tf.gather(faces_t, batch_ids), tf.float32))
        return x, {key: tf.gather(v, batch_ids) for key, v in labels_t.items()}

    return features.shuffled_batches(repeats, batch, seed).map(gather, num_parallel_calls=1).prefetch(2)

