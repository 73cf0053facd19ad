"""Enrolled people: their face embeddings, nearest-person matching and the "unknown" threshold.

The gallery file (default ``gallery/gallery.npz``) is a NumPy ``.npz`` archive read with
``allow_pickle=False``; it holds

- ``header``: UTF-8 JSON (as uint8 bytes): format name and version, the embedding model's
  name and version, the vector size, the people in enrollment order, and, when photos are
  kept, the crop spec of the stored photos;
- ``vectors``: float32 (N, D), every enrolled embedding as its distance compares it (L2-normalised for
  cosine, the model's own vectors for euclidean; header ``distance``, cosine when absent);
- ``owners``: int32 (N,), the index in ``header.people`` of each vector's person;
- ``photos`` (only with ``recognition.keep_photos``): uint8 (N, S, S, 3) face crops, cut with
  :data:`PHOTO_SPEC` (a wide margin), so a new model with another crop can re-embed them.

Each person keeps all their enrollment embeddings (not a mean): a face matches a person by
its nearest member, which copes with a person enrolled under several poses or lights.

Matching uses the distance the embedding bundle declares (edge.distance: cosine ``1 - a.b`` on
L2-normalised vectors, or euclidean ``|a - b|`` on the model's own vectors, as dlib's ResNet is compared).
A face is "unknown" when its nearest member is farther than :attr:`Gallery.threshold`, in that distance.

Threshold rule (first that applies):

1. ``recognition.threshold`` in edge.yaml (a fixed override);
2. calibrated from the gallery itself, by treating each enrolled person in turn as a
   stranger: for every enrolled vector, its *nearest impostor distance* is the distance
   to the closest vector of any *other* enrolled person. That is exactly the distance a
   stranger's face would be matched at against the rest of the gallery, so the
   :data:`STRANGER_ACCEPT_RATE` quantile of these distances is a threshold at which about that
   share of strangers would be given a name. Because it looks at the *nearest* of all other
   people, it tightens as the gallery grows (more people = more chances for a stranger to
   resemble one); it catches galleries of look-alikes (a family) that the model's tail does not
   know of, but it is held at least :data:`FLOOR_FRACTION` of the ceiling, so such a gallery
   does not make everybody unknown.

   Both are bounded above by the model's verification threshold (manifest
   ``recognition.threshold``, measured on validation pairs; :data:`DEFAULT_THRESHOLD` when the
   manifest has none), so matching is never looser than the model supports;
3. with fewer than two enrolled people and no impostor tail: the model's threshold (or
   :data:`DEFAULT_THRESHOLD`).

:meth:`Gallery.threshold_and_source` says which applied: ``config``, ``gallery``, ``floor`` (the
gallery's own quantile was lower and the floor held it), ``model`` or ``default``;
:func:`describe_threshold` turns that into the words ``face-edge gallery list`` prints.

Why: the model's accuracy-optimal pair threshold names more strangers the more people are
enrolled (a stranger has more chances to resemble someone). In an open-set simulation with
the dlib ResNet (compared by cosine then, embedding 1.0.0) on the 70 celeba_wild people that are not held out (3 photos enrolled per
person, 80 random galleries per size), the pair threshold alone named 15 / 36 / 54 / 67 % of
strangers with 2 / 15 / 30 / 50 people enrolled; the gallery's own 5 % nearest-impostor
quantile 11 / 9 / 7 / 6 % (15 people: 95 % of enrolled faces named); the rule above
4 / 3 / 2 / 1 % while naming 97 / 93 / 91 / 88 % of enrolled faces.

Small faces are not named (:data:`MIN_NAME_FACE_PX`, ``recognition.min_face_px``): a face
narrower than that is still found, tracked and described, but its embedding is not matched, so a
person far from the camera stays unnamed until they come closer. 40 px is the smallest face dlib's
HOG detector finds in face_recognition's pipeline (its 80 px window on a twice-enlarged image).
Measured on the celeba_wild people that are not held out (8 random galleries of 15 people, 3 photos
each, the rest as strangers): naming every face named 3.5 % of strangers and 86.4 % of enrolled
faces correctly; from 40 px, 2.4 % and 90.9 % of the faces it names or declines (19 % of faces
were under 40 px).

Files are written atomically (temporary file in the same folder, fsync, ``os.replace``) with
mode 0600, and the temporary file is read back and checked before it replaces the old one:
a crash or a bad write leaves the previous gallery intact.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import io
import json
import math
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

import numpy as np

from .crop import CropSpec
from .distance import COSINE, check_distance, distances_to, pairwise, prepare
from .errors import GalleryError

FORMAT = "face-edge-gallery"
FORMAT_VERSION = 1
FILE_MODE = 0o600
STRANGER_ACCEPT_RATE = 0.05    # share of (simulated) strangers the calibrated threshold lets through
FLOOR_FRACTION = 0.5           # the calibrated threshold never goes below this x the ceiling
DEFAULT_THRESHOLD = 0.4        # only when neither config nor the model's manifest gives one
MIN_NAME_FACE_PX = 40          # narrower faces are not matched (module docstring)
MAX_NAME_LENGTH = 64
PHOTO_SPEC = CropSpec(size=160, margin=0.6, shift_y=0.0)
_FORBIDDEN_NAME_CHARS = set('/\\:*?"<>|')


@dataclass(frozen=True)
class Match:
    """The result of matching one face: ``name`` None means unknown.

    ``distance`` is the distance to the nearest enrolled vector (inf for an empty
    gallery); ``nearest`` is that vector's person even when the face is unknown.
    """

    name: Optional[str]
    distance: float
    nearest: Optional[str] = None


@dataclass(frozen=True)
class Person:
    """One enrolled person as listed: name, number of stored embeddings, when first enrolled."""

    name: str
    samples: int
    enrolled: str = ""


def check_name(name: str) -> str:
    """Return ``name`` stripped; GalleryError when it is empty or could act as a path."""
    if not isinstance(name, str):
        raise GalleryError(f"name {name!r}: must be text")
    clean = name.strip()
    if not clean:
        raise GalleryError("name is empty: give the person a name, e.g. `face-edge enroll alice --from photos/`")
    if len(clean) > MAX_NAME_LENGTH:
        raise GalleryError(f"name {clean[:20]!r}...: longer than {MAX_NAME_LENGTH} characters")
    bad = sorted(set(clean) & _FORBIDDEN_NAME_CHARS)
    if bad or clean.startswith(".") or ".." in clean or any(ord(c) < 32 or ord(c) == 127 for c in clean):
        raise GalleryError(f"name {clean!r}: may not contain path characters ({' '.join(sorted(_FORBIDDEN_NAME_CHARS))}), "
                           "'..', control characters or start with '.'; use letters, digits, spaces, - or _")
    return clean


def model_threshold(manifest: Any) -> Optional[float]:
    """Return the distance threshold in an embedding manifest's ``recognition.threshold``, if any."""
    extra = getattr(manifest, "extra", None) or {}
    rec = extra.get("recognition") if isinstance(extra, Mapping) else None
    value = rec.get("threshold") if isinstance(rec, Mapping) else None
    try:
        value = None if value is None else float(value)
    except (TypeError, ValueError):
        return None
    return value if value is not None and 0.0 < value < 2.0 else None


def model_impostor_tail(manifest: Any) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """Return (rates, distances) of an embedding manifest's ``recognition.impostor_tail``, if it has a valid one.

    ``distances[i]`` is the distance at or below which a fraction ``rates[i]`` of pairs of
    different people fall (both increasing).
    """
    extra = getattr(manifest, "extra", None) or {}
    rec = extra.get("recognition") if isinstance(extra, Mapping) else None
    tail = rec.get("impostor_tail") if isinstance(rec, Mapping) else None
    try:
        rates = np.asarray(tail["rates"], np.float64)
        dists = np.asarray(tail["distances"], np.float64)
    except (TypeError, KeyError, ValueError):
        return None
    if rates.ndim != 1 or rates.shape != dists.shape or len(rates) < 2 or np.any(np.diff(rates) <= 0) \
            or np.any(np.diff(dists) < 0) or rates[0] <= 0 or rates[-1] >= 1:
        return None
    return rates, dists


def model_distance(manifest: Any) -> str:
    """Return the distance an embedding manifest's vectors are compared by (its embedding output's unit;
    edge.bundle checked that ``recognition.distance`` agrees)."""
    output = manifest.output_of_kind("embedding") if hasattr(manifest, "output_of_kind") else None
    return check_distance(output.unit if output is not None else COSINE)


def model_calibration(manifest: Any) -> dict[str, Any]:
    """Return the keyword arguments of Gallery / Gallery.load that an embedding manifest sets (its distance,
    threshold and impostor tail)."""
    return {"model_threshold": model_threshold(manifest), "impostor_tail": model_impostor_tail(manifest),
            "distance": model_distance(manifest)}


def tail_threshold(tail: tuple[np.ndarray, np.ndarray], samples: int, rate: float = STRANGER_ACCEPT_RATE) -> float:
    """Return the distance at which about ``rate`` of strangers match one of ``samples`` enrolled vectors."""
    per_pair = 1.0 - (1.0 - rate) ** (1.0 / max(1, samples))
    rates, dists = tail
    return float(np.interp(np.log(per_pair), np.log(rates), dists))


def calibrate_threshold(vectors: np.ndarray, owners: np.ndarray, ceiling: Optional[float] = None,
                        rate: float = STRANGER_ACCEPT_RATE, floor_fraction: float = FLOOR_FRACTION,
                        impostor_tail: Optional[tuple[np.ndarray, np.ndarray]] = None,
                        distance: str = COSINE) -> tuple[float, str]:
    """Return (threshold, source) for a gallery of vectors compared by ``distance`` (rule in the module docstring).

    ``source`` is ``"tail"`` when the model's impostor tail for this many samples set it,
    ``"gallery"`` when the gallery's own nearest impostors did, ``"floor"`` when those would go
    below ``floor_fraction`` of the ceiling and the floor holds them, ``"model"`` when the model's
    ceiling was used (as bound or for lack of impostors), ``"default"`` when neither exists.
    """
    top = float(ceiling) if ceiling is not None else DEFAULT_THRESHOLD
    best, source = top, ("model" if ceiling is not None else "default")
    if impostor_tail is not None and len(vectors):
        t = tail_threshold(impostor_tail, len(vectors), rate)
        if t < best:
            best, source = t, "tail"
    nearest = nearest_impostor_distances(vectors, owners, distance)
    if nearest.size:
        low = float(np.quantile(nearest, rate))
        own, own_source = (floor_fraction * top, "floor") if low < floor_fraction * top else (low, "gallery")
        if own < best:
            best, source = own, own_source
    return best, source


def describe_threshold(threshold: float, source: str, ceiling: Optional[float] = None) -> str:
    """Return the words for a threshold and its source, e.g. ``0.153 (calibrated from the gallery)``."""
    why = {"config": "recognition.threshold in the config",
           "tail": (f"calibrated for this many enrolled samples from the model's impostor distances: about "
                    f"{STRANGER_ACCEPT_RATE:.0%} of strangers would be named"),
           "gallery": (f"calibrated from the enrolled people's own look-alikes: about {STRANGER_ACCEPT_RATE:.0%} of "
                       "strangers would be named"),
           "floor": (f"the floor, {FLOOR_FRACTION:g} x the model's {ceiling:.3f}: enrolled people look so alike that "
                     "the gallery's own calibration would be lower" if ceiling is not None else "the floor"),
           "model": "the model's own threshold (the gallery allows no tighter one, or fewer than two people)",
           "default": "the built-in default (the model's manifest has none)"}.get(source, source)
    return f"{threshold:.3f} ({why})"


def nearest_impostor_distances(vectors: np.ndarray, owners: np.ndarray, distance: str = COSINE) -> np.ndarray:
    """Return, for each vector, the distance to the nearest vector of another person (empty if < 2 people)."""
    owners = np.asarray(owners)
    if len(vectors) < 2 or len(np.unique(owners)) < 2:
        return np.zeros(0, np.float32)
    dist = pairwise(vectors, vectors, distance)
    dist[owners[:, None] == owners[None, :]] = np.inf
    return dist.min(axis=1).astype(np.float32)


def _prepared(vectors: np.ndarray, distance: str) -> np.ndarray:
    try:
        return prepare(vectors, distance)
    except ValueError:
        raise GalleryError("embedding has zero length or non-finite values; the model produced no usable vector") \
            from None


def people_count(n: int) -> str:
    """Return "1 person" / "n people"."""
    return "1 person" if n == 1 else f"{n} people"


def sample_count(n: int, adjective: str = "") -> str:
    """Return "1 sample" / "n samples" ("1 new sample" with an adjective)."""
    words = f"{adjective} sample" if adjective else "sample"
    return f"1 {words}" if n == 1 else f"{n} {words}s"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


class Gallery:
    """The enrolled people of one embedding model; ``match(vector)`` names a face or says unknown."""

    def __init__(self, model_name: str, model_version: str, dim: Optional[int] = None,
                 path: Optional[Path] = None, threshold: Optional[float] = None,
                 model_threshold: Optional[float] = None,
                 impostor_tail: Optional[tuple[np.ndarray, np.ndarray]] = None, distance: str = COSINE):
        self.model_name = str(model_name)
        self.distance = check_distance(distance)
        self.model_version = str(model_version)
        self.dim = dim
        self.path = Path(path) if path is not None else None
        self.threshold_override = threshold
        self.model_threshold = model_threshold
        self.impostor_tail = impostor_tail
        self.min_face_px = MIN_NAME_FACE_PX
        self.created = _now()
        self.photo_spec: Optional[CropSpec] = None
        self._people: list[str] = []
        self._enrolled: dict[str, str] = {}
        self._vectors = np.zeros((0, dim or 0), np.float32)
        self._owners = np.zeros(0, np.int32)
        self._photos: Optional[np.ndarray] = None
        self._calibrated: Optional[tuple[float, str]] = None

    # ---- reading -------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, model_name: str, model_version: str, *,
             threshold: Optional[float] = None, model_threshold: Optional[float] = None,
             impostor_tail: Optional[tuple[np.ndarray, np.ndarray]] = None, distance: str = COSINE) -> "Gallery":
        """Return the gallery at ``path`` for this model (an empty one when the file does not exist yet).

        GalleryError (one line) when the file is corrupt, or was made by another model: then
        the message says to re-enroll, or to run ``face-edge gallery reembed`` when photos were kept.
        """
        path = Path(path)
        if not path.exists():
            return cls(model_name, model_version, path=path, threshold=threshold,
                       model_threshold=model_threshold, impostor_tail=impostor_tail, distance=distance)
        gallery = cls.read(path)
        distance = check_distance(distance)
        if (gallery.model_name, gallery.model_version, gallery.distance) != (str(model_name), str(model_version),
                                                                             distance):
            made = f"{gallery.model_name} v{gallery.model_version}"
            now = f"{model_name} v{model_version}"
            if gallery.distance != distance:   # the same model compared another way: say so, not only the versions
                made, now = f"{made} ({gallery.distance} distance)", f"{now} ({distance} distance)"
            if gallery.has_photos:
                raise GalleryError(f"gallery {path} was made with model {made}, the embedding model is now {now}: "
                                   "run `face-edge gallery reembed` to re-embed the kept photos")
            raise GalleryError(f"gallery {path} was made with model {made}, the embedding model is now {now}: "
                               "its embeddings do not fit; re-enroll everyone (`face-edge enroll NAME --from DIR`) "
                               f"after moving {path.name} away")
        gallery.threshold_override = threshold
        gallery.model_threshold = model_threshold
        gallery.impostor_tail = impostor_tail
        return gallery

    @classmethod
    def read(cls, path: str | Path) -> "Gallery":
        """Return the gallery stored at ``path`` whatever model made it; GalleryError when unreadable or corrupt."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise GalleryError(f"gallery {path} does not exist") from None
        except PermissionError:
            raise GalleryError(f"gallery {path}: permission denied; run the command as the user who owns it "
                               f"(on the Pi: sudo -u face-edge face-edge ...)") from None
        except OSError as exc:
            raise GalleryError(f"gallery {path}: cannot read ({exc.strerror or exc})") from None
        gallery = cls.from_bytes(data, where=f"gallery {path}")
        gallery.path = path
        return gallery

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "gallery") -> "Gallery":
        """Return the gallery encoded in ``data`` (the file's bytes); GalleryError when it is not a valid gallery."""
        hint = "it was left untouched; restore a backup (`face-edge gallery import FILE`) or move it away and re-enroll"
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                arrays = {key: npz[key] for key in npz.files}
            header = json.loads(bytes(arrays["header"].astype(np.uint8)).decode("utf-8"))
            if not isinstance(header, dict) or header.get("format") != FORMAT:
                raise ValueError("not a face-edge gallery")
            if int(header.get("format_version", 0)) > FORMAT_VERSION:
                raise GalleryError(f"{where}: format version {header.get('format_version')} is newer than this "
                                   f"face-edge reads ({FORMAT_VERSION}); upgrade face-edge")
            model = header["model"]
            people = [str(p["name"]) for p in header["people"]]
            for name in people:
                try:
                    check_name(name)
                except GalleryError:
                    raise ValueError(f"invalid name {name[:20]!r}") from None
            vectors = np.asarray(arrays["vectors"], np.float32)
            owners = np.asarray(arrays["owners"], np.int64).astype(np.int32)
            dim = int(header["dim"])
            if vectors.ndim != 2 or (len(vectors) and vectors.shape[1] != dim) or len(owners) != len(vectors):
                raise ValueError(f"vectors {vectors.shape} / owners {owners.shape} do not fit dim {dim}")
            if len(owners) and (owners.min() < 0 or owners.max() >= len(people)):
                raise ValueError("a vector belongs to no listed person")
            if len(set(people)) != len(people):
                raise ValueError("a person is listed twice")
            if not np.all(np.isfinite(vectors)):
                raise ValueError("non-finite embedding values")
            distance = check_distance(header.get("distance"))
            photos = arrays.get("photos")
            if photos is not None and (photos.dtype != np.uint8 or photos.ndim != 4 or len(photos) != len(vectors)):
                raise ValueError("photos do not fit the vectors")
        except GalleryError:
            raise
        except (OSError, EOFError, ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError,
                zipfile.BadZipFile) as exc:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise GalleryError(f"{where} is corrupt or not a face-edge gallery ({detail[:80]}); {hint}") from None
        gallery = cls(str(model["name"]), str(model["version"]), dim=dim, distance=distance)
        gallery.created = str(header.get("created", ""))
        gallery._people = people
        gallery._enrolled = {p: str(entry.get("enrolled", "")) for p, entry in zip(people, header["people"])}
        gallery._vectors = vectors
        gallery._owners = owners
        gallery._photos = photos
        if photos is not None and header.get("photo_spec"):
            gallery.photo_spec = CropSpec.from_dict(header["photo_spec"])
        return gallery

    # ---- matching ------------------------------------------------------------------------
    @property
    def threshold(self) -> float:
        """Return the distance above which a face is unknown (config override, else calibrated)."""
        return self.threshold_and_source()[0]

    def threshold_and_source(self) -> tuple[float, str]:
        """Return (threshold, where it comes from: config | tail | gallery | floor | model | default)."""
        if self.threshold_override is not None:
            return float(self.threshold_override), "config"
        if self._calibrated is None:
            self._calibrated = calibrate_threshold(self._vectors, self._owners, self.model_threshold,
                                                   impostor_tail=self.impostor_tail, distance=self.distance)
        return self._calibrated

    def match(self, vector: np.ndarray) -> Match:
        """Return the nearest enrolled person by the gallery's distance, name None when farther than the threshold."""
        if not len(self._vectors):
            return Match(None, math.inf, None)
        v = np.asarray(vector, np.float32).reshape(-1)
        if v.size != self._vectors.shape[1]:
            raise GalleryError(f"embedding of size {v.size} does not fit the gallery's {self._vectors.shape[1]}-d "
                               f"vectors (model {self.model_name} v{self.model_version})")
        norm = float(np.linalg.norm(v))
        if norm == 0 or not math.isfinite(norm):
            return Match(None, math.inf, None)
        dist = distances_to(self._vectors, v, self.distance)
        best = int(np.argmin(dist))
        distance = float(dist[best])
        person = self._people[int(self._owners[best])]
        return Match(person if distance <= self.threshold else None, distance, person)

    # ---- editing -------------------------------------------------------------------------
    def add(self, name: str, vectors: np.ndarray, photos: Optional[np.ndarray] = None) -> int:
        """Add embeddings (and, when photos are kept, their PHOTO_SPEC crops) for ``name``; return its sample count."""
        name = check_name(name)
        vectors = _prepared(vectors, self.distance)
        if not len(self._vectors):  # the first vectors fix the gallery's size
            self.dim = int(vectors.shape[1])
            self._vectors = self._vectors.reshape(0, self.dim)
        if vectors.shape[1] != self.dim:
            raise GalleryError(f"embedding of size {vectors.shape[1]} does not fit the gallery's {self.dim}-d vectors")
        keep = photos is not None
        if len(self._vectors) and keep != self.has_photos:
            raise GalleryError("this gallery " + ("keeps" if self.has_photos else "does not keep")
                               + " enrollment photos; set recognition.keep_photos the same way for every enrollment")
        if keep:
            photos = np.asarray(photos, np.uint8)
            if photos.ndim != 4 or len(photos) != len(vectors):
                raise GalleryError("one photo per embedding is needed when recognition.keep_photos is on")
            self.photo_spec = PHOTO_SPEC
        if name not in self._people:
            self._people.append(name)
            self._enrolled[name] = _now()
        owner = self._people.index(name)
        self._vectors = np.concatenate([self._vectors, vectors]).astype(np.float32)
        self._owners = np.concatenate([self._owners, np.full(len(vectors), owner, np.int32)])
        if keep:
            self._photos = photos if self._photos is None else np.concatenate([self._photos, photos])
        self._calibrated = None
        return int(np.sum(self._owners == owner))

    def remove(self, name: str) -> int:
        """Remove ``name`` and return how many embeddings were dropped; GalleryError when not enrolled."""
        name = check_name(name)
        if name not in self._people:
            known = ", ".join(self._people) or "nobody is enrolled"
            raise GalleryError(f"{name!r} is not enrolled (enrolled: {known})")
        owner = self._people.index(name)
        keep = self._owners != owner
        dropped = int(np.sum(~keep))
        self._vectors = self._vectors[keep]
        owners = self._owners[keep]
        self._owners = np.where(owners > owner, owners - 1, owners).astype(np.int32)
        if self._photos is not None:
            self._photos = self._photos[keep]
        self._people.pop(owner)
        self._enrolled.pop(name, None)
        self._calibrated = None
        return dropped

    def rename(self, old: str, new: str) -> None:
        """Give ``old``'s samples the name ``new`` (enrollment order and date kept); GalleryError when ``old`` is
        not enrolled or ``new`` already is."""
        old, new = check_name(old), check_name(new)
        if old not in self._people:
            raise GalleryError(f"{old!r} is not enrolled (enrolled: {', '.join(self._people) or 'nobody'})")
        if new != old and new in self._people:
            raise GalleryError(f"{new!r} is already enrolled: remove one of them first, or enroll more photos of {new}")
        self._people[self._people.index(old)] = new
        self._enrolled[new] = self._enrolled.pop(old, "")

    def sample_matched(self, name: str, vectors: np.ndarray) -> Optional[int]:
        """Return the index (among ``name``'s samples, in vectors_of order) of the sample that named these faces
        ``name``: the sample of ``name`` nearest to any of the vectors that match ``name``; None when none does."""
        if name not in self._people or not len(self._vectors):
            return None
        rows = np.flatnonzero(self._owners == self._people.index(name))
        best: Optional[tuple[float, int]] = None
        for vector in np.asarray(vectors, np.float32).reshape(-1, self._vectors.shape[1]):
            if self.match(vector).name != name:
                continue
            dist = distances_to(self._vectors[rows], vector, self.distance)
            i = int(np.argmin(dist))
            if best is None or dist[i] < best[0]:
                best = (float(dist[i]), i)
        return None if best is None else best[1]

    def remove_samples(self, name: str, indexes: list[int]) -> int:
        """Drop ``name``'s samples at ``indexes`` (as numbered by vectors_of) and return how many are left;
        GalleryError when that would leave none (remove the person instead)."""
        name = check_name(name)
        if name not in self._people:
            raise GalleryError(f"{name!r} is not enrolled")
        rows = np.flatnonzero(self._owners == self._people.index(name))
        drop = sorted({int(i) for i in indexes})
        if any(i < 0 or i >= len(rows) for i in drop):
            raise GalleryError(f"{name} has {sample_count(len(rows))}; no sample {drop}")
        if len(drop) >= len(rows):
            raise GalleryError(f"that would leave {name} with no sample: remove {name}, or enroll better photos first")
        keep = np.ones(len(self._vectors), bool)
        keep[rows[drop]] = False
        self._vectors = self._vectors[keep]
        self._owners = self._owners[keep]
        if self._photos is not None:
            self._photos = self._photos[keep]
        self._calibrated = None
        return len(rows) - len(drop)

    def merge(self, other: "Gallery", replace: bool = False) -> list[str]:
        """Add every person of ``other`` (same model); return their names.

        A person enrolled in both is an error unless ``replace``, which keeps ``other``'s samples.
        """
        if (other.model_name, other.model_version) != (self.model_name, self.model_version):
            raise GalleryError(f"the imported gallery was made with model {other.model_name} v{other.model_version}, "
                               f"this one with {self.model_name} v{self.model_version}: re-enroll instead")
        clash = [p for p in other.names() if p in self._people]
        if clash and not replace:
            raise GalleryError(f"already enrolled: {', '.join(clash)}; remove them first or import with --replace")
        if len(self._vectors) and len(other._vectors) and other.has_photos != self.has_photos:
            raise GalleryError("one gallery keeps enrollment photos and the other does not; they cannot be merged")
        for name in clash:
            self.remove(name)
        for name in other.names():
            rows = other._owners == other._people.index(name)
            photos = other._photos[rows] if other._photos is not None else None
            self.add(name, other._vectors[rows], photos)
            self._enrolled[name] = other._enrolled.get(name) or self._enrolled[name]
        return other.names()

    # ---- listing -------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Return the enrolled names in enrollment order."""
        return list(self._people)

    def list(self) -> list[Person]:
        """Return every enrolled Person with its number of embeddings."""
        return [Person(p, int(np.sum(self._owners == i)), self._enrolled.get(p, ""))
                for i, p in enumerate(self._people)]

    def vectors_of(self, name: str) -> np.ndarray:
        """Return the (k, D) embeddings enrolled for ``name`` (empty when not enrolled)."""
        if name not in self._people:
            return np.zeros((0, self.dim or 0), np.float32)
        return self._vectors[self._owners == self._people.index(name)].copy()

    def photos_of(self, name: str) -> Optional[np.ndarray]:
        """Return the kept PHOTO_SPEC crops of ``name`` (None when photos are not kept)."""
        if self._photos is None or name not in self._people:
            return None
        return self._photos[self._owners == self._people.index(name)].copy()

    @property
    def has_photos(self) -> bool:
        """Return True when enrollment photos are kept (``recognition.keep_photos``)."""
        return self._photos is not None and len(self._photos) > 0

    def __len__(self) -> int:
        return len(self._people)

    # ---- re-embedding ---------------------------------------------------------------------
    def reembed(self, embed: Any, model_name: str, model_version: str, distance: str = COSINE) -> int:
        """Replace every vector by ``embed(photo)`` of its kept photo and adopt the new model (compared by
        ``distance``); return the count.

        ``embed`` takes a PHOTO_SPEC crop (BGR uint8) and returns the new model's vector.
        GalleryError when this gallery kept no photos.
        """
        if not self.has_photos:
            raise GalleryError("this gallery kept no photos (recognition.keep_photos was off): re-enroll everyone")
        assert self._photos is not None
        self.distance = check_distance(distance)
        vectors = _prepared(np.stack([np.asarray(embed(p), np.float32).reshape(-1) for p in self._photos]),
                            self.distance)
        self._vectors = vectors
        self.dim = int(vectors.shape[1])
        self.model_name, self.model_version = str(model_name), str(model_version)
        self._calibrated = None
        return len(vectors)

    # ---- writing -------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """Return the gallery encoded as the bytes of a .npz file."""
        header: dict[str, Any] = {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "model": {"name": self.model_name, "version": self.model_version},
            "dim": int(self.dim or 0), "distance": self.distance, "created": self.created, "updated": _now(),
            "people": [{"name": p, "enrolled": self._enrolled.get(p, "")} for p in self._people],
        }
        arrays: dict[str, np.ndarray] = {
            "vectors": self._vectors.astype(np.float32).reshape(len(self._vectors), int(self.dim or 0)),
            "owners": self._owners.astype(np.int32),
        }
        if self.has_photos:
            header["photo_spec"] = (self.photo_spec or PHOTO_SPEC).to_dict()
            arrays["photos"] = self._photos  # type: ignore[assignment]
        arrays["header"] = np.frombuffer(json.dumps(header).encode("utf-8"), np.uint8)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    def save(self, path: Optional[str | Path] = None) -> Path:
        """Write the gallery atomically with mode 0600 to ``path`` (default: where it was loaded); return the path."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise GalleryError("gallery has no file to save to")
        write_atomic(target, self.to_bytes(), check=Gallery.from_bytes)
        if self.path is None:
            self.path = target
        return target


def write_atomic(path: Path, data: bytes, check: Optional[Any] = None) -> None:
    """Write ``data`` to ``path`` atomically, mode 0600; ``check(bytes)`` must accept the written file first.

    A temporary file in the same folder is written, fsynced, read back and checked, then
    renamed over ``path`` with ``os.replace``; on any failure the temporary file is removed
    and the old ``path`` is left as it was.
    """
    path = Path(path)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # new folders only: who is enrolled is private
        owner = _rightful_owner(path)
    except OSError as exc:
        raise GalleryError(f"gallery folder {path.parent}: cannot create or read ({exc.strerror or exc})") from None
    euid = os.geteuid()
    if owner is not None and owner[0] != euid and euid != 0:
        # A 0600 file of ours could not be read by the service user who owns the gallery.
        name = _user_name(owner[0])
        raise GalleryError(f"gallery {path} belongs to user {name}, who must be able to read it: run the command "
                           f"as {name} (e.g. sudo -u {name} face-edge ...)")
    tmp: Optional[Path] = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
        tmp = Path(tmp_name)
        os.fchmod(fd, FILE_MODE)
        if owner is not None and euid == 0:  # sudo face-edge enroll: the file stays the service user's
            os.fchown(fd, owner[0], owner[1])
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if check is not None:
            check(tmp.read_bytes())
        os.replace(tmp, path)
        _fsync_folder(path.parent)
    except OSError as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise GalleryError(f"gallery {path}: could not be written ({exc.strerror or exc}); the previous file is kept") from None
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise


def _rightful_owner(path: Path) -> Optional[tuple[int, int]]:
    """Return the (uid, gid) a gallery file at ``path`` must keep: the existing file's, else its folder's
    when another non-root user (the service user) owns the folder; None = whoever writes it."""
    try:
        st = os.stat(path)
        return st.st_uid, st.st_gid
    except FileNotFoundError:
        st = os.stat(path.parent)
        return (st.st_uid, st.st_gid) if st.st_uid != 0 else None


def _user_name(uid: int) -> str:
    try:
        import pwd
        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return str(uid)


@contextlib.contextmanager
def gallery_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` + ".lock" while a command reads, changes and saves the gallery.

    Two enrollments at once would otherwise each save their own copy and one would be lost.
    """
    import fcntl

    lock_path = Path(str(path) + ".lock")
    try:
        lock_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(str(lock_path), os.O_RDWR | os.O_CREAT, FILE_MODE)
    except OSError as exc:
        raise GalleryError(f"gallery {path}: cannot create its lock file ({exc.strerror or exc})") from None
    try:
        owner = _rightful_owner(Path(path)) if os.geteuid() == 0 else None
        if owner is not None:  # so the service user can still take the lock after a sudo enrollment
            os.fchown(fd, owner[0], owner[1])
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(str(folder), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def open_gallery(recognition: Any, manifest: Any) -> Gallery:
    """Return the gallery of ``recognition.gallery`` for the embedding bundle's ``manifest``.

    The config's ``recognition.threshold`` overrides; the manifest's ``recognition.threshold``
    bounds the calibrated threshold and its ``impostor_tail`` calibrates it (see the module docstring).
    """
    gallery = Gallery.load(recognition.gallery, manifest.name, manifest.version,
                           threshold=recognition.threshold, **model_calibration(manifest))
    gallery.min_face_px = int(getattr(recognition, "min_face_px", MIN_NAME_FACE_PX))
    return gallery

