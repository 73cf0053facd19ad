"""Five face landmarks from a ``landmarks`` bundle, and the inputs of every model for one face.

A landmarks bundle (task ``landmarks``, one output of kind ``landmarks``) looks at the face's
box crop (its own crop spec) and returns five points, dlib's 5-point order (the outer and inner
corner of the eye on the image's right, then of the other eye, then the bottom of the nose), as
fractions of that crop: a point at fraction ``f`` of a crop cut from the frame square
``(x0, y0, side)`` lies at frame pixel ``x0 + f * side - 0.5`` (pixel centres at integers).

A landmarks bundle may also carry dlib's 5-point shape predictor (its manifest's ``shape_predictor``
block names the .npz, edge.shape_predictor). The network still decides that the box holds a face whose
points it can place; the points returned are then the predictor's, run on the HOG-style box dlib's
model was trained with, unless the two disagree by more than MAX_DISAGREEMENT (then the face is not
aligned): on the tuning people they named fewer strangers than the network's own points.

:class:`FaceInputs` cuts, for one face in one frame, each model's input once per crop spec:
a box crop (``edge.crop.crop_face``) or an aligned chip (``edge.crop.crop_aligned``) from the
landmarks, which are computed once, when the first aligned model asks. A face that cannot be
aligned (too small, landmarks off the crop, no landmarks bundle) raises :class:`AlignmentError`
for the aligned models only; the caller skips that look and counts it.
"""
from __future__ import annotations

from typing import Optional
from weakref import WeakKeyDictionary

import numpy as np

from .crop import Box, CropSpec, crop_aligned, crop_face, square_region
from .errors import BundleError, FaceEdgeError
from .models import FaceModel
from .shape_predictor import MANIFEST_KEY, ShapePredictor, dlib_rect, hog_like

MIN_ALIGN_FACE_PX = 20     # a smaller face box is not aligned: its chip would be mostly interpolation
POINT_SLACK = 0.15         # a landmark beyond this fraction outside its crop means the model lost the face
NUM_POINTS = 5
# Where the network's points and the shape predictor's are further apart than this many eye distances on
# average, the box is not aligned (a false detection, or a face neither model places): on the tuning people
# (0.2 against no limit) faces found 611 -> 599, pairs where both found a face 0.948 -> 0.953, strangers named
# 2.2 % -> 2.1 %, enrolled named correctly 92.4 % -> 92.7 %.
MAX_DISAGREEMENT: Optional[float] = 0.2


class AlignmentError(FaceEdgeError):
    """One face cannot be aligned (too small, landmarks off the face, no landmarks bundle): skipped and counted."""


def to_fractions(points: np.ndarray, box: Box, spec: CropSpec) -> np.ndarray:
    """Return frame-pixel ``points`` (K x 2) as fractions of the box crop that ``spec`` cuts around ``box``."""
    x0, y0, side, _ = square_region(box, spec)
    return (np.asarray(points, np.float64) + 0.5 - np.array([x0, y0])) / side


def from_fractions(fractions: np.ndarray, box: Box, spec: CropSpec) -> np.ndarray:
    """Return crop fractions (K x 2) of the box crop of ``box`` as frame pixels (the inverse of to_fractions)."""
    x0, y0, side, _ = square_region(box, spec)
    return np.asarray(fractions, np.float64) * side + np.array([x0, y0]) - 0.5


def landmark_head(model: FaceModel) -> str:
    """Return the name of the model's landmarks output; AlignmentError when it has none."""
    out = model.manifest.output_of_kind("landmarks")
    if out is None:
        raise AlignmentError(f"bundle {model.name}: has no output of kind 'landmarks'")
    return out.name


class Landmarker:
    """``points(frame, box)`` returns a face's five landmarks in frame pixels, from a landmarks bundle."""

    def __init__(self, model: FaceModel):
        self.model = model
        self.head = landmark_head(model)
        self.shape_predictor = shape_predictor_of(model)

    @property
    def spec(self) -> CropSpec:
        """Return the box crop the landmarks model looks at."""
        return self.model.manifest.crop

    def points(self, frame: np.ndarray, box: Box) -> np.ndarray:
        """Return the five landmarks (5 x 2 float, frame pixels) of the face in ``box``.

        AlignmentError when the face is smaller than MIN_ALIGN_FACE_PX or a point falls more than
        POINT_SLACK outside the crop (the model did not find a face there).
        """
        if min(box[2], box[3]) < MIN_ALIGN_FACE_PX:
            raise AlignmentError(f"face of {box[2]}x{box[3]} px is too small to align "
                                 f"(at least {MIN_ALIGN_FACE_PX} px)")
        head = self.model.predict(crop_face(frame, box, self.spec)).heads[self.head]
        fractions = head.points
        if fractions is None or fractions.shape != (NUM_POINTS, 2) or not np.all(np.isfinite(fractions)):
            raise AlignmentError(f"bundle {self.model.name}: expected {NUM_POINTS} landmark points")
        if np.any(fractions < -POINT_SLACK) or np.any(fractions > 1.0 + POINT_SLACK):
            raise AlignmentError("landmarks fall outside the face crop; the face is not aligned")
        points = from_fractions(fractions, box, self.spec)
        if self.shape_predictor is None:
            return points
        refined = self.shape_predictor.points(frame, dlib_rect(hog_like(box)))
        if MAX_DISAGREEMENT is not None and disagreement(points, refined) > MAX_DISAGREEMENT:
            raise AlignmentError("the two landmark models disagree on this face; it is not aligned")
        return refined


def disagreement(points: np.ndarray, other: np.ndarray) -> float:
    """Return the mean distance between two sets of the five points, in eye distances (of ``other``)."""
    eyes = float(np.linalg.norm(other[[0, 1]].mean(0) - other[[2, 3]].mean(0)))
    return float(np.linalg.norm(points - other, axis=1).mean()) / max(eyes, 1e-3)


_predictors: "WeakKeyDictionary[FaceModel, Optional[ShapePredictor]]" = WeakKeyDictionary()


def shape_predictor_of(model: FaceModel) -> Optional[ShapePredictor]:
    """Return the shape predictor a landmarks bundle carries (its manifest's ``shape_predictor.file``, which
    must be one of the bundle's checked files), or None; BundleError when it is named but unusable.

    Read once per loaded model (edge.pipeline.load_models reads it with the bundle, so a bad one is that
    bundle's load error), then shared by every Landmarker of that model.
    """
    if model in _predictors:
        return _predictors[model]
    block = model.manifest.extra.get(MANIFEST_KEY)
    predictor = None
    if block:
        name = block.get("file") if isinstance(block, dict) else None
        if not isinstance(name, str) or name not in model.manifest.files:
            raise BundleError(f"bundle {model.name}: {MANIFEST_KEY}.file must name one of the bundle's listed files")
        predictor = ShapePredictor.load(model.bundle.path / name)
        if predictor.num_points != NUM_POINTS:
            raise BundleError(f"bundle {model.name}: its shape predictor places {predictor.num_points} points, "
                              f"not {NUM_POINTS}")
    _predictors[model] = predictor
    return predictor


class FaceInputs:
    """The model inputs of one face in one frame: each crop spec cut once, landmarks run at most once."""

    def __init__(self, frame: np.ndarray, box: Box, landmarker: Optional[Landmarker] = None):
        self.frame = frame
        self.box = box
        self.landmarker = landmarker
        self._crops: dict[CropSpec, np.ndarray] = {}
        self._points: Optional[np.ndarray] = None
        # Why alignment failed, kept as text: an exception kept here would hold its traceback, whose frames
        # hold this object and its frame (a cycle only the garbage collector's rare full pass frees).
        self._failure: Optional[str] = None

    @property
    def has_points(self) -> bool:
        """Return True once the landmarks of this face were computed."""
        return self._points is not None

    def points(self) -> np.ndarray:
        """Return the face's five landmarks in frame pixels (computed once); AlignmentError when there are none."""
        if self._points is None:
            if self._failure is not None:
                raise AlignmentError(self._failure)
            if self.landmarker is None:
                self._failure = "an aligned model needs a landmarks bundle (add 'landmarks' to models.bundles)"
                raise AlignmentError(self._failure)
            try:
                self._points = self.landmarker.points(self.frame, self.box)
            except AlignmentError as exc:
                self._failure = str(exc)
                raise
        return self._points

    def crop(self, spec: CropSpec) -> np.ndarray:
        """Return the input of a model with crop ``spec`` (BGR uint8, ``spec.size`` square)."""
        if spec not in self._crops:
            if spec.aligned:
                self._crops[spec] = crop_aligned(self.frame, self.points(), spec)
            else:
                self._crops[spec] = crop_face(self.frame, self.box, spec)
        return self._crops[spec]
