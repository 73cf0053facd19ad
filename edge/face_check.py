"""Whether a photo's face box holds a face: OpenCV's ResNet-10 SSD face detector, asked about one box.

Haar keeps boxes on grass, dark corners, logos and walls that pass a second cascade and the eye check, and in
a photo where it missed the person's face such a box is the photo's only "face": enrollment stores it,
``face-edge recognize`` names it. The SSD (``edge/assets/res10_ssd_*``, OpenCV's sample face detector, fp16
weights) looks at a square twice the box's width around it, scaled to its 300 px input, and the box is a face
when one of its detections overlapping the box is at least MIN_CONFIDENCE sure.

Measured on the celeba_wild people who are not held out (700 photos), on every box photo detection kept:
of the 551 boxes on dlib's face, 1 scored under 0.5 (1st percentile 0.984); of the 39 other boxes, 33 did,
among them 4 of the 5 that were a photo's first box (the fifth is a real face, of another person).
About 26 ms per box here on OpenCV's two threads (44 ms on one); photos only, never the live loop.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from .crop import Box, iou
from .errors import ConfigError

ASSETS = Path(__file__).parent / "assets"
PROTOTXT = ASSETS / "res10_ssd_deploy.prototxt"
WEIGHTS = ASSETS / "res10_ssd_fp16.caffemodel"
INPUT_PX = 300
MEAN_BGR = (104.0, 177.0, 123.0)    # the mean the network was trained with (OpenCV's sample)
MIN_CONFIDENCE = 0.5                # OpenCV's sample threshold
CONTEXT = 2.0                       # the square looked at, in box widths
MATCH_IOU = 0.3


class SsdFaceCheck:
    """``confidence(image, box)`` is the SSD's confidence that ``box`` holds a face; ``holds_face`` applies
    MIN_CONFIDENCE."""

    def __init__(self, prototxt: Path = PROTOTXT, weights: Path = WEIGHTS):
        try:
            self.net = cv2.dnn.readNetFromCaffe(str(prototxt), str(weights))
        except cv2.error:
            raise ConfigError(f"photo face check: cannot read {weights.name} / {prototxt.name} in {weights.parent}; "
                              "reinstall face-edge") from None
        self._lock = threading.Lock()   # one forward at a time: a cv2.dnn.Net keeps its input between calls

    def confidence(self, image: np.ndarray, box: Box) -> float:
        """Return the highest confidence (0..1) of the SSD's detections that overlap ``box`` in a BGR or grey
        ``image``, looking at a CONTEXT x box-width square around the box (zero-padded past the border)."""
        x, y, w, h = box
        side = max(8, int(round(CONTEXT * max(w, h))))
        left, top = int(round(x + w / 2 - side / 2)), int(round(y + h / 2 - side / 2))
        bgr = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        square = np.zeros((side, side, 3), np.uint8)
        sx0, sy0 = max(0, left), max(0, top)
        sx1, sy1 = min(bgr.shape[1], left + side), min(bgr.shape[0], top + side)
        if sx1 <= sx0 or sy1 <= sy0:
            return 0.0
        square[sy0 - top:sy1 - top, sx0 - left:sx1 - left] = bgr[sy0:sy1, sx0:sx1]
        blob = cv2.dnn.blobFromImage(cv2.resize(square, (INPUT_PX, INPUT_PX)), 1.0, (INPUT_PX, INPUT_PX), MEAN_BGR)
        with self._lock:
            self.net.setInput(blob)
            detections = self.net.forward()[0, 0]
        best = 0.0
        for detection in detections:
            found = (left + detection[3] * side, top + detection[4] * side,
                     (detection[5] - detection[3]) * side, (detection[6] - detection[4]) * side)
            if iou(box, found) >= MATCH_IOU:
                best = max(best, float(detection[2]))
        return best

    def holds_face(self, image: np.ndarray, box: Box) -> bool:
        """Return True when the SSD is at least MIN_CONFIDENCE sure that ``box`` holds a face."""
        return self.confidence(image, box) >= MIN_CONFIDENCE


_shared: Optional[SsdFaceCheck] = None


def shared_face_check() -> SsdFaceCheck:
    """Return the process's one SsdFaceCheck (the network is read once, on first use)."""
    global _shared
    if _shared is None:
        _shared = SsdFaceCheck()
    return _shared
