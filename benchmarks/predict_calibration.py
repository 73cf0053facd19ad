"""Do the confidences `face-train predict` reports mean what they say? Calibration of a multitask bundle, device code.

    python benchmarks/predict_calibration.py [--bundle models/multitask] [--data ../shared/data] [--cache-dir DIR]

The bundle runs through edge's FaceModel (int8, its test-time views, one thread) on its own
held-out faces: UTKFace's seeded validation and test split (seed from the manifest, crops from
the trainer's cache, built on first use) and the official FER2013 test folder. For gender (one
sigmoid, decided at the manifest threshold t) three readings are compared: the raw score decided
at t (what the old CSV reported as a confidence, below 0.5 for some chosen labels), the raw
score decided at 0.5, and the score re-centred on t that `face-train predict` reports
(trainer.predict.heads.recentred). Printed per reading: accuracy, mean confidence of the chosen
class, share of confidences under 0.5, expected calibration error (10 bins), negative
log-likelihood and Brier score; for ethnicity and emotion (softmax) accuracy, mean confidence
and ECE of the top class.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def ece(confidence: np.ndarray, correct: np.ndarray, low: float = 0.0, bins: int = 10) -> float:
    """Return the expected calibration error: bin-weighted |mean confidence - accuracy| over ``bins`` bins."""
    edges = np.linspace(low, 1.0, bins + 1)
    total = 0.0
    for a, b in zip(edges[:-1], edges[1:]):
        member = (confidence >= a) & ((confidence < b) | (b == 1.0))
        if member.any():
            total += member.mean() * abs(confidence[member].mean() - correct[member].mean())
    return float(total)


def main() -> int:
    """Print the calibration table; return 0."""
    from edge.bundle import load_bundle
    from edge.models import FaceModel
    from edge.runtime import get_runtime
    from trainer.bundle_eval import face_model_outputs
    from trainer.data import fer as fer_data
    from trainer.data import utkface as utk_data
    from trainer.data.multitask import DETECT_PAD
    from trainer.faces import FaceCropper, cached_face_crops
    from trainer.predict.heads import recentred

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default=str(REPO / "models" / "multitask"))
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--cache-dir", default=None, help="face crop cache (default: the trainer's, /work/cache)")
    args = parser.parse_args()
    bundle = load_bundle(args.bundle)
    manifest = bundle.manifest
    sizes = (manifest.extra.get("data") or {}).get("sizes") or {}
    seed, threshold = int(manifest.extra["seed"]), manifest.output("gender").threshold("female")
    cropper = FaceCropper(manifest.crop, pad=DETECT_PAD)
    utk = utk_data.read_utkface(Path(args.data, "utkface").resolve())
    faces, ok, _ = cached_face_crops("utkface", utk.paths, cropper, args.cache_dir, progress=False)
    split = utk_data.split_utkface(len(utk), seed)
    fer = fer_data.read_fer(Path(args.data, "fer2013").resolve())
    fer_test = fer.subset(fer_data.split_fer(fer, seed)["test"])
    fer_faces, fer_ok, _ = cached_face_crops("fer2013_test", fer_test.paths, cropper, args.cache_dir,
                                                progress=False)
    model = FaceModel(bundle, get_runtime("ai_edge_litert"), num_threads=1)
    print(f"bundle {manifest.name} {manifest.version}: {len(manifest.views)} views, gender threshold {threshold}")
    for name in ("val", "test"):
        index = split[name][ok[split[name]]]
        expected = (sizes.get(name) or {}).get("utkface")
        if expected is not None and expected != len(index):
            print(f"UTKFace {name}: {len(index)} faces here, the bundle's split had {expected}: not its held-out "
                  "faces, stopping")
            return 1
        start = time.time()
        out = face_model_outputs(model, faces[index])
        truth, score = utk.gender[index].astype(int), out["gender"][:, 0]
        q = np.array([recentred(s, threshold) for s in score])
        print(f"UTKFace {name}: {len(index)} faces ({time.time() - start:.0f} s)")
        for label, p, cut in (("raw score, decided at t", score, threshold), ("raw score, decided at 0.5", score, 0.5),
                              ("re-centred on t (reported)", q, 0.5)):
            chose = p >= cut
            confidence = np.where(chose, p, 1 - p)
            correct = (chose.astype(int) == truth).astype(float)
            nll = -np.mean(np.log(np.clip(np.where(truth == 1, p, 1 - p), 1e-7, 1)))
            print(f"  gender {label:27s} acc {correct.mean():.4f}  mean conf {confidence.mean():.4f}  "
                  f"conf<0.5 {np.mean(confidence < 0.5):.4f}  ECE {ece(confidence, correct, 0.5):.4f}  "
                  f"NLL {nll:.4f}  Brier {np.mean((p - truth) ** 2):.4f}")
        ethnicity = utk.ethnicity[index].astype(int)
        probs = out["ethnicity"]
        correct = (probs.argmax(1) == ethnicity).astype(float)
        print(f"  ethnicity: acc {correct.mean():.4f}  mean conf {probs.max(1).mean():.4f}  "
              f"ECE {ece(probs.max(1), correct):.4f}")
    index = np.flatnonzero(fer_ok)
    start = time.time()
    probs = face_model_outputs(model, fer_faces[index])["emotion"]
    correct = (probs.argmax(1) == fer_test.labels[index]).astype(float)
    print(f"FER2013 test: {len(index)} faces ({time.time() - start:.0f} s)")
    print(f"  emotion: acc {correct.mean():.4f}  mean conf {probs.max(1).mean():.4f}  ECE {ece(probs.max(1), correct):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
