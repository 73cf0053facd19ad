"""Run a trained Keras model on face crops and turn its outputs into per-face rows."""
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


def rows_for(run: Run, outputs: dict[str, np.ndarray]) -> tuple[list[str], list[list[Any]]]:
    """Return (CSV header, one row per face) for model outputs, using run.yaml labels and thresholds."""
    header: list[str] = []
    columns: list[np.ndarray | list] = []
    for spec in run.info["outputs"]:
        y = outputs.get(spec["name"])
        if y is None:
            continue
        y = y.reshape(len(y), -1)
        kind, labels = spec["kind"], spec.get("labels") or []
        if kind == "sigmoid":
            thresholds = spec.get("thresholds") or [0.5] * len(labels)
            for j, label in enumerate(labels):
                header += [f"{label}_p", label]
                columns += [np.round(y[:, j], 4), (y[:, j] >= thresholds[j]).astype(int)]
        elif kind == "softmax":
            header += [spec["name"]] + [f"{spec['name']}_{label}_p" for label in labels]
            columns.append([labels[i] for i in y.argmax(1)])
            columns += [np.round(y[:, j], 4) for j in range(len(labels))]
        elif kind == "regression":
            header.append(spec["name"])
            columns.append(np.round(y[:, 0], 3))
        else:
            header.append(f"{spec['name']}_norm")
            columns.append(np.round(np.linalg.norm(y, axis=1), 3))
    n = len(next(iter(outputs.values()))) if outputs else 0
    rows = [[col[i] for col in columns] for i in range(n)]
    return header, rows
