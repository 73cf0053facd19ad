"""Per-face embedding time: the shipped int8 embedder (edge.models.FaceModel) vs the dlib encoder, same run.

    python benchmarks/bench_recognition.py [--bundle models/embedding] [--faces 60] [--threads 1]

Both are timed per face on the same held-out celeba_wild photos, after detection: dlib =
5-point landmarks + aligned 150 px chip + ResNet descriptor (what face_recognition.face_encodings
does per face); int8 = edge crop already cut, FaceModel.predict (preprocess + invoke +
dequantize + normalise). Prints the median ms and the speed ratio.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def main() -> int:
    """Time both embedders; print the figures and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=REPO / "models" / "embedding")
    parser.add_argument("--faces", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    from edge.bundle import load_bundle
    from edge.crop import crop_face
    from edge.detect import HaarDetector
    from edge.models import FaceModel
    from trainer.teacher import DlibTeacher

    bundle = load_bundle(args.bundle)
    model = FaceModel(bundle, num_threads=args.threads)
    teacher = DlibTeacher()
    haar = HaarDetector("frontal_default", downscale=1.0, min_size=24)
    photos = sorted((DATA / "celeba_wild").glob("*/*.jpg"))
    rng = np.random.default_rng(0)
    rng.shuffle(photos)
    faces = []
    for path in photos:
        bgr = cv2.imread(str(path))
        boxes = haar.detect(bgr)
        if boxes:
            faces.append((bgr, boxes[0]))
        if len(faces) == args.faces:
            break
    dlib_ms, int8_ms = [], []
    for bgr, box in faces:
        rgb = np.ascontiguousarray(bgr[:, :, ::-1])
        crop = crop_face(bgr, box, bundle.manifest.crop)
        start = time.perf_counter()
        teacher.encode(rgb, box)
        dlib_ms.append(1000 * (time.perf_counter() - start))
        start = time.perf_counter()
        model.predict(crop)
        int8_ms.append(1000 * (time.perf_counter() - start))
    d, q = float(np.median(dlib_ms)), float(np.median(int8_ms))
    print(f"faces: {len(faces)} (celeba_wild, Haar boxes), threads for int8: {args.threads}")
    print(f"dlib encoder (landmarks + chip + ResNet): median {d:.1f} ms/face (mean {np.mean(dlib_ms):.1f})")
    print(f"int8 embedder {bundle.name} via FaceModel ({model.runtime.name}): median {q:.2f} ms/face "
          f"(mean {np.mean(int8_ms):.2f})")
    print(f"speed-up: {d / q:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
