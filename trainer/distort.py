"""Synthetic image distortions of face crops: blur, dark, noise, fog, occlusion.

Each function takes an RGB (or BGR) uint8 crop and a numpy Generator and returns a new
uint8 crop of the same shape; ``severity`` in (0, 1] scales how strong it is. They make
the labelled data of the distortion classifier and the distorted faces a recogniser is
fine-tuned and evaluated on.
"""
from __future__ import annotations

from typing import Callable, Optional

import cv2
import numpy as np

CLEAN = "clean"
DISTORTIONS = ("blur", "dark", "noise", "fog", "occlusion")
LABELS = (CLEAN, *DISTORTIONS)


def blur(img: np.ndarray, rng: np.random.Generator, severity: float = 1.0) -> np.ndarray:
    """Return ``img`` with defocus (Gaussian) or linear motion blur, kernel growing with severity."""
    side = img.shape[0]
    if rng.random() < 0.5:
        sigma = side * (0.012 + 0.03 * severity * rng.uniform(0.6, 1.0))
        return cv2.GaussianBlur(img, (0, 0), sigmaX=sigma)
    length = max(3, int(round(side * (0.05 + 0.12 * severity * rng.uniform(0.6, 1.0)))))
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), rng.uniform(0, 180), 1.0)
    kernel = cv2.warpAffine(kernel, rot, (length, length))
    kernel /= max(kernel.sum(), 1e-6)
    return cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT)


def dark(img: np.ndarray, rng: np.random.Generator, severity: float = 1.0) -> np.ndarray:
    """Return ``img`` under-exposed: gamma darkening, gain down to ~12% and a little sensor noise."""
    x = img.astype(np.float32) / 255.0
    gain = 1.0 - severity * rng.uniform(0.6, 0.88)
    gamma = 1.0 + severity * rng.uniform(0.3, 1.2)
    x = np.power(x, gamma) * gain
    x = x + rng.normal(0.0, 0.01 + 0.02 * severity, x.shape).astype(np.float32)
    return np.clip(x * 255.0, 0, 255).astype(np.uint8)


def noise(img: np.ndarray, rng: np.random.Generator, severity: float = 1.0) -> np.ndarray:
    """Return ``img`` with Gaussian noise (sigma up to ~30 grey levels), sometimes plus salt-and-pepper."""
    sigma = 255.0 * (0.04 + 0.08 * severity * rng.uniform(0.5, 1.0))
    x = img.astype(np.float32) + rng.normal(0.0, sigma, img.shape).astype(np.float32)
    if rng.random() < 0.3:
        mask = rng.random(img.shape[:2])
        amount = 0.02 * severity
        x[mask < amount / 2] = 0
        x[mask > 1 - amount / 2] = 255
    return np.clip(x, 0, 255).astype(np.uint8)


def fog(img: np.ndarray, rng: np.random.Generator, severity: float = 1.0) -> np.ndarray:
    """Return ``img`` behind haze: blended towards a light grey with a smooth random density."""
    h, w = img.shape[:2]
    coarse = rng.uniform(0.6, 1.0, (4, 4)).astype(np.float32)
    density = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    alpha = np.clip(density * severity * rng.uniform(0.45, 0.75), 0.0, 0.85)[..., None]
    haze = rng.uniform(180, 235)
    x = img.astype(np.float32) * (1.0 - alpha) + haze * alpha
    return np.clip(x, 0, 255).astype(np.uint8)


def occlusion(img: np.ndarray, rng: np.random.Generator, severity: float = 1.0) -> np.ndarray:
    """Return ``img`` with part of the face covered: a band over the eyes (glasses), the mouth (mask) or a hand-like block."""
    out = img.copy()
    h, w = img.shape[:2]
    colour = rng.uniform(0, 255, 3) if rng.random() < 0.5 else np.full(3, rng.uniform(0, 60))
    kind = rng.integers(3)
    size = 0.2 + 0.2 * severity
    if kind == 0:   # band across the eyes
        y0 = int(h * rng.uniform(0.28, 0.40))
        out[y0:y0 + int(h * size * 0.6), int(w * 0.12):int(w * 0.88)] = colour
    elif kind == 1:  # lower face (mask)
        y0 = int(h * rng.uniform(0.55, 0.65))
        out[y0:, int(w * 0.15):int(w * 0.85)] = colour
    else:            # a block from one side
        side = int(w * (size + 0.1))
        y0 = int(h * rng.uniform(0.1, 0.5))
        x0 = 0 if rng.random() < 0.5 else w - side
        out[y0:y0 + side, x0:x0 + side] = colour
    return out


DISTORT: dict[str, Callable[[np.ndarray, np.random.Generator, float], np.ndarray]] = {
    "blur": blur, "dark": dark, "noise": noise, "fog": fog, "occlusion": occlusion}


def distort(img: np.ndarray, kind: str, rng: np.random.Generator, severity: Optional[float] = None) -> np.ndarray:
    """Return ``img`` with distortion ``kind`` ('clean' returns a copy); severity defaults to U(0.5, 1)."""
    if kind == CLEAN:
        return img.copy()
    if kind not in DISTORT:
        raise ValueError(f"unknown distortion {kind!r} (one of {', '.join(LABELS)})")
    return DISTORT[kind](img, rng, float(rng.uniform(0.5, 1.0)) if severity is None else float(severity))


def distort_batch(images: np.ndarray, rng: np.random.Generator,
                  kinds: tuple[str, ...] = LABELS) -> tuple[np.ndarray, np.ndarray]:
    """Return (distorted copies of ``images``, label index into ``kinds`` per image), kinds drawn uniformly."""
    labels = rng.integers(len(kinds), size=len(images))
    out = np.stack([distort(img, kinds[k], rng) for img, k in zip(images, labels)]) if len(images) else images.copy()
    return out, labels


def every_kind(images: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Return {label: ``images`` with that distortion} for every label of LABELS ("clean" first,
    unchanged), drawn from one ``seed``ed generator in LABELS order: the held-out probes of the
    recogniser's distorted evaluation, the routing comparison and the distortion classifier's test set."""
    rng = np.random.default_rng(seed)
    return {kind: np.stack([distort(img, kind, rng) for img in images]) if len(images) else np.asarray(images).copy()
            for kind in LABELS}
