"""Primitives of dlib's binary serialization (dlib/serialize.h, dlib/cuda/tensor.h).

Integers are packed: one control byte (low 4 bits = byte count, bit 7 = negative) and that
many little-endian bytes. Floats are a packed int64 mantissa and int16 exponent
(``mantissa * 2**exponent``). Strings are a packed length and the bytes. Booleans are the
characters '1' / '0'. Tensors (version 2) are four packed dimensions and raw little-endian
float32 values.
"""
from __future__ import annotations

import math

import numpy as np

from trainer.errors import DataError

_SPECIAL_EXPONENTS = {32000: math.inf, 32001: -math.inf, 32002: math.nan}


class DlibStream:
    """A cursor over the bytes of a dlib-serialized object; every read names what it expected on failure."""

    def __init__(self, data: bytes, where: str = "dlib file"):
        self.data = memoryview(data)
        self.pos = 0
        self.where = where

    def _fail(self, what: str) -> DataError:
        return DataError(f"{self.where}: cannot read {what} at byte {self.pos} (not a dlib network file, "
                         "or truncated)")

    def _take(self, n: int, what: str) -> memoryview:
        if self.pos + n > len(self.data):
            raise self._fail(what)
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def int(self, what: str = "an integer") -> int:
        """Return the next packed (signed or unsigned) integer."""
        control = self._take(1, what)[0]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            raise self._fail(what)
        value = int.from_bytes(self._take(size, what), "little")
        return -value if control & 0x80 else value

    def float(self, what: str = "a float") -> float:
        """Return the next float (mantissa, exponent); the old ASCII format is not supported."""
        if self.pos >= len(self.data) or self.data[self.pos] & 0x70:
            raise self._fail(what)
        mantissa = self.int(what)
        exponent = self.int(what)
        if exponent in _SPECIAL_EXPONENTS:
            return _SPECIAL_EXPONENTS[exponent]
        return math.ldexp(float(mantissa), exponent)

    def string(self, what: str = "a string") -> str:
        """Return the next length-prefixed string."""
        n = self.int(what)
        if n < 0 or n > 1 << 20:
            raise self._fail(what)
        return bytes(self._take(n, what)).decode("latin-1")

    def bool(self, what: str = "a flag") -> bool:
        """Return the next boolean ('1' or '0')."""
        ch = self._take(1, what)[0]
        if ch not in (ord("0"), ord("1")):
            raise self._fail(what)
        return ch == ord("1")

    def tensor(self, what: str = "a tensor") -> np.ndarray:
        """Return the next tensor as float32 (num_samples, k, nr, nc)."""
        version = self.int(what)
        if version != 2:
            raise self._fail(f"{what} (tensor version {version}, expected 2)")
        shape = tuple(self.int(what) for _ in range(4))
        if any(d < 0 for d in shape):
            raise self._fail(what)
        count = int(np.prod(shape))
        raw = self._take(4 * count, what)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def alias_tensor(self, what: str = "an alias tensor") -> tuple[int, int, int, int]:
        """Return the shape of the next alias_tensor (a view into a layer's params)."""
        if self.int(what) != 1:
            raise self._fail(what)
        return tuple(self.int(what) for _ in range(4))  # type: ignore[return-value]

    def at_end(self) -> bool:
        """Return True when every byte was read."""
        return self.pos == len(self.data)
