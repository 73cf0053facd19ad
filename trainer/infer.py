"""Run a trained Keras model on face crops (the trainer's own crop of image files)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import DataError
from .faces import FaceCropper, read_image
from .run import Run


def model_outputs(model: Any, crops: np.ndarray, batch: int = 128) -> dict[str, np.ndarray]:
    """Return {output name: N x K float array} of ``model`` on uint8 RGB crops (N x S x S x 3)."""
    out = model.predict(crops.astype(np.float32), batch_size=batch, verbose=0)
    if isinstance(out, dict):
        return {k: np.asarray(v) for k, v in out.items()}
    names = [n if isinstance(n, str) else str(i) for i, n in enumerate(getattr(model, "output_names", []))]
    outs = out if isinstance(out, (list, tuple)) else [out]
    return {names[i] if i < len(names) else str(i): np.asarray(v) for i, v in enumerate(outs)}


def crop_files(paths: Sequence[str | Path], run: Run) -> tuple[np.ndarray, list[bool]]:
    """Return (uint8 RGB crops, Haar-detected flags) of image files through the run's own crop."""
    cropper = FaceCropper(run.crop, pad=float((run.info.get("data") or {}).get("detect_pad", 0.0)))
    crops, detected = [], []
    for path in paths:
        img = read_image(path)
        if img is None:
            raise DataError(f"{path}: missing or not a readable image")
        crop, found = cropper.crop(img)
        crops.append(crop)
        detected.append(found)
    return np.stack(crops) if crops else np.zeros((0, run.size, run.size, 3), np.uint8), detected

