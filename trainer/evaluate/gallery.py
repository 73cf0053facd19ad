"""Prediction gallery: a PNG grid of face crops with their true and predicted labels."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def prediction_gallery(images: np.ndarray, true_text: Sequence[str], pred_text: Sequence[str],
                       path: str | Path, correct: Optional[Sequence[bool]] = None, cols: int = 6) -> Path:
    """Write a grid of RGB uint8 crops, each titled 'true: ...' / 'pred: ...'; return the PNG path.

    ``correct`` colours a title green (True) or red (False).
    """
    n = len(images)
    rows = max(1, int(np.ceil(n / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(2.3 * cols, 2.9 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, ax in enumerate(axes.ravel()[:n]):
        ax.imshow(images[i])
        colour = "black" if correct is None else ("green" if correct[i] else "red")
        ax.set_title(f"true: {true_text[i]}\npred: {pred_text[i]}", fontsize=6.5, color=colour)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
