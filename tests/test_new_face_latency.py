"""benchmarks/new_face_latency.py: faces' positions in their runs of frames."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from new_face_latency import positions_in_runs  # noqa: E402


def test_a_gap_longer_than_allowed_starts_a_new_run():
    # faces in frames 0-2, a 2-frame gap (same run with gap 3), frame 5; then 4 empty frames, frames 10-11 (two faces)
    counts = [1, 1, 1, 0, 0, 1, 0, 0, 0, 0, 2, 1]
    assert positions_in_runs(counts, gap=3).tolist() == [0, 1, 2, 5, 0, 0, 1]
    assert positions_in_runs(counts, gap=1).tolist() == [0, 1, 2, 0, 0, 0, 1]


def test_no_faces_no_positions():
    assert positions_in_runs([0, 0, 0], gap=3).tolist() == []
