"""Where the dlib model files that PyPI's face-recognition-models ships are (public domain, dlib-models)."""
from __future__ import annotations

from pathlib import Path

from trainer.errors import DataError


def packaged_dat(locator: str) -> Path:
    """Return the path of a model file that face_recognition_models ships; ``locator`` names its function
    that returns it (e.g. ``face_recognition_model_location``). DataError when the package is missing."""
    try:
        import face_recognition_models as frm
    except ImportError:
        raise DataError("face-recognition-models is not installed (pip install face-recognition-models), "
                        "or pass --dat PATH") from None
    return Path(getattr(frm, locator)())
