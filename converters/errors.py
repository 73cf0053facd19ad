"""Errors of face-convert: one line a user can act on, exit code 2."""
from __future__ import annotations

from edge.errors import FaceEdgeError


class ConvertError(FaceEdgeError):
    """A run folder, model, representative set, key or output folder that cannot be converted."""

    exit_code = 2


class ParityError(ConvertError):
    """The converted model disagrees with the float model more than the agreement floor allows."""
