"""Augmentation ops: switchable, shape- and range-preserving, and actually random when on."""
from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from trainer.augment import DEFAULT_AUGMENT, augment_config, build_augmenter, parse_augment_arg  # noqa: E402


def _batch() -> np.ndarray:
    rng = np.random.default_rng(0)
    x = np.zeros((8, 48, 48, 3), np.float32)
    x[:, :, :24] = 200.0  # left half bright: a flip is visible
    return x + rng.uniform(0, 20, x.shape).astype(np.float32)


def test_off_is_identity_and_unknown_key_fails():
    x = _batch()
    assert build_augmenter(None)(x) is x
    assert np.array_equal(build_augmenter({"enabled": False})(x), x)
    with pytest.raises(ValueError, match="unknown augmentation key 'flop'"):
        augment_config({"flop": True})
    assert parse_augment_arg("off")["enabled"] is False
    assert parse_augment_arg("occlusion=0.5,flip=off,blur_sigma=0.5:1")["occlusion"] == 0.5


@pytest.mark.parametrize("part", ["flip", "affine", "occlusion", "blur", "colour"])
def test_each_part_changes_images_within_range(part):
    off = {k: (0.0 if isinstance(v, float) else v) for k, v in DEFAULT_AUGMENT.items()}
    off.update(flip=False, rotation_deg=0.0, scale=0.0, shift=0.0)
    cfg = dict(off)
    if part == "flip":
        cfg["flip"] = True
    elif part == "affine":
        cfg.update(rotation_deg=15.0, scale=0.1)
    elif part == "occlusion":
        cfg["occlusion"] = 1.0
    elif part == "blur":
        cfg["blur"] = 1.0
    else:
        cfg.update(brightness=0.2, contrast=0.3)
    tf.random.set_seed(1)
    x = _batch()
    y = build_augmenter(cfg)(tf.constant(x)).numpy()
    assert y.shape == x.shape and y.min() >= 0.0 and y.max() <= 255.0
    changed = np.abs(y - x).reshape(len(x), -1).max(axis=1) > 1.0
    assert changed.any()
    if part == "flip":
        flipped = np.allclose(y, x[:, :, ::-1], atol=1e-4)
        assert not flipped and 0 < changed.sum() < len(x) + 1
    if part == "blur":  # blur lowers high-frequency energy
        assert np.abs(np.diff(y, axis=2)).mean() < np.abs(np.diff(x, axis=2)).mean()


def test_eager_calls_reuse_one_trace_and_still_draw_anew():
    """Called in an eager loop (the multitask feature cache), the augmenter must not build new kernels per
    call: that grew RSS past 24 GB over 60k faces. It is traced once per shape, and each call is a new draw."""
    tf.random.set_seed(3)
    aug = build_augmenter(augment_config({"occlusion": 0.5}))
    x = tf.constant(_batch())
    outs = [aug(x).numpy() for _ in range(5)]
    assert aug.experimental_get_tracing_count() == 1
    assert not np.array_equal(outs[0], outs[1])
