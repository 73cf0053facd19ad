"""trainer.npyrows: .npy rows written and read with positional I/O, so RSS does not grow with the file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainer.npyrows import NpyRows, NpyRowWriter


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    pytest.skip("no /proc/self/status here")


def test_rows_round_trip_like_numpy(tmp_path: Path) -> None:
    a = np.random.default_rng(0).integers(0, 256, (50, 4, 4, 3), dtype=np.uint8)
    with NpyRowWriter(tmp_path / "a.npy", a.shape) as w:
        for i in range(len(a)):
            w[i] = a[i]
        with pytest.raises(ValueError, match="shape"):
            w[0] = a[0, :2]
    assert np.array_equal(np.load(tmp_path / "a.npy"), a)     # a standard .npy file
    rows = NpyRows(tmp_path / "a.npy")
    idx = np.array([5, 3, 4, 40, 41, 0, 49, 3])
    assert rows.shape == a.shape and len(rows) == 50 and rows.dtype == np.uint8
    for key in (idx, 7, -1, slice(10, 20), slice(None, None, 7), a[:, 0, 0, 0] > 128, (idx, 1), (2, 0)):
        assert np.array_equal(rows[key], a[key]), key
    assert np.array_equal(np.asarray(rows), a)
    with pytest.raises(IndexError):
        rows[np.array([50])]


def test_reads_larger_than_one_read_call_come_back_whole(tmp_path: Path, monkeypatch) -> None:
    """Linux reads at most 2 GiB per call; a read is split into READ_CHUNK pieces (here 100 bytes, so every
    read of more than two rows of 48 bytes takes several calls), and a file cut short is an error."""
    import trainer.npyrows as npyrows

    a = np.random.default_rng(1).integers(0, 256, (30, 4, 4, 3), dtype=np.uint8)
    np.save(tmp_path / "a.npy", a)
    monkeypatch.setattr(npyrows, "READ_CHUNK", 100)
    rows = NpyRows(tmp_path / "a.npy")
    assert np.array_equal(np.asarray(rows), a)
    assert np.array_equal(rows[3:29], a[3:29])
    rows[0][0, 0, 0] = 0                                     # rows are new, writable arrays
    with open(tmp_path / "a.npy", "r+b") as fh:
        fh.truncate(rows.offset + 10 * rows.row_bytes + 5)
    with pytest.raises(OSError, match="short read at row 10"):
        np.asarray(NpyRows(tmp_path / "a.npy"))


def test_a_pass_over_the_file_does_not_grow_rss(tmp_path: Path) -> None:
    """Writing and reading 150 MB through NpyRows/NpyRowWriter; a memmap doing the same grows RSS by it."""
    n, shape = 4000, (112, 112, 3)           # 4000 crops of 112 px: 150 MB
    path = tmp_path / "crops.npy"
    before = _rss_mb()
    with NpyRowWriter(path, (n,) + shape) as w:
        for i in range(n):
            w[i] = np.full(shape, i % 251, np.uint8)
    after_write = _rss_mb()
    rows = NpyRows(path)
    checksum, peak = 0, after_write
    for start in range(0, n, 128):
        checksum += int(rows[start:start + 128][:, 0, 0, 0].sum())
        peak = max(peak, _rss_mb())
    assert checksum == sum(i % 251 for i in range(n))
    mapped = np.load(path, mmap_mode="r")
    for start in range(0, n, 128):
        int(np.asarray(mapped[start:start + 128])[:, 0, 0, 0].sum())
    grown_by_memmap = _rss_mb() - peak
    del mapped
    print(f"\nRSS +{after_write - before:.0f} MB writing, +{peak - before:.0f} MB reading 150 MB of rows; "
          f"a memmap pass: +{grown_by_memmap:.0f} MB")
    assert after_write - before < 30 and peak - before < 30
    assert grown_by_memmap > 100   # the measurement sees what a mapping does


def test_save_npz_atomic_replaces_the_file_and_leaves_no_temporary(tmp_path):
    from trainer.npyrows import save_npz_atomic

    path = tmp_path / "chunk_00000.npz"
    save_npz_atomic(path, a=np.arange(3))
    save_npz_atomic(path, a=np.arange(5), b=np.ones(2))
    with np.load(path) as data:
        assert data["a"].tolist() == [0, 1, 2, 3, 4] and data["b"].tolist() == [1.0, 1.0]
    assert [p.name for p in tmp_path.iterdir()] == ["chunk_00000.npz"]
