"""Switchable training augmentation as TensorFlow ops on float32 0..255 RGB batches.

Built from a config dict so an A/B run can toggle each part::

    aug = build_augmenter({"flip": True, "brightness": 0.2, "occlusion": 0.3})
    ds = ds.map(lambda x, y: (aug(x), y))

Every part is applied per image with its own random draw. ``None`` or ``{"enabled": False}``
gives the identity. Used by the attribute, multitask and recognition tasks.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Optional

import tensorflow as tf

DEFAULT_AUGMENT: dict[str, Any] = {
    "enabled": True,
    "flip": True,               # horizontal flip with p = 0.5 (faces are left-right symmetric)
    "brightness": 0.15,         # add U(-b, b) * 255
    "contrast": 0.2,            # scale around the image mean by U(1-c, 1+c)
    "rotation_deg": 10.0,       # rotate by U(-r, r) degrees
    "scale": 0.08,              # zoom by U(1-s, 1+s)
    "shift": 0.04,              # translate by U(-t, t) of the side
    "occlusion": 0.0,           # probability of one random grey/noise patch
    "occlusion_size": (0.15, 0.4),  # patch side as a fraction of the image side
    "blur": 0.0,                # probability of a Gaussian blur
    "blur_sigma": (0.6, 1.6),
}
AUGMENT_OFF: dict[str, Any] = {"enabled": False}

Augmenter = Callable[[tf.Tensor], tf.Tensor]


def augment_config(overrides: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """Return DEFAULT_AUGMENT updated with ``overrides``; an unknown key raises ValueError."""
    cfg = dict(DEFAULT_AUGMENT)
    for key, value in (overrides or {}).items():
        if key not in DEFAULT_AUGMENT:
            raise ValueError(f"unknown augmentation key {key!r} (known: {', '.join(DEFAULT_AUGMENT)})")
        cfg[key] = value
    return cfg


def parse_augment_arg(text: str) -> dict[str, Any]:
    """Return an augmentation config from a CLI value: 'off', 'default' or 'key=value,key=value'."""
    text = (text or "default").strip()
    if text in ("off", "none", "false", "0"):
        return augment_config({"enabled": False})
    if text in ("default", "on", "true", "1"):
        return augment_config()
    overrides: dict[str, Any] = {}
    for part in text.split(","):
        if "=" not in part:
            raise ValueError(f"--augment: {part!r} is not key=value")
        key, value = (s.strip() for s in part.split("=", 1))
        if value.lower() in ("true", "false", "on", "off"):
            overrides[key] = value.lower() in ("true", "on")
        elif ":" in value:
            overrides[key] = tuple(float(v) for v in value.split(":"))
        else:
            overrides[key] = float(value)
    return augment_config(overrides)


def _affine(images: tf.Tensor, rotation_deg: float, scale: float, shift: float) -> tf.Tensor:
    batch = tf.shape(images)[0]
    h = tf.cast(tf.shape(images)[1], tf.float32)
    w = tf.cast(tf.shape(images)[2], tf.float32)
    angle = tf.random.uniform([batch], -1.0, 1.0) * (rotation_deg * math.pi / 180.0)
    zoom = 1.0 + tf.random.uniform([batch], -1.0, 1.0) * scale
    tx = tf.random.uniform([batch], -1.0, 1.0) * shift * w
    ty = tf.random.uniform([batch], -1.0, 1.0) * shift * h
    # Output pixel (x, y) samples input (a0 x + a1 y + a2, b0 x + b1 y + b2): inverse of rotate+zoom about the centre.
    cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom
    cx, cy = (w - 1.0) / 2.0, (h - 1.0) / 2.0
    a0, a1, b0, b1 = cos, -sin, sin, cos
    a2 = cx - a0 * cx - a1 * cy + tx
    b2 = cy - b0 * cx - b1 * cy + ty
    zeros = tf.zeros_like(a0)
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.shape(images)[1:3],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT")


def _occlude(images: tf.Tensor, prob: float, size: tuple[float, float]) -> tf.Tensor:
    shape = tf.shape(images)
    batch, h, w = shape[0], shape[1], shape[2]
    hf, wf = tf.cast(h, tf.float32), tf.cast(w, tf.float32)
    side = tf.random.uniform([batch], size[0], size[1])
    ph, pw = side * hf, side * wf * tf.random.uniform([batch], 0.6, 1.4)
    y0 = tf.random.uniform([batch]) * (hf - ph)
    x0 = tf.random.uniform([batch]) * (wf - pw)
    ys = tf.cast(tf.range(h), tf.float32)[None, :, None]
    xs = tf.cast(tf.range(w), tf.float32)[None, None, :]
    inside = ((ys >= y0[:, None, None]) & (ys < (y0 + ph)[:, None, None])
              & (xs >= x0[:, None, None]) & (xs < (x0 + pw)[:, None, None]))
    apply = tf.random.uniform([batch]) < prob
    mask = inside & apply[:, None, None]
    grey = tf.random.uniform([batch, 1, 1, 1], 0.0, 255.0)
    noise = tf.random.uniform(shape, -30.0, 30.0)
    fill = tf.clip_by_value(grey + noise, 0.0, 255.0)
    return tf.where(mask[..., None], fill, images)


def _blur(images: tf.Tensor, prob: float, sigma_range: tuple[float, float]) -> tf.Tensor:
    batch = tf.shape(images)[0]
    sigma = tf.random.uniform([], sigma_range[0], sigma_range[1])
    taps = tf.range(-3.0, 4.0)
    kernel = tf.exp(-0.5 * tf.square(taps / sigma))
    kernel = kernel / tf.reduce_sum(kernel)
    kx = tf.tile(tf.reshape(kernel, [1, 7, 1, 1]), [1, 1, 3, 1])
    ky = tf.tile(tf.reshape(kernel, [7, 1, 1, 1]), [1, 1, 3, 1])
    padded = tf.pad(images, [[0, 0], [3, 3], [3, 3], [0, 0]], mode="SYMMETRIC")
    blurred = tf.nn.depthwise_conv2d(padded, kx, [1, 1, 1, 1], "VALID")
    blurred = tf.nn.depthwise_conv2d(blurred, ky, [1, 1, 1, 1], "VALID")
    apply = tf.random.uniform([batch]) < prob
    return tf.where(apply[:, None, None, None], blurred, images)


def build_augmenter(config: Optional[Mapping[str, Any]] = None) -> Augmenter:
    """Return a function that augments a float32 batch (B, H, W, 3) of 0..255 RGB images.

    ``config`` overrides DEFAULT_AUGMENT; None, {} or {"enabled": False} gives the identity
    (None and {} mean "off" so that forgetting a config never silently augments).
    """
    if not config or not config.get("enabled", True):
        return lambda images: images
    cfg = augment_config(config)

    def augment(images: tf.Tensor) -> tf.Tensor:
        x = tf.cast(images, tf.float32)
        batch = tf.shape(x)[0]
        if cfg["flip"]:
            flip = tf.random.uniform([batch]) < 0.5
            x = tf.where(flip[:, None, None, None], tf.reverse(x, axis=[2]), x)
        if cfg["rotation_deg"] or cfg["scale"] or cfg["shift"]:
            x = _affine(x, float(cfg["rotation_deg"]), float(cfg["scale"]), float(cfg["shift"]))
        if cfg["contrast"]:
            c = 1.0 + tf.random.uniform([batch, 1, 1, 1], -1.0, 1.0) * float(cfg["contrast"])
            mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
            x = (x - mean) * c + mean
        if cfg["brightness"]:
            x = x + tf.random.uniform([batch, 1, 1, 1], -1.0, 1.0) * float(cfg["brightness"]) * 255.0
        if cfg["blur"]:
            x = _blur(x, float(cfg["blur"]), tuple(cfg["blur_sigma"]))
        if cfg["occlusion"]:
            x = _occlude(x, float(cfg["occlusion"]), tuple(cfg["occlusion_size"]))
        return tf.clip_by_value(x, 0.0, 255.0)

    # Traced once. Called eagerly in a loop, each random op under a global seed gets a fresh op seed
    # per call and TensorFlow keeps a kernel for each: the multitask feature cache was OOM-killed at
    # 24 GB RSS after ~60k augmented faces (flat at 4.6 GB traced). Inside tf.data.map it nests as is.
    return tf.function(augment)
