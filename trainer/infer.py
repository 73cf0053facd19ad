"""Run a trained Keras model on face crops (the trainer's own crop of image files)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from .errors import DataError
from .faces import FaceCropper, read_image
from .run import Run


CHUNK = 2048  # crops converted to float32 at a time (a float copy of a 20,000-face split would be 3 GB at 112 px)


def model_outputs(model: Any, crops: Any, batch: int = 128, rows: Optional[np.ndarray] = None) -> dict[str, np.ndarray]:
    """Return {output name: N x K float array} of ``model`` on uint8 RGB crops (N x S x S x 3).

    ``crops`` may be an array or a row store (trainer.npyrows.NpyRows); with ``rows`` only those
    rows are run, read CHUNK at a time, so a whole split never sits in memory at once.
    """
    names = [n if isinstance(n, str) else str(i) for i, n in enumerate(getattr(model, "output_names", []))]
    total = len(crops) if rows is None else len(rows)
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, max(total, 1), CHUNK):
        picked = crops[start:start + CHUNK] if rows is None else crops[np.asarray(rows[start:start + CHUNK])]
        out = model.predict(np.asarray(picked, np.float32), batch_size=batch, verbose=0)
        if not isinstance(out, dict):
            outs = out if isinstance(out, (list, tuple)) else [out]
            out = {names[i] if i < len(names) else str(i): v for i, v in enumerate(outs)}
        for key, value in out.items():
            parts.setdefault(key, []).append(np.asarray(value))
    return {k: np.concatenate(v) for k, v in parts.items()}


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

