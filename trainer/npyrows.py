"""Rows of a large .npy file, written and read with positional file I/O instead of a memory map.

A memmap of the 202,599-face CelebA crop cache (7.6 GB at 112 px) works, but every page it
touches stays in the process's resident set until the kernel needs the memory back: one pass
over the cache, whether writing it or training from it, grows RSS to the size of the file.
:class:`NpyRowWriter` and :class:`NpyRows` use ``os.pwrite`` / ``os.pread`` on a standard .npy
file instead: the data goes through the page cache (shared, reclaimable, not the process's
RSS) and the process only holds the rows it asked for. Both are safe to use from several
threads (tf.data's parallel map): positional I/O has no shared file offset.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

READ_CHUNK = 1 << 30   # bytes per read call


def _header(shape: Sequence[int], dtype: np.dtype) -> bytes:
    """Return the .npy magic and header for a C-ordered array of ``shape`` and ``dtype``."""
    buf = io.BytesIO()
    info = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
            "shape": tuple(int(s) for s in shape)}
    try:
        np.lib.format.write_array_header_1_0(buf, info)
    except ValueError:   # a header over 64 KiB (never for a 4-d shape)
        np.lib.format.write_array_header_2_0(buf, info)
    return buf.getvalue()


class NpyRowWriter:
    """A new .npy file of a fixed ``shape`` whose rows are written one at a time: ``writer[i] = row``."""

    def __init__(self, path: str | os.PathLike[str], shape: Sequence[int], dtype: Any = np.uint8):
        self.path = Path(path)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        header = _header(self.shape, self.dtype)
        self.offset = len(header)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(self.fd, header)
        os.ftruncate(self.fd, self.offset + self.row_bytes * self.shape[0])   # zero rows (sparse)

    def __len__(self) -> int:
        return self.shape[0]

    def __setitem__(self, index: int, value: Any) -> None:
        if not 0 <= index < self.shape[0]:
            raise IndexError(f"row {index} of {self.shape[0]}")
        row = np.ascontiguousarray(value, dtype=self.dtype)
        if row.shape != self.shape[1:]:
            raise ValueError(f"row has shape {row.shape}, the file's rows are {self.shape[1:]}")
        os.pwrite(self.fd, row.tobytes(), self.offset + index * self.row_bytes)

    def close(self) -> None:
        """Flush the file to disk and close it."""
        if self.fd >= 0:
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "NpyRowWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class NpyRows:
    """Read-only rows of a C-ordered .npy file: ``rows[i]``, ``rows[a:b]``, ``rows[index_array]``,
    ``.shape``, ``len()``, ``np.asarray(rows)``, each read with ``os.pread`` (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        with open(self.path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            self.offset = fh.tell()
        if fortran or dtype.hasobject or not shape:
            raise ValueError(f"{self.path}: NpyRows needs a C-ordered array of plain values with rows")
        self.shape, self.dtype = tuple(shape), dtype
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * dtype.itemsize
        self.fd = os.open(self.path, os.O_RDONLY)

    @property
    def ndim(self) -> int:
        """Return the number of dimensions (rows included)."""
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def _read(self, start: int, count: int) -> np.ndarray:
        """Return rows start..start+count as a new array, read in pieces of at most READ_CHUNK bytes (Linux
        reads at most 2 GiB in one call: 30,698 FER faces at 160 px are 2.36 GB)."""
        out = np.empty((count,) + self.shape[1:], self.dtype)
        buf = memoryview(out.reshape(-1).view(np.uint8))
        want, done = count * self.row_bytes, 0
        position = self.offset + start * self.row_bytes
        while done < want:
            got = os.preadv(self.fd, [buf[done:done + READ_CHUNK]], position + done)
            if got <= 0:
                raise OSError(f"{self.path}: short read at row {start + done // self.row_bytes} (file cut short?)")
            done += got
        return out

    def __getitem__(self, key: Any) -> np.ndarray:
        """Return rows as a new array: ``key`` is a row, a slice, an index or boolean array, or a
        tuple whose first item is one of those (the rest indexes within the rows)."""
        if isinstance(key, tuple):
            rows, rest = self[key[0]], key[1:]
            single = isinstance(key[0], (int, np.integer))
            return rows[rest] if single else rows[(slice(None),) + rest]
        n = self.shape[0]
        if isinstance(key, (int, np.integer)):
            i = int(key) + (n if key < 0 else 0)
            if not 0 <= i < n:
                raise IndexError(f"row {key} of {n}")
            return self._read(i, 1)[0]
        if isinstance(key, slice):
            start, stop, step = key.indices(n)
            if step == 1:
                return self._read(start, max(0, stop - start))
            return self._gather(np.arange(start, stop, step))
        index = np.asarray(key)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return self._gather(index.astype(np.int64))

    def _gather(self, index: np.ndarray) -> np.ndarray:
        """Return the rows ``index`` in that order; each run of consecutive rows is one read."""
        n = self.shape[0]
        index = np.where(index < 0, index + n, index)
        if index.size and (index.min() < 0 or index.max() >= n):
            raise IndexError(f"row index out of range for {n} rows")
        out = np.empty((len(index),) + self.shape[1:], self.dtype)
        if not len(index):
            return out
        order = np.argsort(index, kind="stable")
        sorted_rows = index[order]
        breaks = np.flatnonzero(np.diff(sorted_rows) != 1) + 1
        for run in np.split(np.arange(len(sorted_rows)), breaks):
            first, count = int(sorted_rows[run[0]]), int(sorted_rows[run[-1]] - sorted_rows[run[0]] + 1)
            block = self._read(first, count)
            out[order[run]] = block[sorted_rows[run] - first]
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self._read(0, self.shape[0])
        return data if dtype is None else data.astype(dtype)

    def close(self) -> None:
        """Close the file."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        try:
            self.close()
        except OSError:
            pass


def save_npz_atomic(path: Path, **arrays: Any) -> None:
    """Write ``arrays`` to the .npz file ``path`` through a temporary file beside it, so a killed run leaves
    the old file or none, never a partial one (resumable caches skip files that exist)."""
    tmp = Path(path).with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
