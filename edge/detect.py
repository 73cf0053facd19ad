"""Haar-cascade face detection on a downscaled grey frame, boxes scaled back to the frame."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import cv2
import numpy as np

from .crop import Box, iou
from .errors import ConfigError
from .face_check import SsdFaceCheck, shared_face_check

CASCADES = {
    "frontal_default": "haarcascade_frontalface_default.xml",
    "alt2": "haarcascade_frontalface_alt2.xml",
    "lbp": "lbpcascade_frontalface_improved.xml",
}
_EXTRA_DIRS = (Path(__file__).parent / "assets", Path("/usr/share/opencv4/lbpcascades"),
               Path("/usr/share/opencv4/haarcascades"))


def cascade_path(name: str) -> Path:
    """Return the path of the cascade called ``name`` (a CASCADES key or a path to an .xml)."""
    if name not in CASCADES:
        path = Path(name)
        if path.suffix == ".xml" and path.is_file():
            return path
        raise ConfigError(f"detector.cascade: {name!r} is neither one of {', '.join(CASCADES)} "
                          "nor an existing .xml file")
    return _cascade_file(CASCADES[name], "detector.cascade")


def _cascade_file(filename: str, setting: str) -> Path:
    """Return the path of one of OpenCV's cascade files, searched in OpenCV's data and the extra folders."""
    for folder in (Path(cv2.data.haarcascades), *_EXTRA_DIRS):
        if (folder / filename).is_file():
            return folder / filename
    raise ConfigError(f"{setting}: {filename} not found in OpenCV's data or {_EXTRA_DIRS[0]}")


class HaarDetector:
    """``detect(frame)`` returns face boxes (x, y, w, h) in full-frame pixels."""

    def __init__(self, cascade: str = "frontal_default", downscale: float = 0.5, min_size: int = 40,
                 scale_factor: float = 1.1, min_neighbors: int = 5):
        path = cascade_path(cascade)
        try:
            self.classifier = cv2.CascadeClassifier(str(path))
        except (cv2.error, SystemError):  # a malformed .xml makes OpenCV raise instead of returning empty
            raise ConfigError(f"detector.cascade: {path} is not a valid cascade file") from None
        if self.classifier.empty():
            raise ConfigError(f"detector.cascade: {path} is not a valid cascade file")
        self.cascade = cascade
        self.downscale = float(downscale)
        self.min_size = int(min_size)
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)

    def detect(self, frame: np.ndarray, grey: Optional[np.ndarray] = None, min_size: Optional[int] = None,
               max_size: Optional[int] = None, downscale: Optional[float] = None) -> list[Box]:
        """Return the face boxes found in a BGR (or grey) frame, largest first.

        ``min_size`` / ``max_size`` (full-frame pixels) narrow the searched face sizes for this
        call (default: the detector's min_size and no maximum); ``downscale`` overrides the
        detector's own factor for this call.
        """
        if frame is None or frame.size == 0:
            return []
        if grey is None:
            grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        f = self.downscale if downscale is None else float(downscale)
        interp = cv2.INTER_AREA if f < 1.0 else cv2.INTER_LINEAR
        small = grey if f == 1.0 else cv2.resize(grey, None, fx=f, fy=f, interpolation=interp)
        small = cv2.equalizeHist(small)
        side = max(8, int(round((self.min_size if min_size is None else min_size) * f)))
        top = (0, 0) if max_size is None else (max(side, int(round(max_size * f))),) * 2
        found = self.classifier.detectMultiScale(small, scaleFactor=self.scale_factor,
                                                 minNeighbors=self.min_neighbors, minSize=(side, side),
                                                 maxSize=top)
        boxes = [(int(round(x / f)), int(round(y / f)), int(round(w / f)), int(round(h / f)))
                 for (x, y, w, h) in (found if len(found) else [])]
        return sorted(boxes, key=lambda b: b[2] * b[3], reverse=True)


STILL_MIN_FACE = 24        # photos: faces down to this many pixels (the cascades' own window)
STILL_ENLARGE_BELOW = 800  # photos whose longer side is shorter are searched at twice their size
CONFIRM_IOU = 0.3
EYE_CASCADE = "haarcascade_eye.xml"
EYE_SEARCH_PX = 120     # a face's width when its eyes are searched: eyes of 12-60 px
STILL_TILT_DEG = 20.0   # photos without a face that shows an eye are searched again turned by this much each way


class PhotoDetector:
    """Faces of a photo (enrollment, ``face-edge recognize``, the image API): the configured cascade at full
    resolution, photos under STILL_ENLARGE_BELOW px enlarged twice (Haar finds faces near its 24-pixel
    window poorly; dlib's HOG detector enlarges photos the same way), for faces down to STILL_MIN_FACE px.

    Each box is then checked, both searched near the box only: a second frontal cascade must find a face
    overlapping it, and OpenCV's ResNet-10 SSD face detector must be sure it holds a face
    (edge.face_check), else it is dropped; OpenCV's eye cascade looks for an eye in its upper part. Boxes
    with an eye come first, largest first, then the others, largest first.

    When no checked box has an eye, the photo is searched again: with the second cascade, and with the
    configured one on the photo turned by +-STILL_TILT_DEG (a tilted head, which frontal Haar misses). Those
    boxes are checked the same way on the upright photo and ranked with the first ones; a box overlapping a
    better-ranked one is dropped.

    Haar's false positives on shirts and backgrounds are often larger than the real face, and the callers
    that want one face take the first. On the 700 photos of the celeba_wild people who are not held out,
    against dlib's largest HOG face: without the second cascade the first box was another face in 34
    photos; with it in 9 (and no box was found in 56 where dlib found one); with eyes first in 7 (56); with
    the second search 5 (42), and dlib's face first in 543 photos instead of 527.
    Keeping boxes that only the eye cascade passes (two eyes side by side) found 3 more faces there, but
    also kept boxes beside a face and on logos, which made one-person photos look like two. The SSD check
    then dropped 33 of the 39 boxes that were not dlib's face and 1 of the 551 that were; the first box was
    another face in 1 photo (a real face, of another person) instead of 5.
    """

    def __init__(self, settings: Any, face_check: Optional[SsdFaceCheck] = None):
        self.detector = HaarDetector(settings.cascade, downscale=1.0,
                                     min_size=min(int(settings.min_size), STILL_MIN_FACE),
                                     scale_factor=settings.scale_factor, min_neighbors=settings.min_neighbors)
        confirm = "frontal_default" if settings.cascade == "alt2" else "alt2"
        self.confirm = HaarDetector(confirm, downscale=1.0, min_size=8, scale_factor=settings.scale_factor,
                                    min_neighbors=3)
        self.second = HaarDetector(confirm, downscale=1.0, min_size=self.detector.min_size,
                                   scale_factor=settings.scale_factor, min_neighbors=settings.min_neighbors)
        self.eyes = cv2.CascadeClassifier(str(_cascade_file(EYE_CASCADE, "photo detection")))
        self.face_check = face_check   # None: the process's shared SSD, read on first use (photos only)

    @property
    def cascade(self) -> str:
        """Return the configured cascade's name."""
        return self.detector.cascade

    def faces(self, image: np.ndarray, grey: Optional[np.ndarray] = None) -> list[Box]:
        """Return the confirmed face boxes (x, y, w, h) of a BGR or grey photo: those with an eye first, largest
        first, then the others, largest first (the class docstring says when the photo is searched twice)."""
        if image is None or image.size == 0:
            return []
        if grey is None:
            grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        scale = 2.0 if max(grey.shape[:2]) < STILL_ENLARGE_BELOW else 1.0
        found = self._ranked(image, grey, self.detector.detect(grey, grey, downscale=scale))
        if found and found[0][1]:
            return [box for box, _ in found]
        more = self.second.detect(grey, grey, downscale=scale)
        for degrees in (-STILL_TILT_DEG, STILL_TILT_DEG):
            more += _turned_search(self.detector, grey, degrees, scale)
        ranked = sorted(found + self._ranked(image, grey, more), key=lambda f: (not f[1], -f[0][2]))
        kept: list[Box] = []
        for box, _ in ranked:
            if all(iou(box, other) < CONFIRM_IOU for other in kept):
                kept.append(box)
        return kept

    def _ranked(self, image: np.ndarray, grey: np.ndarray, boxes: list[Box]) -> list[tuple[Box, bool]]:
        """Return the confirmed ones of ``boxes`` as (box, has an eye): those with an eye first, largest first."""
        checked = [(box, self._has_eye(grey, box)) for box in boxes
                   if self._confirmed(grey, box) and self._holds_face(image, box)]
        return sorted(checked, key=lambda f: (not f[1], -f[0][2]))

    def _holds_face(self, image: np.ndarray, box: Box) -> bool:
        """Return True when the SSD face check is sure ``box`` holds a face (edge.face_check)."""
        return (self.face_check or shared_face_check()).holds_face(image, box)

    def _confirmed(self, grey: np.ndarray, box: Box) -> bool:
        """Return True when the confirming cascade finds a face overlapping ``box`` (searched near it only)."""
        x, y, w, h = box
        pad = w // 2
        x0, y0 = max(0, x - pad), max(0, y - pad)
        roi = grey[y0:y + h + pad, x0:x + w + pad]
        # Sized to this face: ~160 px is plenty for a yes/no; small faces are enlarged up to twice.
        found = self.confirm.detect(roi, roi, min_size=max(8, int(w * 0.5)), downscale=min(2.0, 160.0 / max(1, w)))
        return any(iou(box, (ox + x0, oy + y0, ow, oh)) >= CONFIRM_IOU for (ox, oy, ow, oh) in found)

    def _has_eye(self, grey: np.ndarray, box: Box) -> bool:
        """Return True when the eye cascade finds an eye in the upper 60 % of ``box`` (resized to EYE_SEARCH_PX
        wide)."""
        x, y, w, h = box
        roi = grey[max(0, y):y + int(h * 0.6), max(0, x):x + w]
        if roi.size == 0:
            return False
        f = EYE_SEARCH_PX / max(1, w)
        roi = cv2.equalizeHist(cv2.resize(roi, None, fx=f, fy=f, interpolation=cv2.INTER_LINEAR))
        found = self.eyes.detectMultiScale(roi, scaleFactor=1.1, minNeighbors=3, minSize=(12, 12), maxSize=(60, 60))
        return len(found) > 0


def _turned_search(detector: HaarDetector, grey: np.ndarray, degrees: float, scale: float) -> list[Box]:
    """Return the boxes ``detector`` finds on ``grey`` turned by ``degrees`` about its centre, as upright boxes
    of the same size around the same face centres in ``grey``."""
    h, w = grey.shape[:2]
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    turned = cv2.warpAffine(grey, turn, (w, h), borderMode=cv2.BORDER_REPLICATE)
    back = cv2.invertAffineTransform(turn)
    boxes = []
    for x, y, bw, bh in detector.detect(turned, turned, downscale=scale):
        cx, cy = back @ np.array([x + bw / 2, y + bh / 2, 1.0])
        boxes.append((int(round(cx - bw / 2)), int(round(cy - bh / 2)), bw, bh))
    return boxes


def detect_faces(frame: np.ndarray, cascade: str = "frontal_default", downscale: float = 1.0,
                 min_size: int = 30) -> list[Box]:
    """Return face boxes (x, y, w, h) in a BGR image; a one-call helper for scripts and the trainer."""
    return _detector(cascade, downscale, min_size).detect(frame)


_detectors: dict[tuple, HaarDetector] = {}


def _detector(cascade: str, downscale: float, min_size: int) -> HaarDetector:
    key = (cascade, downscale, min_size)
    if key not in _detectors:
        _detectors[key] = HaarDetector(cascade, downscale, min_size)
    return _detectors[key]
