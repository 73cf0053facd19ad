"""TFLite runtime registry: ai_edge_litert first, then tflite_runtime, then tensorflow.lite.

Runtimes are chosen by name (``auto`` tries them in that order). TensorFlow is only
imported when it is named or when neither LiteRT runtime is installed.

The runtimes' native logger writes "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
to the process's stderr when the first interpreter allocates its tensors, and none of them
offers an option to silence it (TF_CPP_MIN_LOG_LEVEL does not reach it). Interpreter creation
therefore runs with file descriptor 2 captured (:func:`native_stderr_filtered`): that line is
dropped and anything else the runtime printed (a real error) is written back to stderr.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import sys
import tempfile
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from .errors import RuntimeUnavailable

RUNTIME_ORDER = ("ai_edge_litert", "tflite_runtime", "tensorflow")


def _load_litert() -> Any:
    return importlib.import_module("ai_edge_litert.interpreter").Interpreter


def _load_tflite_runtime() -> Any:
    return importlib.import_module("tflite_runtime.interpreter").Interpreter


def _load_tensorflow() -> Any:
    return importlib.import_module("tensorflow").lite.Interpreter


# Lines of the runtimes' native log that say nothing a user can act on.
NATIVE_NOISE = ("Created TensorFlow Lite XNNPACK delegate",)
_STDERR_LOCK = threading.RLock()
_DROPPED: list[str] = []       # the noise lines dropped so far (a check asks whether XNNPACK started)


@contextlib.contextmanager
def native_stderr_filtered(noise: Sequence[str] = NATIVE_NOISE) -> Iterator[None]:
    """Run the block with file descriptor 2 captured; afterwards write back every captured line that
    contains none of ``noise`` (so native errors stay visible). Yields nothing; without a usable
    fd 2 (a daemon with stderr closed) the block runs uncaptured."""
    with _STDERR_LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):
            saved = -1
        if saved < 0:
            yield
            return
        with tempfile.TemporaryFile() as captured:
            os.dup2(captured.fileno(), 2)
            try:
                yield
            finally:
                try:
                    sys.stderr.flush()
                except (OSError, ValueError):
                    pass
                os.dup2(saved, 2)
                os.close(saved)
                captured.seek(0)
                lines = captured.read().decode("utf-8", "replace").splitlines(keepends=True)
                kept = "".join(line for line in lines if not any(n in line for n in noise))
                _DROPPED.extend(line.rstrip("\n") for line in lines if any(n in line for n in noise))
                del _DROPPED[:-100]
                if kept:
                    os.write(2, kept.encode("utf-8"))


def dropped_native_lines() -> list[str]:
    """Return the native log lines :func:`native_stderr_filtered` has kept off stderr in this process
    (the latest 100), e.g. LiteRT's "Created TensorFlow Lite XNNPACK delegate for CPU."."""
    with _STDERR_LOCK:
        return list(_DROPPED)


_LOADERS: dict[str, Callable[[], Any]] = {
    "ai_edge_litert": _load_litert,
    "tflite_runtime": _load_tflite_runtime,
    "tensorflow": _load_tensorflow,
}


@dataclass(frozen=True)
class Runtime:
    """A TFLite interpreter class and the name of the package it came from."""

    name: str
    interpreter_class: Any

    def interpreter(self, model_path: str, num_threads: int = 1) -> Any:
        """Return an allocated interpreter for ``model_path`` running on ``num_threads`` threads
        (the runtime's XNNPACK notice filtered out of stderr, see :func:`native_stderr_filtered`)."""
        from .model_pages import release_model_pages

        with native_stderr_filtered():
            interp = self.interpreter_class(model_path=str(model_path), num_threads=int(num_threads))
            interp.allocate_tensors()
        release_model_pages(model_path)   # XNNPACK packed the weights: the mapped file is not read again
        return interp

    def version(self) -> str:
        """Return the installed version of this runtime's package, or '?'."""
        from importlib import metadata

        dist = {"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime",
                "tensorflow": "tensorflow"}[self.name]
        for candidate in (dist, dist + "-cpu"):
            try:
                return metadata.version(candidate)
            except metadata.PackageNotFoundError:
                continue
        return "?"


_cache: dict[str, Runtime] = {}


def available_runtimes() -> list[str]:
    """Return the names of the runtimes that import on this machine, in preference order."""
    names = []
    for name in RUNTIME_ORDER:
        try:
            get_runtime(name)
            names.append(name)
        except RuntimeUnavailable:
            continue
    return names


def get_runtime(name: str = "auto") -> Runtime:
    """Return the runtime called ``name`` (or the first that imports, for ``auto``).

    Raises RuntimeUnavailable with an install hint when none can be imported.
    """
    if name in _cache:
        return _cache[name]
    if name == "auto":
        order = RUNTIME_ORDER
    elif name in _LOADERS:
        order = (name,)
    else:
        raise RuntimeUnavailable(
            f"unknown runtime {name!r}: choose one of auto, {', '.join(RUNTIME_ORDER)}")
    errors = []
    for candidate in order:
        try:
            runtime = Runtime(candidate, _LOADERS[candidate]())
        except Exception as exc:  # ImportError, or a wheel built against another numpy
            errors.append(f"{candidate}: {type(exc).__name__}: {exc}".splitlines()[0])
            continue
        _cache[name] = runtime
        _cache[candidate] = runtime
        return runtime
    raise RuntimeUnavailable("no TFLite runtime could be imported (" + "; ".join(errors)
                             + "); install one with: pip install ai-edge-litert")
