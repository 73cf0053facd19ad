"""Cached lower-backbone features of face crops (with augmented variants) and tf.data pipelines over them.

Variant 0 of every face is the crop itself, variant 1 its mirror image, variants 2.. are
draws of the shared augmentation (trainer.augment). Each epoch picks one random variant per
face, so training sees augmentation although the frozen lower blocks run only once per variant.
The cache (float16 .npy) is keyed by the crops, the lower model's weights and the variant settings.
"""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any, Mapping, Optional

import keras
import numpy as np
import tensorflow as tf

from trainer.augment import build_augmenter


def cache_key(faces: np.ndarray, lower: keras.Model, variant: int, seed: int, augment: Mapping[str, Any]) -> str:
    """Return a short hash naming the faces, the lower model's weights and one variant's settings."""
    h = hashlib.sha1()
    aug = sorted(augment.items()) if variant >= 2 else None  # variants 0 and 1 do not depend on it
    h.update(str((faces.shape, variant, seed if variant >= 2 else 0, aug, lower.output.shape)).encode())
    h.update(np.ascontiguousarray(faces[:: max(1, len(faces) // 64)]).tobytes())
    for w in lower.get_weights()[:6]:
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()[:14]


def extract_variant(lower: keras.Model, faces: np.ndarray, variant: int, seed: int,
                    augment: Mapping[str, Any], batch: int = 128, log_every: int = 20) -> np.ndarray:
    """Return float16 lower features of one variant of every face (0 = as is, 1 = mirrored, 2.. = augmented)."""
    tf.random.set_seed(seed + variant)
    aug = build_augmenter(augment)
    n = len(faces)
    out: Optional[np.ndarray] = None
    start = time.time()
    for i in range(0, n, batch):
        x = tf.convert_to_tensor(faces[i:i + batch].astype(np.float32))
        if variant == 1:
            x = tf.reverse(x, axis=[2])
        elif variant >= 2:
            x = aug(x)
        f = lower(x, training=False).numpy().astype(np.float16)
        if out is None:
            out = np.zeros((n,) + f.shape[1:], np.float16)
        out[i:i + len(f)] = f
        if log_every and (i // batch) % log_every == 0:
            rate = (i + len(f)) / max(1e-6, time.time() - start)
            print(f"  features: variant {variant} {i + len(f)}/{n} ({rate:.0f} faces/s)", flush=True)
    assert out is not None
    return out


def cached_features(name: str, lower: keras.Model, faces: np.ndarray, variants: int, seed: int,
                    augment: Mapping[str, Any], cache_dir: str | Path) -> np.ndarray:
    """Return float16 features of shape (variants * N, ...): rows v*N..(v+1)*N-1 hold variant v.

    Each variant is cached on its own (.npy under ``cache_dir``), so more variants reuse the first ones.
    """
    folder = Path(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    parts = []
    for v in range(variants):
        path = folder / f"mtfeat_{name}_v{v}_{cache_key(faces, lower, v, seed, augment)}.npy"
        if path.is_file():
            feats = np.load(path, mmap_mode="r")
            if feats.shape[0] == len(faces):
                parts.append(np.asarray(feats))
                continue
        feats = extract_variant(lower, faces, v, seed, augment)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}.npy")
        np.save(tmp, feats)
        os.replace(tmp, path)
        parts.append(feats)
    return np.concatenate(parts)


def row_table(counts: list[tuple[int, int]]) -> np.ndarray:
    """Return the (faces x max variants) table of feature rows for blocks stacked by :func:`stack_blocks`.

    ``counts`` = [(faces, variants), ...] per block; a face with fewer variants than the widest
    block repeats its own variants cyclically, so a uniform draw over columns stays uniform.
    """
    width = max(v for _, v in counts)
    tables, offset = [], 0
    for n, v in counts:
        cols = np.arange(width) % v
        tables.append(offset + cols[None, :] * n + np.arange(n)[:, None])
        offset += n * v
    return np.concatenate(tables).astype(np.int32)


def shuffled_batches(repeats: np.ndarray, batch: int, seed: int) -> tf.data.Dataset:
    """Return batches of face indices, face i ``repeats[i]`` times per epoch, reshuffled every epoch."""
    ids = np.repeat(np.arange(len(repeats)), repeats).astype(np.int32)
    ds = tf.data.Dataset.from_tensor_slices(ids).shuffle(len(ids), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch, drop_remainder=True)


def train_dataset(feats: np.ndarray, rows: np.ndarray, labels: Mapping[str, np.ndarray],
                  repeats: np.ndarray, batch: int, seed: int) -> tf.data.Dataset:
    """Return shuffled (features, labels) batches: face i ``repeats[i]`` times per epoch, a random variant each time.

    ``rows[i]`` lists the feature rows of the variants of face i (see :func:`row_table`).
    """
    feats_t = tf.convert_to_tensor(feats)
    rows_t = tf.convert_to_tensor(rows)
    width = rows.shape[1]
    labels_t = {k: tf.convert_to_tensor(v) for k, v in labels.items()}

    def gather(batch_ids: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        k = tf.random.uniform(tf.shape(batch_ids), 0, width, dtype=tf.int32)
        r = tf.gather_nd(rows_t, tf.stack([batch_ids, k], axis=1))
        x = tf.cast(tf.gather(feats_t, r), tf.float32)
        return x, {key: tf.gather(v, batch_ids) for key, v in labels_t.items()}

    return shuffled_batches(repeats, batch, seed).map(gather, num_parallel_calls=1).prefetch(2)


def eval_dataset(feats: np.ndarray, labels: Mapping[str, np.ndarray], batch: int) -> tf.data.Dataset:
    """Return (float32 rows, labels) batches in order: one cached feature row or one crop per face, un-augmented."""
    x = tf.data.Dataset.from_tensor_slices(feats)
    y = tf.data.Dataset.from_tensor_slices({k: v for k, v in labels.items()})
    return tf.data.Dataset.zip((x, y)).batch(batch).map(lambda a, b: (tf.cast(a, tf.float32), b)).prefetch(2)
