"""dlib's 5-point shape predictor (an ensemble of regression trees) run with NumPy on the device.

The arrays come from the .dat file (``trainer.dlib_port.shape_predictor`` writes them to an .npz); the
arithmetic is dlib's (dlib/image_processing/shape_predictor.h): a cascade of levels, each sampling
feature pixels placed relative to the current shape by the similarity transform from the mean shape,
then adding the leaf that each tree's pixel-difference splits lead to. Pixels are the integer mean of
the three colour channels at the rounded position, 0 outside the frame, as dlib reads an RGB image.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional

import numpy as np

from .crop import Box
from .errors import BundleError

ARRAYS = ("initial_shape", "split_idx", "split_thresh", "leaf_values", "anchor_idx", "deltas")
GOLDEN_POINTS = "golden_points"   # optional: its points on the bundle's golden faces, whole crop as the box
MANIFEST_KEY = "shape_predictor"   # a landmarks manifest's {file: ..., ...} block
# A Haar box is larger and sits higher than the HOG box dlib's landmark model was trained on:
# medians over 1,070 celeba_wild + ORL faces where both fired (HOG side = 0.88-0.99 x Haar side,
# HOG centre 0.07-0.09 Haar sides lower).
HAAR_TO_HOG_SCALE = 0.92
HAAR_TO_HOG_SHIFT_Y = 0.08


def hog_like(box: Box) -> Box:
    """Return the HOG-style box (x, y, w, h; the framing dlib's landmark model expects) for a Haar box."""
    x, y, w, h = box
    side = w * HAAR_TO_HOG_SCALE
    cx, cy = x + w / 2.0, y + h / 2.0 + HAAR_TO_HOG_SHIFT_Y * w
    return int(round(cx - side / 2)), int(round(cy - side / 2)), int(round(side)), int(round(side))


def crop_rect(crop: np.ndarray) -> tuple[int, int, int, int]:
    """Return the (left, top, right, bottom) of a whole crop: the box golden points are recorded on."""
    return 0, 0, crop.shape[1] - 1, crop.shape[0] - 1


def dlib_rect(box: Box) -> tuple[int, int, int, int]:
    """Return the (left, top, right, bottom) that ``dlib.rectangle(x, y, x + w, y + h)`` holds for a box."""
    x, y, w, h = box
    return x, y, x + w, y + h


def similarity_matrix(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Return the 2x2 rotation-and-scale part of the least-squares similarity transform that maps the
    points ``source`` (N x 2) onto ``target``: dlib's find_similarity_transform (Umeyama 1991) in closed
    form, which for points in a plane is [[a, -b], [b, a]]."""
    src = source - source.mean(0)
    dst = target - target.mean(0)
    norm = float((src ** 2).sum())
    if norm == 0:
        return np.eye(2, dtype=source.dtype)
    a = float((src * dst).sum()) / norm
    b = float((src[:, 0] * dst[:, 1] - src[:, 1] * dst[:, 0]).sum()) / norm
    return np.array([[a, -b], [b, a]], source.dtype)


class ShapePredictor:
    """``points(frame, rect)`` returns the landmarks of the face in ``rect`` as dlib's predictor finds them."""

    def __init__(self, arrays: Mapping[str, np.ndarray]):
        missing = [k for k in ARRAYS if k not in arrays]
        if missing:
            raise BundleError(f"shape predictor: missing arrays {', '.join(missing)}")
        self.initial = np.asarray(arrays["initial_shape"], np.float32).reshape(-1, 2)
        split_idx = np.asarray(arrays["split_idx"])
        split_thresh = np.asarray(arrays["split_thresh"], np.float32)
        leaf_values = np.asarray(arrays["leaf_values"], np.float32)
        anchor_idx = np.asarray(arrays["anchor_idx"], np.intp)
        deltas = np.asarray(arrays["deltas"], np.float32)
        if split_thresh.ndim != 3:
            raise BundleError("shape predictor: split_thresh must be (levels, trees, splits)")
        levels, trees, splits = split_thresh.shape
        if leaf_values.shape != (levels, trees, splits + 1, self.initial.size) \
                or split_idx.shape != (levels, trees, splits, 2) \
                or deltas.shape[:2] != anchor_idx.shape or anchor_idx.shape[0] != levels \
                or split_idx.min() < 0 or split_idx.max() >= deltas.shape[1] \
                or anchor_idx.min() < 0 or anchor_idx.max() >= len(self.initial):
            raise BundleError("shape predictor: its arrays do not fit together")
        self.depth = int(round(np.log2(splits + 1)))
        if 2 ** self.depth != splits + 1:
            raise BundleError(f"shape predictor: {splits} splits per tree is not a full binary tree")
        self._trees = np.arange(trees)
        # Per level, each tree's nodes flattened (node n of tree t is row t * splits + n), one array per level.
        self._first = list(split_idx[..., 0].reshape(levels, -1))
        self._second = list(split_idx[..., 1].reshape(levels, -1))
        self._thresh = list(split_thresh.reshape(levels, -1))
        self._leaves = list(leaf_values.reshape(levels, trees * (splits + 1), -1))
        self._anchors = list(anchor_idx)
        self._deltas = [d.T.copy() for d in deltas]
        self._splits = splits
        self._roots = self._trees * splits
        self._leaf_base = self._trees * (splits + 1) - splits
        self._initial64 = self.initial.astype(np.float64)
        golden = arrays.get(GOLDEN_POINTS)
        self.golden_points = None if golden is None else np.asarray(golden, np.float32)

    @classmethod
    def load(cls, path: str | Path) -> "ShapePredictor":
        """Return the predictor stored in an .npz file (BundleError when it is not one)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls({k: data[k] for k in data.files})
        except (OSError, ValueError) as exc:
            raise BundleError(f"shape predictor {path}: {exc}") from None

    def golden_errors(self, faces: np.ndarray) -> Optional[np.ndarray]:
        """Return, per golden face (uint8 RGB crops), the largest distance in pixels between this predictor's
        points (the whole crop as the box) and the points recorded when the bundle was made; None when none
        were recorded. BundleError when the recording does not fit the faces."""
        if self.golden_points is None:
            return None
        if self.golden_points.shape != (len(faces), self.num_points, 2):
            raise BundleError(f"shape predictor: {GOLDEN_POINTS} has shape {self.golden_points.shape}, "
                              f"expected ({len(faces)}, {self.num_points}, 2)")
        return np.abs(self.crop_points(faces) - self.golden_points).max(axis=(1, 2))

    def crop_points(self, faces: np.ndarray) -> np.ndarray:
        """Return the points (N x P x 2) on each of ``faces`` (uint8 crops), the whole crop as the box: the
        golden points a bundle records and replays."""
        return np.stack([self.points(face, crop_rect(face)) for face in faces])

    @property
    def num_points(self) -> int:
        """Return how many points the predictor places."""
        return len(self.initial)

    def points(self, frame: np.ndarray, rect: tuple[float, float, float, float]) -> np.ndarray:
        """Return the landmarks (N x 2, whole frame pixels as dlib rounds them) of the face in ``rect`` = (left,
        top, right, bottom), dlib's inclusive corners, in a BGR, RGB or grey uint8 ``frame``."""
        left, top, right, bottom = (float(v) for v in rect)
        origin = np.array([left, top], np.float64)
        span = np.array([right - left, bottom - top], np.float64)
        height, width = frame.shape[:2]
        shape = self.initial.copy()
        flat = frame.reshape(height * width, -1)
        for level in range(len(self._thresh)):
            tform = similarity_matrix(self._initial64, shape.astype(np.float64)).astype(np.float32)
            where = (tform @ self._deltas[level]).T + shape[self._anchors[level]]
            pixel = np.floor(origin + where * span + 0.5).astype(np.intp)
            x, y = pixel[:, 0], pixel[:, 1]
            inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
            seen = flat[np.where(inside, y * width + x, 0)]
            values = np.where(inside, seen.sum(1, dtype=np.int32) // seen.shape[1], 0).astype(np.float32)
            # Every split of the level at once (7,500 comparisons), then each tree walks its own.
            goes_left = values[self._first[level]] - values[self._second[level]] > self._thresh[level]
            node = np.zeros(len(self._trees), np.intp)
            for _ in range(self.depth):
                node = 2 * node + 2 - goes_left[self._roots + node]
            shape = shape + self._leaves[level][self._leaf_base + node].sum(0, dtype=np.float32).reshape(-1, 2)
        # dlib returns whole pixels (its full_object_detection holds points of longs): so does this, which is
        # also what the embedding's thresholds were measured with (chips cut from dlib's own points).
        return np.floor(origin + shape.astype(np.float64) * span + 0.5).astype(np.float32)
