"""The search around a tracked face, alone: how often it finds the face again in the next frame, and its time.

    python benchmarks/track_search.py

On each clip of benchmarks/pipeline.py, every face full-size Haar finds in two consecutive frames (IoU >= 0.3)
is a trial: the region around its box in the first frame is searched in the second, as edge.search searches
around a track (TRACK_PAD, TRACK_SIZES, min_neighbors - TRACK_NEIGHBOURS_LESS), with OpenCV on one thread. A
trial is kept when the search finds a box overlapping the face (IoU >= 0.3). The shipped constants are
measured beside the ones before them. Figures, not a test: the times depend on the machine.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import cv2  # noqa: E402

from edge import search as face_search  # noqa: E402
from edge.crop import iou  # noqa: E402
from edge.detect import HaarDetector  # noqa: E402
from pipeline import bench_clips, clip_frames, reference_faces  # noqa: E402

MIN_SIZE, MIN_NEIGHBORS = 40, 5
CONFIGS = {   # name: (pad, (smallest, largest) face relative to the box, neighbours less than a cold search)
    "shipped": (face_search.TRACK_PAD, face_search.TRACK_SIZES, face_search.TRACK_NEIGHBOURS_LESS),
    "before (2026-12-07)": (0.33, (0.8, 1.25), 2),
}


def search_around(classifier: cv2.CascadeClassifier, grey, box, pad: float, sizes: tuple[float, float],
                  less: int) -> list[tuple[int, int, int, int]]:
    """Return the faces found in ``grey`` around ``box`` the way edge.search searches around a track."""
    x, y, w, h = box
    side = max(w, h)
    reach = side * pad
    height, width = grey.shape
    x0, y0 = max(0, int(x - reach)), max(0, int(y - reach))
    x1, y1 = min(width, int(x + w + reach)), min(height, int(y + h + reach))
    lo = max(MIN_SIZE, int(side * sizes[0]))
    hi = max(lo + 1, int(side * sizes[1]))
    part = grey[y0:y1, x0:x1]
    if min(part.shape) < lo:
        return []
    found = classifier.detectMultiScale(part, 1.1, max(1, MIN_NEIGHBORS - less), minSize=(lo, lo), maxSize=(hi, hi))
    return [(int(a) + x0, int(b) + y0, int(c), int(d)) for a, b, c, d in (found if len(found) else [])]


def trials(clip: Path) -> tuple[list, list[tuple[int, tuple, tuple]]]:
    """Return (equalised grey frames, [(frame index, box in the frame before, box in the frame)])."""
    reference = reference_faces(clip)
    greys = [cv2.equalizeHist(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY)) for f in clip_frames(clip)]
    pairs = []
    for i in range(1, len(greys)):
        for box in reference[i]:
            before: Optional[tuple] = next((b for b in reference[i - 1] if iou(b, box) >= 0.3), None)
            if before is not None:
                pairs.append((i, before, box))
    return greys, pairs


def main() -> int:
    """Print, per clip and configuration, the share of faces found again and the ms per search."""
    cv2.setNumThreads(1)
    classifier = HaarDetector(min_size=MIN_SIZE, downscale=1.0).classifier
    for clip in bench_clips():
        greys, pairs = trials(clip)
        for name, (pad, sizes, less) in CONFIGS.items():
            seconds, kept = 0.0, 0
            for i, before, box in pairs:
                t0 = time.perf_counter()
                found = search_around(classifier, greys[i], before, pad, sizes, less)
                seconds += time.perf_counter() - t0
                kept += any(iou(box, b) >= 0.3 for b in found)
            print(f"{clip.name:24s} {name:20s} pad {pad:.2f}, sizes {sizes[0]:.2f}-{sizes[1]:.2f}, neighbours "
                  f"{MIN_NEIGHBORS - less}: found again {kept / len(pairs):.3f} of {len(pairs)}, "
                  f"{1000 * seconds / len(pairs):.2f} ms per search")
    return 0


if __name__ == "__main__":
    sys.exit(main())
