"""The dlib ResNet face descriptor (face_recognition's encoder) as a training-time teacher and baseline.

Uses ``dlib`` (dlib-bin) and the model files of ``face_recognition_models`` directly: HOG
detection, 5-point landmarks, 150 px aligned chip, 128-d descriptor. The teacher sees its
own aligned chip; the student sees the edge crop. To make both describe the *same* face,
:meth:`DlibTeacher.describe` takes the Haar box the student's crop comes from and picks the
HOG detection that overlaps it (else runs the landmarks on the Haar box itself).

``python -m trainer.teacher DATASET`` caches descriptors of a whole shared data set under
``/work/cache/teacher/DATASET/`` in resumable chunks.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from edge.crop import Box, iou
from edge.detect import HaarDetector
from edge.shape_predictor import hog_like
from trainer.errors import DataError
from trainer.npyrows import save_npz_atomic

DEFAULT_DIR = Path(os.environ.get("FACE_EDGE_CACHE", "/work/cache")) / "teacher"

# Where each cached descriptor's face box came from.
SOURCE_NONE, SOURCE_HOG_MATCH, SOURCE_HAAR, SOURCE_HOG_ONLY, SOURCE_WHOLE = 0, 1, 2, 3, 4
SOURCE_NAMES = {SOURCE_NONE: "none", SOURCE_HOG_MATCH: "hog matching haar", SOURCE_HAAR: "haar box",
                SOURCE_HOG_ONLY: "hog (no haar)", SOURCE_WHOLE: "whole image"}


@dataclass
class TeacherFace:
    """One described face: the 128-d descriptor (not normalised, as dlib returns it), its box, source."""

    vector: np.ndarray
    box: Box
    source: int


def dlib_available() -> bool:
    """Return True when dlib and face_recognition_models import."""
    try:
        import dlib  # noqa: F401
        import face_recognition_models  # noqa: F401
    except ImportError:
        return False
    return True


class DlibTeacher:
    """dlib HOG detector + 5-point landmarks + ResNet descriptor (the face_recognition encoder)."""

    def __init__(self, upsample: int = 1, num_jitters: int = 1):
        try:
            import dlib
            import face_recognition_models as frm
        except ImportError as exc:
            raise DataError(f"the dlib teacher needs dlib-bin and face-recognition-models ({exc}); "
                            "pip install dlib-bin face-recognition-models") from None
        self._dlib = dlib
        self._hog = dlib.get_frontal_face_detector()
        self._landmarks = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        self._encoder = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
        self.upsample = upsample
        self.num_jitters = num_jitters

    def detect(self, rgb: np.ndarray) -> list[Box]:
        """Return HOG face boxes (x, y, w, h) of an RGB uint8 image, largest first."""
        rects = self._hog(rgb, self.upsample)
        boxes = [(r.left(), r.top(), r.width(), r.height()) for r in rects]
        return sorted(boxes, key=lambda b: b[2] * b[3], reverse=True)

    def encode(self, rgb: np.ndarray, box: Box) -> np.ndarray:
        """Return the 128-d float32 dlib descriptor of the face in ``box`` (landmarks + chip + ResNet)."""
        x, y, w, h = (int(v) for v in box)
        rect = self._dlib.rectangle(x, y, x + w, y + h)
        shape = self._landmarks(rgb, rect)
        return np.asarray(self._encoder.compute_face_descriptor(rgb, shape, self.num_jitters), np.float32)

    def describe(self, rgb: np.ndarray, haar_box: Optional[Box] = None,
                 fallback_box: Optional[Box] = None) -> Optional[TeacherFace]:
        """Return the TeacherFace of the face the student sees (``haar_box``), or None when there is none.

        Order: the HOG detection overlapping ``haar_box`` (IoU >= 0.3); else ``haar_box`` mapped to
        HOG framing (:func:`hog_like`);
        else the largest HOG detection; else ``fallback_box`` (an aligned image's whole-face box).
        """
        hog = self.detect(rgb)
        if haar_box is not None:
            best = max(hog, key=lambda b: iou(b, haar_box), default=None)
            if best is not None and iou(best, haar_box) >= 0.3:
                return TeacherFace(self.encode(rgb, best), best, SOURCE_HOG_MATCH)
            box = hog_like(haar_box)
            return TeacherFace(self.encode(rgb, box), box, SOURCE_HAAR)
        if hog:
            return TeacherFace(self.encode(rgb, hog[0]), hog[0], SOURCE_HOG_ONLY)
        if fallback_box is not None:
            return TeacherFace(self.encode(rgb, fallback_box), fallback_box, SOURCE_WHOLE)
        return None


def padded(bgr: np.ndarray, pad: float) -> tuple[np.ndarray, int, int]:
    """Return (image with a replicated border of ``pad`` x its size per side, x offset, y offset)."""
    if pad <= 0:
        return bgr, 0, 0
    h, w = bgr.shape[:2]
    py, px = int(round(h * pad)), int(round(w * pad))
    return cv2.copyMakeBorder(bgr, py, py, px, px, cv2.BORDER_REPLICATE), px, py


def aligned_face_box(shape: tuple[int, ...]) -> Box:
    """Return a face box for an already-aligned face image (the central ~70% of its width)."""
    h, w = shape[:2]
    side = 0.7 * min(w, h)
    return int(round((w - side) / 2)), int(round((h - side) / 2 + 0.05 * h)), int(round(side)), int(round(side))


def describe_files(paths: Sequence[str | Path], teacher: DlibTeacher, haar: HaarDetector,
                   pad: float = 0.0, aligned: bool = False) -> dict[str, np.ndarray]:
    """Return arrays for ``paths``: vectors N x 128, boxes/haar N x 4 (original image coords), source N.

    The Haar box is found on the image padded by ``pad`` (as the student's FaceCropper does);
    ``aligned`` images with neither a Haar nor a HOG face use :func:`aligned_face_box`.
    """
    n = len(paths)
    out = {"vectors": np.zeros((n, 128), np.float32), "boxes": np.full((n, 4), -1, np.int32),
           "haar": np.full((n, 4), -1, np.int32), "source": np.zeros(n, np.int8),
           "seconds": np.zeros(n, np.float32)}
    for i, path in enumerate(paths):
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            continue
        frame, ox, oy = padded(bgr, pad)
        boxes = haar.detect(frame)
        haar_box = boxes[0] if boxes else None
        fallback = None
        if aligned:
            fx, fy, fw, fh = aligned_face_box(bgr.shape)
            fallback = (fx + ox, fy + oy, fw, fh)
        rgb = np.ascontiguousarray(frame[:, :, ::-1])
        start = time.perf_counter()
        face = teacher.describe(rgb, haar_box, fallback)
        out["seconds"][i] = time.perf_counter() - start
        if haar_box is not None:
            out["haar"][i] = (haar_box[0] - ox, haar_box[1] - oy, haar_box[2], haar_box[3])
        if face is not None:
            out["vectors"][i] = face.vector
            out["boxes"][i] = (face.box[0] - ox, face.box[1] - oy, face.box[2], face.box[3])
            out["source"][i] = face.source
    return out


def dataset_files(name: str, data_root: Path) -> tuple[list[Path], float, bool]:
    """Return (image paths, detection pad, aligned?) of a shared data set known to the teacher cache."""
    if name == "celeba_wild":
        return sorted((data_root / "celeba_wild").glob("*/*.jpg")), 0.0, False
    if name == "celeba":
        return sorted((data_root / "celeba" / "img_align_celeba").glob("*.jpg")), 0.0, True
    if name in ("utkface", "utkface_more"):
        return sorted((data_root / name / "UTKFace").glob("*.jpg")), 0.25, True
    if name == "orl":
        return sorted((data_root / "orl").glob("s*/*.pgm")), 0.0, True
    raise DataError(f"unknown teacher data set {name!r} (celeba_wild, celeba, utkface, utkface_more, orl)")


def load_cache(name: str, cache_dir: Path = DEFAULT_DIR) -> dict[str, np.ndarray]:
    """Return the concatenated cached arrays of data set ``name`` plus ``paths`` (str array)."""
    folder = cache_dir / name
    chunks = sorted(folder.glob("chunk_*.npz"))
    if not chunks:
        raise DataError(f"{folder}: no teacher cache; run `python -m trainer.teacher {name}` first")
    parts = [dict(np.load(c, allow_pickle=False)) for c in chunks]
    keys = ("paths", "vectors", "boxes", "haar", "source", "seconds")
    return {k: np.concatenate([p[k] for p in parts]) for k in keys}


def build_cache(name: str, data_root: Path, cache_dir: Path = DEFAULT_DIR, chunk: int = 200,
                limit: Optional[int] = None) -> Path:
    """Describe every image of data set ``name`` in resumable chunks; return the cache folder."""
    from tqdm import tqdm

    paths, pad, aligned = dataset_files(name, data_root)
    if limit:
        paths = paths[:limit]
    folder = cache_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    teacher = DlibTeacher()
    # The same Haar settings as trainer.faces.FaceCropper's defaults, so teacher and student agree on the face.
    haar = HaarDetector("frontal_default", downscale=1.0, min_size=24, scale_factor=1.1, min_neighbors=5)
    starts = range(0, len(paths), chunk)
    for k in tqdm(starts, desc=f"dlib teacher {name}", unit="chunk", file=sys.stdout, mininterval=0):
        target = folder / f"chunk_{k // chunk:05d}.npz"
        if target.is_file():
            continue
        part = paths[k:k + chunk]
        arrays = describe_files(part, teacher, haar, pad, aligned)
        rel = np.array([str(p.relative_to(data_root)) for p in part])
        save_npz_atomic(target, paths=rel, haar_mapped=np.array(True), **arrays)
    return folder


def refresh_haar_rows(name: str, data_root: Path, cache_dir: Path = DEFAULT_DIR) -> int:
    """Re-describe cached rows whose box came from Haar alone (older caches used the raw Haar box).

    Returns the number of rows rewritten; chunks are replaced atomically.
    """
    _, pad, _ = dataset_files(name, data_root)
    teacher = DlibTeacher()
    count = 0
    for chunk in sorted((cache_dir / name).glob("chunk_*.npz")):
        data = dict(np.load(chunk, allow_pickle=False))
        rows = np.flatnonzero(data["source"] == SOURCE_HAAR)
        if not len(rows) or bool(data.get("haar_mapped", np.array(False))):
            continue
        for i in rows:
            bgr = cv2.imread(str(data_root / str(data["paths"][i])), cv2.IMREAD_COLOR)
            frame, ox, oy = padded(bgr, pad)
            x, y, w, h = (int(v) for v in data["haar"][i])
            box = hog_like((x + ox, y + oy, w, h))
            data["vectors"][i] = teacher.encode(np.ascontiguousarray(frame[:, :, ::-1]), box)
            data["boxes"][i] = (box[0] - ox, box[1] - oy, box[2], box[3])
        data["haar_mapped"] = np.array(True)
        save_npz_atomic(chunk, **data)
        count += len(rows)
    return count


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line: cache dlib descriptors of shared data sets (resumable)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+", help="celeba_wild, celeba, utkface, orl")
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--cache", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--refresh-haar", action="store_true",
                        help="only re-describe cached rows whose box came from Haar alone")
    args = parser.parse_args(argv)
    for name in args.datasets:
        if args.refresh_haar:
            print(f"{name}: {refresh_haar_rows(name, args.data, args.cache)} Haar-box rows re-described")
            continue
        folder = build_cache(name, args.data, args.cache, limit=args.limit)
        cache = load_cache(name, args.cache)
        counts = {SOURCE_NAMES[s]: int((cache["source"] == s).sum()) for s in SOURCE_NAMES}
        print(f"{name}: {len(cache['paths'])} images -> {folder}; box sources {counts}; "
              f"{1000 * float(cache['seconds'][cache['source'] > 0].mean()):.0f} ms per face", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
