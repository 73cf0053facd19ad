"""Enrollment: good face photos or camera frames -> embeddings for the gallery.

A photo or frame is used only when it shows exactly one face that is sharp and frontal
enough; otherwise it is skipped with a reason that names the file (or frame):

- *one face*: edge.detect.PhotoDetector (as ``face-edge recognize``): the configured Haar cascade
  at full resolution, photos smaller than 800 px enlarged twice, for faces down to 24 px, each
  box confirmed by a second frontal cascade (``alt2``, or ``frontal_default`` when alt2 is the
  configured one), which removes the Haar false positives on shirts and backgrounds that would
  otherwise make a one-person photo look like two; boxes where an eye is found come first;
- *sharp*: the variance of the Laplacian of the grey face, resized to
  :data:`SHARPNESS_SIZE` px so faces of any size compare, is at least ``min_sharpness``;
- *frontal enough*: both frontal cascades fire (each covers roughly +-30 degrees of turn),
  and when Haar eye cascades find an eye pair in the upper face, the eyes are level within
  :data:`MAX_ROLL_DEG` and their midpoint lies within :data:`MAX_EYE_OFFSET` face widths of
  the face centre. This is a coarse check: no landmark model runs on the device.

Each accepted face is cut with the embedding bundle's own crop spec (an aligned chip from the
``landmarks`` bundle's points when the bundle asks for one, edge.align) and embedded with
:class:`edge.models.FaceModel`; every embedding is kept in the gallery (see edge.gallery). A face
that cannot be aligned is skipped with the reason.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Union

import cv2
import numpy as np

from .align import AlignmentError, FaceInputs, Landmarker
from .bundle import Bundle, load_bundle, load_public_key, read_manifest
from .config import Settings
from .crop import Box, crop_face, whole_image_box
from .detect import PhotoDetector
from .errors import BundleError, GalleryError
from .distance import distances_to
from .gallery import PHOTO_SPEC, Gallery, model_distance
from .models import FaceModel

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
SHARPNESS_SIZE = 112
MIN_SHARPNESS = 50.0        # variance of Laplacian at 112 px: clean example photos score >= 127, a Gaussian blur of 2-3 px on a 150-200 px face < 50
MAX_ROLL_DEG = 20.0
MAX_EYE_OFFSET = 0.12
_EYE_CASCADES = ("haarcascade_eye.xml", "haarcascade_eye_tree_eyeglasses.xml")


@dataclass
class Sample:
    """One accepted face: where it came from, its box, embedding, sharpness and (optionally) kept photo."""

    source: str
    box: Box
    vector: np.ndarray
    sharpness: float
    photo: Optional[np.ndarray] = None


@dataclass
class Skipped:
    """One photo or frame that was not used, and why."""

    source: str
    reason: str

    def message(self) -> str:
        """Return the one-line message shown to the user."""
        return f"skipped {self.source}: {self.reason}"


@dataclass
class EnrollResult:
    """The accepted samples and the skipped inputs of one enrollment."""

    samples: list[Sample] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def vectors(self) -> np.ndarray:
        """Return the (n, D) embeddings of the accepted samples."""
        return np.stack([s.vector for s in self.samples]) if self.samples else np.zeros((0, 0), np.float32)

    def photos(self) -> Optional[np.ndarray]:
        """Return the kept photos (n, S, S, 3), or None when photos are not kept."""
        if not self.samples or self.samples[0].photo is None:
            return None
        return np.stack([s.photo for s in self.samples])


@dataclass
class FaceCheck:
    """The outcome of checking one image: the face box when usable, else the reason it is not."""

    box: Optional[Box]
    reason: str = ""
    sharpness: float = 0.0


def sharpness(grey_face: np.ndarray) -> float:
    """Return the variance of the Laplacian of a grey face resized to SHARPNESS_SIZE (higher = sharper)."""
    face = cv2.resize(grey_face, (SHARPNESS_SIZE, SHARPNESS_SIZE), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(face, cv2.CV_64F).var())


class FaceChecker:
    """``check(frame)`` returns the one usable face box of an enrollment image, or why there is none."""

    def __init__(self, detector: PhotoDetector, min_sharpness: float = MIN_SHARPNESS):
        self.detector = detector
        self.min_sharpness = float(min_sharpness)
        self.eyes = [cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / name)) for name in _EYE_CASCADES]
        self.eyes = [c for c in self.eyes if not c.empty()]

    def faces(self, frame: np.ndarray, grey: Optional[np.ndarray] = None) -> list[Box]:
        """Return the checked face boxes of an enrollment image (edge.detect.PhotoDetector order)."""
        return self.detector.faces(frame, grey)

    def eye_pair(self, grey_face: np.ndarray) -> Optional[tuple[float, float]]:
        """Return (roll in degrees, eye-midpoint offset from the centre in face widths), None when no pair is found."""
        side = 120
        face = cv2.resize(grey_face, (side, side), interpolation=cv2.INTER_AREA)
        upper = cv2.equalizeHist(face[: int(side * 0.6)])
        centres = []
        for cascade in self.eyes:
            for (x, y, w, h) in cascade.detectMultiScale(upper, 1.1, 3, minSize=(side // 10, side // 10),
                                                         maxSize=(side // 2, side // 2)):
                centres.append((x + w / 2.0, y + h / 2.0))
        left = [c for c in centres if c[0] < side / 2]
        right = [c for c in centres if c[0] >= side / 2]
        if not left or not right:
            return None
        (lx, ly), (rx, ry) = min(((a, b) for a in left for b in right), key=lambda p: abs(p[0][1] - p[1][1]))
        roll = math.degrees(math.atan2(ry - ly, rx - lx))
        offset = ((lx + rx) / 2.0 - side / 2.0) / side
        return roll, offset

    def check(self, frame: np.ndarray) -> FaceCheck:
        """Return the FaceCheck of one BGR image: one confirmed, sharp, frontal-enough face or the reason."""
        if frame is None or frame.size == 0:
            return FaceCheck(None, "empty image")
        grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        faces = self.faces(frame, grey)
        if not faces:
            return FaceCheck(None, "no face found (a frontal face of at least "
                                   f"{self.detector.detector.min_size} px is needed)")
        if len(faces) > 1:
            return FaceCheck(None, f"{len(faces)} faces found; an enrollment photo must show only the person")
        box = faces[0]
        x, y, w, h = box
        face = grey[max(0, y):y + h, max(0, x):x + w]
        sharp = sharpness(face)
        if sharp < self.min_sharpness:
            return FaceCheck(None, f"face too blurred (sharpness {sharp:.0f} < {self.min_sharpness:.0f})", sharp)
        pair = self.eye_pair(face)
        if pair is not None:
            roll, offset = pair
            if abs(roll) > MAX_ROLL_DEG:
                return FaceCheck(None, f"head tilted {roll:.0f} degrees; look straight at the camera", sharp)
            if abs(offset) > MAX_EYE_OFFSET:
                return FaceCheck(None, "face turned to the side; look straight at the camera", sharp)
        return FaceCheck(box, "", sharp)


def embedding_head(model: FaceModel) -> str:
    """Return the name of the model's embedding output; BundleError when it has none."""
    out = model.manifest.output_of_kind("embedding")
    if out is None:
        raise BundleError(f"bundle {model.name}: has no output of kind 'embedding'; enrollment needs the embedding model")
    return out.name


class Enroller:
    """Turns photos or frames into gallery samples with one embedding model (and the landmarks that align its faces)."""

    def __init__(self, model: FaceModel, checker: FaceChecker, keep_photos: bool = False,
                 landmarker: Optional[Landmarker] = None):
        self.model = model
        self.checker = checker
        self.keep_photos = keep_photos
        self.landmarker = landmarker
        self.head = embedding_head(model)

    def embed_crop(self, crop_bgr: np.ndarray) -> np.ndarray:
        """Return the embedding (as the model's distance compares it, edge.distance) of a face crop already cut
        with the model's crop spec."""
        vector = self.model.predict(crop_bgr).heads[self.head].vector
        assert vector is not None
        return vector.astype(np.float32)

    def embed_face(self, frame: np.ndarray, box: Box) -> np.ndarray:
        """Return the embedding of the face in ``box`` (cut, or aligned, as the live loop cuts it); AlignmentError
        when the face cannot be aligned."""
        return self.embed_crop(FaceInputs(frame, box, self.landmarker).crop(self.model.manifest.crop))

    def embed_photo(self, photo: np.ndarray) -> np.ndarray:
        """Return the embedding of a kept PHOTO_SPEC crop, re-cut with this model's crop spec."""
        return self.embed_face(photo, whole_image_box(photo, PHOTO_SPEC))

    def sample(self, frame: np.ndarray, source: str) -> Union[Sample, Skipped]:
        """Return the Sample of one image, or Skipped with the reason."""
        found = self.checker.check(frame)
        if found.box is None:
            return Skipped(source, found.reason)
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        try:
            vector = self.embed_face(frame, found.box)
        except AlignmentError as exc:
            return Skipped(source, str(exc))
        photo = crop_face(frame, found.box, PHOTO_SPEC) if self.keep_photos else None
        return Sample(source, found.box, vector, found.sharpness, photo)

    def from_folder(self, folder: str | Path) -> EnrollResult:
        """Return the samples of every image file directly in ``folder`` (others skipped, each named)."""
        folder = Path(folder)
        if not folder.is_dir():
            raise GalleryError(f"enroll --from {folder}: no such folder")
        result = EnrollResult()
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is None:
                result.skipped.append(Skipped(str(path), "not a readable image"))
                continue
            item = self.sample(frame, str(path))
            (result.samples if isinstance(item, Sample) else result.skipped).append(item)  # type: ignore[arg-type]
        return result

    def from_frames(self, frames: Iterable[np.ndarray], count: int, every: int = 5, max_frames: int = 600,
                    on_frame: Optional[Callable[[int, Union[Sample, Skipped]], None]] = None) -> EnrollResult:
        """Return up to ``count`` good samples from a stream of frames (camera or clip).

        After a frame is accepted the next ``every - 1`` frames are passed over, so the samples
        are not near-copies; the stream is read for at most ``max_frames`` frames.
        ``on_frame(index, item)`` is called for every checked frame (progress display).
        """
        result = EnrollResult()
        wait = 0
        for index, frame in enumerate(frames):
            if index >= max_frames or len(result.samples) >= count:
                break
            if wait > 0:
                wait -= 1
                continue
            item = self.sample(frame, f"frame {index}")
            if isinstance(item, Sample):
                result.samples.append(item)
                wait = max(0, every - 1)
            else:
                result.skipped.append(item)
            if on_frame is not None:
                on_frame(index, item)
        return result


def add_to_gallery(gallery: Gallery, name: str, result: EnrollResult, replace: bool = False) -> int:
    """Add the accepted samples of ``result`` to ``gallery`` under ``name``; return the person's sample count.

    GalleryError when no sample was accepted (the gallery is left unchanged).
    """
    if not result.samples:
        reasons = "; ".join(s.message() for s in result.skipped[:3]) or "no images found"
        raise GalleryError(f"no usable face to enroll {name!r} ({reasons})")
    if replace and name in gallery.names():
        gallery.remove(name)
    return gallery.add(name, result.vectors(), result.photos())


def consistency_warnings(gallery: Gallery, name: str, result: EnrollResult, replace: bool = False) -> list[str]:
    """Return a warning for each accepted sample that looks unlike every other sample of ``name`` (a mis-filed
    photo, or someone else stepping in front of the camera), naming the enrolled person it looks like if any.

    "Unlike the other samples" is a same-person question about two photos, decided at the model's pair
    threshold when it is looser than the gallery's (a gallery's threshold tightens with every person enrolled,
    which would flag a person's own photos as strangers). A sample that looks like another enrolled person
    (the gallery's threshold, what the live loop names) but also like the person's own samples is not
    flagged: on the tuning people such warnings were wrong 23 times in 38. A person's first and only sample
    has nothing to be compared with, so it is flagged when it looks like someone else.
    """
    if not result.samples:
        return []
    threshold = max(gallery.threshold, gallery.model_threshold or 0.0) if gallery.threshold_override is None \
        else gallery.threshold
    new = result.vectors()
    own = gallery.vectors_of(name)
    if replace or own.shape[1] != new.shape[1]:
        own = np.zeros((0, new.shape[1]), np.float32)
    warnings = []
    for i, sample in enumerate(result.samples):
        same = np.concatenate([own, np.delete(new, i, axis=0)]) if len(own) or len(new) > 1 else own
        nearest = float(np.min(distances_to(same, sample.vector, gallery.distance))) if len(same) else None
        if nearest is not None and nearest <= threshold:
            continue
        match = gallery.match(sample.vector)
        looks_like = match.name is not None and match.name != name
        if nearest is None and not looks_like:
            continue
        unlike = "" if nearest is None else (f"looks unlike the other samples of {name} "
                                            f"(distance {nearest:.3f} > {threshold:.3f})")
        like = f"looks like {match.name} (distance {match.distance:.3f})" if looks_like else ""
        warnings.append(f"{sample.source} {' and '.join(x for x in (unlike, like) if x)}: is it the right person?")
    return warnings


def embedding_bundle(settings: Settings, folder: Optional[str | Path] = None) -> Bundle:
    """Return the verified embedding bundle: ``folder`` when given, else the first configured bundle of task 'embedding'."""
    key = load_public_key(settings.models.public_key) if settings.models.public_key else None
    if folder is not None:
        bundle = load_bundle(folder, key)
        if bundle.manifest.task != "embedding":
            raise BundleError(f"bundle {bundle.path}: task is {bundle.manifest.task!r}, enrollment needs an embedding model")
        return bundle
    bundle = configured_bundle(settings, "embedding")
    if bundle is None:
        raise BundleError(f"no embedding bundle among models.bundles {settings.models.bundles} in "
                          f"{settings.models.dir}/: install one (e.g. models/embedding) or pass --bundle")
    return bundle


def configured_bundle(settings: Settings, task: str) -> Optional[Bundle]:
    """Return the verified first bundle of ``task`` among ``models.bundles`` (None when there is none)."""
    key = load_public_key(settings.models.public_key) if settings.models.public_key else None
    root = Path(settings.models.dir)
    for name in settings.models.bundles:
        path = root / name
        if (path / "manifest.yaml").is_file() and read_manifest(path).task == task:
            return load_bundle(path, key)
    return None


def landmarks_bundle(settings: Settings) -> Bundle:
    """Return the verified landmarks bundle among ``models.bundles``; BundleError saying what to add when none."""
    bundle = configured_bundle(settings, "landmarks")
    if bundle is None:
        raise BundleError(f"the embedding bundle aligns faces by their landmarks, but no landmarks bundle is among "
                          f"models.bundles {settings.models.bundles} in {settings.models.dir}/: add 'landmarks' "
                          "(models/landmarks)")
    return bundle


def make_enroller(settings: Settings, bundle: Bundle, min_sharpness: float = MIN_SHARPNESS) -> Enroller:
    """Return an Enroller for ``bundle``: photo detection (edge.detect.PhotoDetector), the configured runtime,
    and the landmarks bundle when ``bundle`` aligns its faces."""
    from .runtime import get_runtime

    runtime = get_runtime(settings.models.runtime)
    model = FaceModel(bundle, runtime, settings.models.num_threads)
    landmarker = None
    if bundle.manifest.crop.aligned:
        landmarker = Landmarker(FaceModel(landmarks_bundle(settings), runtime, settings.models.num_threads))
    return Enroller(model, FaceChecker(PhotoDetector(settings.detector), min_sharpness),
                    keep_photos=settings.recognition.keep_photos, landmarker=landmarker)


def reembed_gallery(gallery: Gallery, enroller: Enroller) -> int:
    """Re-embed a gallery's kept photos with the enroller's model and adopt that model; return the count."""
    manifest = enroller.model.manifest
    return gallery.reembed(enroller.embed_photo, manifest.name, manifest.version, model_distance(manifest))



def frames_from(source: Any, max_seconds: float = 60.0) -> Iterator[np.ndarray]:
    """Yield the frames of an opened edge source until it ends or ``max_seconds`` pass."""
    deadline = time.monotonic() + max_seconds
    while time.monotonic() < deadline:
        frame = source.read(timeout=1.0)
        if frame is None:
            if source.ended:
                return
            continue
        yield frame
