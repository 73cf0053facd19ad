"""Errors the trainer reports to a user: one actionable line each (exit code 2)."""
from __future__ import annotations

from edge.errors import FaceEdgeError


class DataError(FaceEdgeError):
    """A data set, label file or split is missing, malformed or empty; the message names file and line."""

    exit_code = 2


class RunError(FaceEdgeError):
    """A training RUN folder is missing files or has a malformed run.yaml."""

    exit_code = 2
