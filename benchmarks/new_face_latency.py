"""How many of full-size Haar's faces a loop can show at best when it finds each new face L frames late.

    python benchmarks/new_face_latency.py [--gap 3] [--max-late 9]

On each clip of benchmarks/pipeline.py, the reference faces (full-size Haar on every frame; with ../shared's
weights only those OpenCV's res10 SSD confirms, as the benchmark counts them) are cut into appearances: runs of
frames with a face, a gap of more than --gap frames without one starting a new run. A loop that finds a face
L frames after it appears, and then follows it perfectly, shows at best the faces at position L or later in
their run. Printed per L: that share. A bound from the clip alone, no search is run.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import numpy as np  # noqa: E402

from pipeline import bench_clips, confirmed_reference, reference_faces  # noqa: E402


def positions_in_runs(faces_per_frame: list[int], gap: int) -> np.ndarray:
    """Return, for every face of every frame, how many frames after the start of its run it is."""
    positions: list[int] = []
    start, last = 0, -(gap + 1)
    for index, count in enumerate(faces_per_frame):
        if count:
            if index - last > gap:
                start = index
            positions += [index - start] * count
            last = index
    return np.asarray(positions)


def main() -> int:
    """Print the best share of reference faces shown for each lateness."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gap", type=int, default=3, help="frames without a face that end a run (3)")
    parser.add_argument("--max-late", type=int, default=9)
    args = parser.parse_args()
    for clip in bench_clips():
        confirmed = confirmed_reference(clip)
        reference = confirmed if confirmed is not None else reference_faces(clip)
        kind = "SSD-confirmed" if confirmed is not None else "full-size Haar"
        positions = positions_in_runs([len(r) for r in reference], args.gap)
        shares = ", ".join(f"{late}: {100 * np.mean(positions >= late):.1f} %" for late in range(args.max_late + 1))
        print(f"{clip.name}: {len(positions)} {kind} faces; shown at best when found L frames late: {shares}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
