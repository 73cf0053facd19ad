"""Changes to the enrolled people, shared by ``face-edge enroll`` / ``gallery`` and the web page.

Each change reads the gallery under :func:`edge.gallery.gallery_lock`, changes it and saves it
with the gallery's atomic write, so two changes at once (the page and a shell) never lose one.
The returned gallery is the saved one, ready for the running loop (:meth:`Pipeline.set_gallery`).
The one-line messages are the ones ``face-edge enroll`` prints, so the page says the same.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence, Union

import numpy as np

from .config import Settings
from .enroll import EnrollResult, Sample, Skipped, add_to_gallery, consistency_warnings
from .errors import GalleryError
from .gallery import (Gallery, check_name, describe_threshold, gallery_lock, open_gallery, people_count,
                      sample_count)


def load_gallery(settings: Settings, manifest: Any) -> Gallery:
    """Return the configured gallery for the embedding ``manifest`` (empty when the file does not exist yet),
    with the config's recognition settings, as the loop opens it (edge.gallery.open_gallery)."""
    return open_gallery(settings.recognition, manifest)


def sample_line(item: Union[Sample, Skipped]) -> str:
    """Return the line shown for one photo or frame: ``ok SOURCE (sharpness N)`` or ``skipped SOURCE: why``."""
    if isinstance(item, Sample):
        return f"ok {item.source} (sharpness {item.sharpness:.0f})"
    return item.message()


def cannot_enroll(name: str, result: EnrollResult, what: str) -> str:
    """Return the one line that says why nothing of ``name`` could be enrolled and what to do."""
    reasons: dict[str, int] = {}
    for s in result.skipped:
        reason = s.reason.split(" (")[0].split(";")[0]
        reasons[reason] = reasons.get(reason, 0) + 1
    counts = ", ".join(f"{n}x {reason}" for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]))
    return (f"could not enroll {name}: no {what} shows one sharp, frontal face ({counts or 'no images'}); "
            f"use 3-10 photos of {name} alone, facing the camera, the face at least 24 px wide")


@dataclass
class Enrolled:
    """What one enrollment did: the saved gallery, the person's sample count, warnings and the summary line."""

    gallery: Gallery
    total: int
    warnings: list[str] = field(default_factory=list)
    message: str = ""


def save_enrollment(settings: Settings, manifest: Any, name: str, result: EnrollResult,
                    replace: bool = False) -> Enrolled:
    """Add ``result``'s samples to the gallery under ``name`` (under the lock) and return what was done.

    GalleryError when no sample was accepted: the gallery is left as it was.
    """
    name = check_name(name)
    with gallery_lock(settings.recognition.gallery):  # re-read under the lock: another change may have saved
        gallery = load_gallery(settings, manifest)
        warnings = consistency_warnings(gallery, name, result, replace=replace)
        total = add_to_gallery(gallery, name, result, replace=replace)
        path = gallery.save()
    threshold, origin = gallery.threshold_and_source()
    message = (f"enrolled {name}: {sample_count(len(result.samples), 'new')} ({total} in all, "
               f"{len(result.skipped)} skipped) in {path}; {people_count(len(gallery))}; unknown above "
               f"{gallery.distance} distance {describe_threshold(threshold, origin, gallery.model_threshold)}")
    return Enrolled(gallery, total, warnings, message)


def remove_person(settings: Settings, manifest: Any, name: str) -> tuple[Gallery, str]:
    """Remove ``name`` and return (the saved gallery, the line saying what was removed)."""
    with gallery_lock(settings.recognition.gallery):
        gallery = load_gallery(settings, manifest)
        dropped = gallery.remove(name)
        path = gallery.save()
    return gallery, f"removed {name.strip()} ({sample_count(dropped)}) from {path}; {people_count(len(gallery))} left"


def rename_person(settings: Settings, manifest: Any, old: str, new: str) -> tuple[Gallery, str]:
    """Rename ``old`` to ``new`` and return (the saved gallery, the line saying so)."""
    with gallery_lock(settings.recognition.gallery):
        gallery = load_gallery(settings, manifest)
        gallery.rename(old, new)
        gallery.save()
    return gallery, f"renamed {old.strip()} to {new.strip()}"


def forget_match(settings: Settings, manifest: Any, name: str, vectors: Sequence[np.ndarray]) -> tuple[Gallery, str]:
    """Mark the face ``vectors`` (a track's looks) as wrongly named ``name``: the sample of ``name`` that matched
    it best stops counting (it is removed). Return (the saved gallery, the line saying what changed).

    GalleryError when none of the faces matches ``name`` any more, or when it would leave ``name`` no sample.
    """
    name = check_name(name)
    if not len(vectors):
        raise GalleryError("this event kept no face embedding (no embedding model ran on it): nothing to correct")
    with gallery_lock(settings.recognition.gallery):
        gallery = load_gallery(settings, manifest)
        if name not in gallery.names():
            raise GalleryError(f"{name!r} is not enrolled any more")
        culprit = gallery.sample_matched(name, np.stack(vectors))
        if culprit is None:
            raise GalleryError(f"this face no longer matches {name} (the gallery changed since): nothing to correct")
        left = gallery.remove_samples(name, [culprit])
        gallery.save()
    return gallery, f"{name}: the sample that matched this face stopped counting ({sample_count(left)} left)"


__all__ = ["Enrolled", "cannot_enroll", "forget_match", "load_gallery", "remove_person", "rename_person",
           "sample_line", "save_enrollment"]
