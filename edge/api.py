"""Analyse a photo: detect faces, describe them, recognise them. The public Python API of face-edge.

A handful of calls a newcomer reads in minutes (in the spirit of face_recognition's api.py);
``face-edge recognize``, the trainer's predictions and the tests sit on top of them::

    from edge import api

    analyzer = api.Analyzer.from_config("edge.yaml")   # the configured bundles and gallery
    image = api.load_image("door.jpg")                  # BGR uint8, as OpenCV reads it
    for face in analyzer.analyze(image):
        print(face.box, face.name or "unknown", face.distance, face.summary)

    boxes = analyzer.face_locations(image)              # [(x, y, w, h), ...], largest first
    points = analyzer.face_landmarks(image, boxes)      # five (x, y) points per face (None: not alignable)
    vectors = analyzer.face_encodings(image, boxes)     # 128-d vectors (None: not alignable)

Each face is looked at exactly as the live loop looks at a tracked face (:func:`edge.look.look_at`:
same models, same alignment, same gallery and threshold); only detection differs: a photo is
searched as enrollment searches it (edge.detect.PhotoDetector: full resolution, enlarged when
small, faces down to 24 pixels, each confirmed by a second cascade, those with an eye first).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import cv2
import numpy as np

from .config import Settings, load_settings
from .crop import Box
from .detect import PhotoDetector
from .errors import FaceEdgeError, GalleryError, SourceError
from .look import embedding_model, landmarker_of, look_at
from .models import FaceModel, Prediction
from .overlay import face_summary
from .track import Track

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm")


@dataclass
class FaceResult:
    """One face of a photo: where it is and everything the models said about it."""

    box: Box
    landmarks: Optional[np.ndarray] = None        # 5 x 2 frame pixels, when an aligned model ran
    embedding: Optional[np.ndarray] = None        # the embedding model's vector (edge.distance)
    name: Optional[str] = None                    # the enrolled person, None = unknown (or no gallery)
    distance: Optional[float] = None              # distance to the nearest enrolled sample (edge.distance)
    nearest: Optional[str] = None                 # that sample's person, even when the face is unknown
    summary: dict[str, Any] = field(default_factory=dict)   # attributes, age, gender, emotion, ... as the overlay
    skipped: dict[str, str] = field(default_factory=dict)   # model -> why it could not look (e.g. face too small)
    predictions: list[Prediction] = field(default_factory=list)  # each model's raw outputs (every probability)

    def to_dict(self, vectors: bool = False) -> dict[str, Any]:
        """Return the face as JSON-ready data (the embedding only with ``vectors``)."""
        data: dict[str, Any] = {"box": [int(v) for v in self.box], "name": self.name,
                                "distance": None if self.distance is None else round(self.distance, 4),
                                "nearest": self.nearest, **self.summary}
        if self.landmarks is not None:
            data["landmarks"] = [[round(float(x), 1), round(float(y), 1)] for x, y in self.landmarks]
        if self.skipped:
            data["skipped"] = dict(self.skipped)
        if vectors and self.embedding is not None:
            data["embedding"] = [round(float(v), 6) for v in self.embedding]
        return data


def load_image(path: str | Path) -> np.ndarray:
    """Return the image at ``path`` as BGR uint8 (grey images converted); SourceError when it cannot be read."""
    data = np.fromfile(str(path), dtype=np.uint8) if Path(path).is_file() else None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data is not None and data.size else None
    if image is None:
        raise SourceError(f"{path}: not a readable image")
    return image


def image_files(paths: Sequence[str | Path]) -> list[Path]:
    """Return the image files named by ``paths`` (files as given, folders' images in name order)."""
    found: list[Path] = []
    for item in map(Path, paths):
        if item.is_dir():
            found += sorted(p for p in item.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.is_file():
            found.append(item)
        else:
            raise SourceError(f"{item}: no such file or folder")
    return found


class Analyzer:
    """Loaded models (and the gallery when one exists) that analyse photos one face at a time."""

    def __init__(self, settings: Settings, models: dict[str, FaceModel], gallery: Any = None):
        self.settings = settings
        self.models = models
        self.gallery = gallery
        self.landmarker = landmarker_of(models)
        self.detector = PhotoDetector(settings.detector)

    @classmethod
    def from_config(cls, config: Optional[str | Path] = None, bundles: Optional[Sequence[str]] = None,
                    gallery: bool = True, settings: Optional[Settings] = None) -> "Analyzer":
        """Return an Analyzer with the bundles of ``config`` (or ``bundles``) and, when ``gallery``, its gallery.

        A bundle that fails its checks raises BundleError naming it (a photo tool should not
        quietly answer with fewer models); a gallery made by another model raises GalleryError.
        """
        from .pipeline import load_models

        settings = settings or load_settings(config)
        models, errors = load_models(settings, bundles)
        if errors:
            from .errors import BundleError

            raise BundleError("; ".join(errors))
        return cls(settings, models, open_gallery_for(settings, models) if gallery else None)

    def face_locations(self, image: np.ndarray) -> list[Box]:
        """Return the face boxes (x, y, w, h) of a BGR image, largest first (edge.detect.PhotoDetector)."""
        return self.detector.faces(image)

    def face_landmarks(self, image: np.ndarray, boxes: Optional[Sequence[Box]] = None) -> list[Optional[np.ndarray]]:
        """Return the five landmarks (5 x 2, pixels) of each face (None where it cannot be aligned)."""
        from .align import AlignmentError

        if self.landmarker is None:
            raise FaceEdgeError("no landmarks bundle loaded: add 'landmarks' to models.bundles")
        out: list[Optional[np.ndarray]] = []
        for box in self.face_locations(image) if boxes is None else boxes:
            try:
                out.append(self.landmarker.points(image, box))
            except AlignmentError:
                out.append(None)
        return out

    def face_encodings(self, image: np.ndarray, boxes: Optional[Sequence[Box]] = None) -> list[Optional[np.ndarray]]:
        """Return the embedding (as the model's distance compares it, edge.distance) of each face (None where it
        could not be embedded)."""
        embedder = embedding_model(self.models)
        if embedder is None:
            raise FaceEdgeError("no embedding bundle loaded: add 'embedding' to models.bundles")
        only = {embedder.name} | ({self.landmarker.model.name} if self.landmarker else set())
        return [self._look(image, box, only).embedding for box in (self.face_locations(image) if boxes is None
                                                                    else boxes)]

    def analyze(self, image: np.ndarray, boxes: Optional[Sequence[Box]] = None) -> list[FaceResult]:
        """Return a FaceResult for every face of a BGR image (``boxes``: given faces instead of detection)."""
        return [self._look(image, box) for box in (self.face_locations(image) if boxes is None else boxes)]

    def _look(self, image: np.ndarray, box: Box, only: Optional[set[str]] = None) -> FaceResult:
        skip = frozenset(n for n in self.models if only is not None and n not in only)
        look = look_at(image, box, self.models, self.landmarker, self.gallery, skip)
        if look.failed:
            raise FaceEdgeError("; ".join(f"model {n} failed: {e}" for n, e in look.failed.items()))
        track = Track(0, box, 0, 0.0)
        for prediction in look.predictions:
            track.add_prediction(prediction)
        if look.match is not None:
            track.add_identity(look.match.name, look.match.distance)
        summary = face_summary(track, {m.manifest.name: m.manifest for m in self.models.values()}, 1).to_dict()
        for key in ("track", "name", "distance"):
            summary.pop(key, None)
        match = look.match
        return FaceResult(box=tuple(int(v) for v in box), landmarks=look.points, embedding=look.vector,
                          name=match.name if match else None,
                          distance=float(match.distance) if match and np.isfinite(match.distance) else None,
                          nearest=match.nearest if match else None, summary=summary, skipped=look.skipped,
                          predictions=look.predictions)


def open_gallery_for(settings: Settings, models: dict[str, FaceModel]) -> Any:
    """Return the configured gallery for the loaded embedding model, None when there is no gallery file yet.

    GalleryError (with the re-enroll message) when the gallery was made by another model.
    """
    from .gallery import open_gallery

    embedder = embedding_model(models)
    if embedder is None or not Path(settings.recognition.gallery).is_file():
        return None
    gallery = open_gallery(settings.recognition, embedder.manifest)
    return gallery if len(gallery) else None


__all__ = ["Analyzer", "FaceResult", "GalleryError", "image_files", "load_image", "open_gallery_for"]
