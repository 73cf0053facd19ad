"""dlib's shape predictor (an ensemble of regression trees, Kazemi & Sullivan 2014) read from its .dat file.

``read_shape_predictor(path)`` returns the arrays that :class:`edge.shape_predictor.ShapePredictor` runs
with NumPy, in the layout of dlib/image_processing/shape_predictor.h::

    version (int, 1), initial_shape (matrix<float,0,1>),
    forests: vector (cascade levels) of vector (trees) of regression_tree
        regression_tree: splits (vector of split_feature: idx1, idx2 (unsigned long), thresh (float)),
                         leaf_values (vector of matrix<float,0,1>)
    anchor_idx: vector (levels) of vector<unsigned long>
    deltas: vector (levels) of vector<dlib::vector<float,2>>

A matrix is serialized as -rows, -cols and its values; a dlib::vector<float,2> as x and y.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from trainer.errors import DataError

from .serialization import DlibStream


def _column(stream: DlibStream, what: str) -> np.ndarray:
    rows, cols = -stream.int(what), -stream.int(what)
    if rows < 0 or cols != 1:
        raise DataError(f"{stream.where}: {what} is a {rows}x{cols} matrix, expected a column")
    return np.array([stream.float(what) for _ in range(rows)], np.float32)


def read_shape_predictor(path: str | Path) -> dict[str, np.ndarray]:
    """Return a shape predictor's arrays: ``initial_shape`` (2P,), per cascade level L and tree T
    ``split_idx`` (L, T, S, 2) int32, ``split_thresh`` (L, T, S) float32, ``leaf_values`` (L, T, S+1, 2P)
    float32, ``anchor_idx`` (L, F) int32 and ``deltas`` (L, F, 2) float32 (F feature pixels per level).

    DataError when the file is not a version-1 dlib shape predictor or its trees are not all alike.
    """
    stream = DlibStream(Path(path).read_bytes(), str(path))
    if stream.int("the version") != 1:
        raise DataError(f"{path}: not a version-1 dlib shape predictor")
    initial = _column(stream, "the initial shape")
    idx, thresh, leaves = [], [], []
    for _ in range(stream.int("the number of cascade levels")):
        level_idx, level_thresh, level_leaves = [], [], []
        for _ in range(stream.int("the number of trees")):
            splits = [(stream.int("a split's first pixel"), stream.int("a split's second pixel"),
                       stream.float("a split's threshold")) for _ in range(stream.int("the number of splits"))]
            values = [_column(stream, "a leaf") for _ in range(stream.int("the number of leaves"))]
            level_idx.append([(a, b) for a, b, _ in splits])
            level_thresh.append([t for _, _, t in splits])
            level_leaves.append(values)
        idx.append(level_idx)
        thresh.append(level_thresh)
        leaves.append(level_leaves)
    anchors = [[stream.int("an anchor") for _ in range(stream.int("the number of anchors"))]
               for _ in range(stream.int("the number of anchor levels"))]
    deltas = [[(stream.float("a delta"), stream.float("a delta")) for _ in range(stream.int("the number of deltas"))]
              for _ in range(stream.int("the number of delta levels"))]
    if not stream.at_end():
        raise DataError(f"{path}: {len(stream.data) - stream.pos} bytes left after the shape predictor")
    try:
        out = {"initial_shape": initial, "split_idx": np.array(idx, np.int32),
               "split_thresh": np.array(thresh, np.float32), "leaf_values": np.array(leaves, np.float32),
               "anchor_idx": np.array(anchors, np.int32), "deltas": np.array(deltas, np.float32)}
    except ValueError:
        raise DataError(f"{path}: its trees or levels differ in size; only uniform forests are supported") from None
    levels, trees, splits = out["split_thresh"].shape
    if out["leaf_values"].shape != (levels, trees, splits + 1, initial.size) or out["anchor_idx"].shape[0] != levels \
            or out["deltas"].shape[:2] != out["anchor_idx"].shape:
        raise DataError(f"{path}: inconsistent shape predictor arrays")
    return out
