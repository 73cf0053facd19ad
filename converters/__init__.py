"""Keras -> quantized TFLite model bundles (face-convert): convert_run, keygen, parity reports."""
from __future__ import annotations

from typing import Any

__all__ = ["convert_run", "keygen"]


def __getattr__(name: str) -> Any:
    # Lazy, so `import converters` stays cheap until a conversion is asked for.
    if name == "convert_run":
        from .convert import convert_run

        return convert_run
    if name == "keygen":
        from .signing import keygen

        return keygen
    raise AttributeError(name)
