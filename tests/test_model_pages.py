"""edge.model_pages: a model file's pages leave the process once the interpreter has packed its weights."""
from __future__ import annotations

import mmap
import sys
from pathlib import Path

import pytest

from edge.bundle import load_bundle
from edge.model_pages import release_model_pages

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise and /proc are Linux's")


def resident_kb(path: Path) -> int:
    """Return the resident KiB of this process's mappings of ``path`` (from /proc/self/smaps)."""
    real, total, inside = str(path.resolve()), 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5 and ":" in fields[3]:     # a mapping's header line
            inside = len(fields) >= 6 and fields[5] == real
        elif inside and fields[0] == "Rss:":
            total += int(fields[1])
    return total


def test_an_interpreters_model_file_is_not_resident_and_its_outputs_are_unchanged():
    from edge.models import FaceModel
    from edge.push import compare_golden
    from edge.runtime import get_runtime

    bundle = load_bundle(REPO / "models" / "embedding")
    model = FaceModel(bundle, get_runtime("ai_edge_litert"), 1)
    size_kb = bundle.model_path.stat().st_size // 1024
    assert resident_kb(bundle.model_path) < size_kb // 20        # the 5.5 MB file: (almost) nothing resident
    report = compare_golden(model)
    assert report.ok and report.faces == 4 and report.max_error <= 1e-6, report.detail
    assert resident_kb(bundle.model_path) < size_kb // 20        # XNNPACK did not read the file again


def test_a_writable_mapping_keeps_its_pages(tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(bytes(1 << 20))
    with path.open("r+b") as f, mmap.mmap(f.fileno(), 0) as mapped:
        mapped[:4] = b"edit"
        assert release_model_pages(path) == 0
        assert mapped[:4] == b"edit"


def test_a_file_mapped_read_only_is_released(tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(b"x" * (1 << 20))
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        assert mapped[-1:] == b"x" and resident_kb(path) > 0
        assert release_model_pages(path) == 1 << 20
        assert resident_kb(path) == 0
        assert mapped[:1] == b"x"                                  # read again from the page cache
