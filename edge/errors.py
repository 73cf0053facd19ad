"""Errors that reach the user: each carries one line a person can act on."""
from __future__ import annotations


class FaceEdgeError(Exception):
    """Base of every error face-edge reports to a user as a one-line message."""

    exit_code = 1


class ConfigError(FaceEdgeError):
    """A config file is missing, unreadable, or has a wrong or unknown key."""

    exit_code = 2


class BundleError(FaceEdgeError):
    """A model bundle is missing files, fails its sha256/signature check or has a bad manifest."""

    exit_code = 2


class SourceError(FaceEdgeError):
    """A camera, video file or image folder cannot be opened or read."""

    exit_code = 2


class RuntimeUnavailable(FaceEdgeError):
    """No TFLite runtime (ai_edge_litert, tflite_runtime, tensorflow.lite) can be imported."""

    exit_code = 2


class GalleryError(FaceEdgeError):
    """The gallery of enrolled people is corrupt, from another model, or a name is invalid."""

    exit_code = 2


class WebError(FaceEdgeError):
    """The web page cannot start (port taken, unsafe token file) or a request to it is refused."""

    exit_code = 2
    status = 400      # the HTTP status a request error answers with
