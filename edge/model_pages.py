"""Give back the memory of a model file once its interpreter no longer reads it.

An interpreter maps its ``model.tflite`` read-only. With XNNPACK (the default delegate of
every runtime face-edge uses) the weights are packed into the delegate's own buffers when the
tensors are allocated, and the mapped file is not read again; its pages still count in the
process's resident memory (4.5 MB for the landmarks bundle, 5.5 MB for the embedding). Telling
the kernel the pages are not needed (``madvise(MADV_DONTNEED)``) drops them from this process.
It is always safe for a read-only file mapping: a page read again later (a runtime without
XNNPACK, an operator XNNPACK does not run) is read back from the page cache.
"""
from __future__ import annotations

import ctypes
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("face-edge.runtime")

MADV_DONTNEED = 4


def _madvise():
    """Return libc's madvise as a ctypes function, or None where there is none (not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    return madvise


def release_model_pages(model_path: str | Path) -> int:
    """Drop this process's resident pages of every read-only mapping of ``model_path``; return the bytes
    of the mappings released (0 where nothing was mapped or the platform has no madvise)."""
    madvise = _madvise()
    if madvise is None:
        return 0
    real = os.path.realpath(model_path)
    released = 0
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            lines = maps.readlines()
    except OSError:
        return 0
    for line in lines:
        parts = line.split(maxsplit=5)
        if len(parts) < 6 or parts[5].rstrip("\n") != real or "w" in parts[1]:
            continue     # another file, or a writable mapping (its pages may hold changes: never dropped)
        start, end = (int(x, 16) for x in parts[0].split("-"))
        if madvise(start, end - start, MADV_DONTNEED) == 0:
            released += end - start
        else:
            log.debug("madvise on %s failed: errno %d", real, ctypes.get_errno())
    return released
