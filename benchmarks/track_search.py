"""The search around a tracked face, alone: how often it finds the face again in the next frame, and its time.

    python benchmarks/track_search.py

On each clip of benchmarks/pipeline.py, every face full-size Haar finds in two consecutive frames (IoU >= 0.3)
is a trial: the region around its box in the first frame is searched in the second with edge.search's own
functions (region_around, search_region), with OpenCV on one thread. A trial is kept when the search finds a
box overlapping the face (IoU >= 0.3). The shipped constants are measured beside the ones before them.
Figures, not a test: the times depend on the machine.
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
CONFIGS = {   # name: (pad, (smallest, largest) face relative to the box, neighbours less than a cold search,
              #        Haar windows the smallest face is shrunk to: 0 for no shrinking)
    "shipped": (face_search.TRACK_PAD, face_search.TRACK_SIZES, face_search.TRACK_NEIGHBOURS_LESS,
                face_search.TRACK_WINDOWS),
    "full size (2026-12-07)": (0.25, (0.85, 1.18), 3, 0.0),
    "wider, full size (2026-12-07)": (0.33, (0.8, 1.25), 2, 0.0),
}


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
        for name, (pad, sizes, less, windows) in CONFIGS.items():
            seconds, kept = 0.0, 0
            for i, before, box in pairs:
                t0 = time.perf_counter()
                region = face_search.region_around(before, greys[i].shape[1], greys[i].shape[0], MIN_SIZE,
                                                   "track", pad, sizes)
                found = face_search.search_region(classifier, greys[i], region, 1.1, MIN_NEIGHBORS, less, windows)
                seconds += time.perf_counter() - t0
                kept += any(iou(box, b) >= 0.3 for b in found)
            print(f"{clip.name:24s} {name:30s} pad {pad:.2f}, sizes {sizes[0]:.2f}-{sizes[1]:.2f}, neighbours "
                  f"{MIN_NEIGHBORS - less}, shrunk to {windows or '-'} windows: found again "
                  f"{kept / len(pairs):.3f} of {len(pairs)}, {1000 * seconds / len(pairs):.2f} ms per search")
    return 0


if __name__ == "__main__":
    sys.exit(main())
