"""What the web page and its JSON API do, apart from HTTP: status, people, enrollment, events, recognition.

A :class:`WebApp` serves one running loop (``pipeline``, with its integration hub) or, for
``face-edge serve --no-camera``, none. Photos (``POST /api/recognize``, enrollment by upload) are
analysed with the image API (edge.api) on the loop's own models, on the loop's model worker thread
between two looks (an interpreter must not be used by two threads at once), so no second copy of
the models takes the Pi's memory; without a loop, on models of its own loaded on first use. Either
way ``POST /api/recognize`` answers as the loop and ``face-edge recognize`` do. Gallery changes go through edge.people (lock, atomic write) and then to the loop, which swaps
the saved gallery in between two frames.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, TypeVar

from .. import __version__
from ..config import Settings
from ..crop import Box
from ..enroll import MIN_SHARPNESS, EnrollResult, Enroller, FaceChecker, Sample, Skipped
from ..errors import BundleError, GalleryError
from ..gallery import describe_threshold
from ..people import (cannot_enroll, forget_match, load_gallery, remove_person, rename_person, sample_line,
                      save_enrollment)
from .events import EventLog
from .live import LiveView
from .uploads import UploadError, decode_image

log = logging.getLogger("face-edge.web")
T = TypeVar("T")

MAX_PHOTOS = 30     # per enrollment
PHOTO_CALL_TIMEOUT_S = 120.0   # a photo request waits this long at most for the loop's model worker


def process_rss_mb() -> dict[str, float]:
    """Return this process's resident memory now and at its peak, in MB (Linux /proc; empty elsewhere)."""
    out: dict[str, float] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                out["rss_mb" if line.startswith("VmRSS") else "peak_rss_mb"] = round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return out


class WebApp:
    """The page's actions (see the module docstring). Every method may be called from any request thread."""

    def __init__(self, settings: Settings, pipeline: Any = None, hub: Any = None,
                 live: Optional[LiveView] = None, events: Optional[EventLog] = None):
        self.settings = settings
        self.pipeline = pipeline
        self.hub = hub
        self.live = live
        self.events = events or EventLog(settings.web.events_kept)
        self.started = time.time()
        self._models_lock = threading.Lock()
        self._analyzer: Any = None           # models of its own (no loop), loaded on first use
        self._loop_analyzer: Any = None      # on the loop's models; used on the loop's model worker only
        self._enroller: Optional[Enroller] = None
        self._load_errors: list[str] = []
        self._saved_gallery: Any = None      # the newest gallery the page saved (the loop swaps it in later)
        self._gallery_changed = False

    # ---- models of its own ------------------------------------------------------------------------
    def analyzer(self) -> Any:
        """Return the image API's Analyzer on the configured bundles (loaded on first use; the caller holds
        ``_models_lock``). Bundles that fail are skipped and reported, as the loop does."""
        if self._analyzer is None:
            from ..api import Analyzer, open_gallery_for
            from ..pipeline import load_models

            models, errors = load_models(self.settings)
            for err in errors:
                log.warning("web: model skipped: %s", err)
            self._load_errors = errors
            try:
                gallery = open_gallery_for(self.settings, models)
            except GalleryError as exc:
                log.warning("web: recognition off: %s", exc)
                gallery = None
            self._analyzer = Analyzer(self.settings, models, gallery)
        return self._analyzer

    def _embedding_manifest(self) -> Any:
        from ..look import embedding_model

        models = getattr(self.pipeline, "models", None)
        if not models:
            with self._models_lock:
                models = self.analyzer().models
        model = embedding_model(models)
        if model is None:
            raise BundleError("no embedding model is loaded, so nobody can be enrolled or recognised: add "
                              "'embedding' to models.bundles (face-edge check says why it did not load)")
        return model.manifest

    def _with_models(self, fn: Callable[[Any], T]) -> T:
        """Return ``fn(analyzer)``: on the loop's own models and on its model worker thread when a loop with
        models runs (no second copy in memory), else on the page's own models (``_models_lock`` held)."""
        pipeline = self.pipeline
        if pipeline is not None and getattr(pipeline, "models", None):
            from ..api import Analyzer

            def run() -> T:
                models = pipeline.models                 # replaced whole when the loop reloads its models
                if self._loop_analyzer is None or self._loop_analyzer.models is not models:
                    self._loop_analyzer = Analyzer(self.settings, models)   # its detector loads two cascades
                self._loop_analyzer.gallery = self._saved_gallery if self._gallery_changed else pipeline.gallery
                return fn(self._loop_analyzer)
            return pipeline.call_on_model_thread(run).result(PHOTO_CALL_TIMEOUT_S)
        with self._models_lock:
            return fn(self.analyzer())

    def _enroller_for(self, analyzer: Any) -> Enroller:
        """Return an Enroller on the analyzer's embedding and landmarks models (as ``face-edge enroll``)."""
        from ..detect import PhotoDetector
        from ..look import embedding_model

        same = (self._enroller is not None and self._enroller.model is embedding_model(analyzer.models)
                and getattr(self._enroller.landmarker, "model", None) is getattr(analyzer.landmarker, "model", None))
        if not same:                       # first use, or the loop reloaded its models
            model = embedding_model(analyzer.models)
            if model is None:
                raise BundleError("no embedding model is loaded: add 'embedding' to models.bundles")
            if model.manifest.crop.aligned and analyzer.landmarker is None:
                raise BundleError("the embedding bundle aligns faces by their landmarks, but no landmarks bundle is "
                                  "loaded: add 'landmarks' (models/landmarks) to models.bundles")
            self._enroller = Enroller(model, FaceChecker(PhotoDetector(self.settings.detector), MIN_SHARPNESS),
                                      keep_photos=self.settings.recognition.keep_photos,
                                      landmarker=analyzer.landmarker)
        return self._enroller

    def _gallery_saved(self, gallery: Any) -> None:
        """Hand a saved gallery to the loop (swapped in between two frames) and to the photo analyzer."""
        usable = gallery if gallery is not None and len(gallery) else None
        self._saved_gallery, self._gallery_changed = usable, True
        if self.hub is not None:
            self.hub.use_gallery(usable)
        with self._models_lock:
            if self._analyzer is not None:
                self._analyzer.gallery = usable

    # ---- reading --------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Return fps, camera state, models and versions, gallery, integrations, web and memory figures."""
        out: dict[str, Any] = {"version": __version__, "pid": os.getpid(),
                               "uptime_s": round(time.time() - self.started, 1), **process_rss_mb()}
        pipeline = self.pipeline
        if pipeline is not None:
            source = pipeline.source
            lost = bool(source is not None and getattr(source, "lost", False))
            out["loop"] = {"fps": None if pipeline.fps is None else round(pipeline.fps, 1),
                           "frames": pipeline.frame_index,
                           "source": getattr(source, "name", None),
                           "camera": "lost" if lost else ("ok" if pipeline.frame_index else "starting"),
                           "runtime": pipeline.runtime_label(),
                           "models": {n: {"version": str(m.manifest.version), "task": m.task}
                                      for n, m in dict(pipeline.models).items()},
                           "model_errors": list(pipeline.model_errors),
                           "recognition": pipeline.gallery is not None}
        else:
            out["loop"] = None
        if self.hub is not None:
            out["integrations"] = self.hub.status()
        out["web"] = {"live_viewers": self.live.viewers if self.live else 0,
                      "live_fps_cap": self.settings.web.live_fps,
                      "photo_models_loaded": self._analyzer is not None,
                      "photo_models": "the loop's" if pipeline is not None and getattr(pipeline, "models", None)
                      else ("loaded" if self._analyzer is not None else "not loaded yet")}
        return out

    def people(self) -> dict[str, Any]:
        """Return the enrolled people (name, samples, enrolled) and the unknown threshold with its reason."""
        gallery = load_gallery(self.settings, self._embedding_manifest())
        threshold, origin = gallery.threshold_and_source()
        return {"people": [{"name": p.name, "samples": p.samples, "enrolled": p.enrolled} for p in gallery.list()],
                "threshold": round(threshold, 4), "distance": gallery.distance,
                "threshold_words": describe_threshold(threshold, origin, gallery.model_threshold),
                "model": f"{gallery.model_name} v{gallery.model_version}", "photos_kept": gallery.has_photos}

    # ---- changing the gallery ----------------------------------------------------------------------
    def enroll(self, name: str, photos: Sequence[tuple[str, bytes]], replace: bool = False) -> dict[str, Any]:
        """Enroll ``name`` from uploaded (label, bytes) photos with the checks of ``face-edge enroll``; return the
        lines it would print, the warnings and the summary (``ok`` False and ``error`` when no photo is usable)."""
        from ..gallery import check_name

        name = check_name(name)
        if not photos:
            raise UploadError("no photo uploaded: choose 3-10 photos of the person alone, facing the camera")
        if len(photos) > MAX_PHOTOS:
            raise UploadError(f"{len(photos)} photos: at most {MAX_PHOTOS} per enrollment")
        manifest = self._embedding_manifest()
        load_gallery(self.settings, manifest)  # a corrupt gallery or one from another model: refused before work
        result = EnrollResult()
        images = []
        for label, data in photos:
            try:
                images.append((label, decode_image(data, self.settings.web.max_image_megapixels)))
            except UploadError as exc:
                result.skipped.append(Skipped(label, str(exc)))

        def embed(analyzer: Any) -> list[Any]:
            enroller = self._enroller_for(analyzer)
            return [enroller.sample(image, label) for label, image in images]
        for item in self._with_models(embed):
            (result.samples if isinstance(item, Sample) else result.skipped).append(item)  # type: ignore[arg-type]
        lines = [sample_line(item) for item in [*result.samples, *result.skipped]]
        if not result.samples:   # as `face-edge enroll`: one line saying why and what to do, the gallery untouched
            return {"ok": False, "name": name, "error": cannot_enroll(name, result, "uploaded photo"), "lines": lines}
        enrolled = save_enrollment(self.settings, manifest, name, result, replace=replace)
        self._gallery_saved(enrolled.gallery)
        log.info("web: %s", enrolled.message)
        return {"ok": True, "name": name, "lines": lines, "warnings": enrolled.warnings, "message": enrolled.message,
                "accepted": len(result.samples), "skipped": [s.message() for s in result.skipped],
                "samples": enrolled.total}

    def remove(self, name: str) -> dict[str, Any]:
        """Remove ``name``; return the message."""
        gallery, message = remove_person(self.settings, self._embedding_manifest(), name)
        self._gallery_saved(gallery)
        log.info("web: %s", message)
        return {"ok": True, "message": message}

    def rename(self, name: str, new: str) -> dict[str, Any]:
        """Rename ``name`` to ``new``; return the message."""
        gallery, message = rename_person(self.settings, self._embedding_manifest(), name, new)
        self._gallery_saved(gallery)
        log.info("web: %s", message)
        return {"ok": True, "message": message}

    def mark_wrong(self, event_id: int) -> dict[str, Any]:
        """Mark the match of event ``event_id`` as wrong: the samples that named this face stop counting."""
        event = self.events.get(event_id)
        if event is None:
            raise GalleryError(f"event {event_id} is not among the recent events any more")
        if not event.name:
            raise GalleryError(f"event {event_id} named nobody: there is no match to correct")
        if self.events.corrected(event_id):
            raise GalleryError(f"event {event_id} was already marked wrong ({self.events.corrected(event_id)})")
        gallery, message = forget_match(self.settings, self._embedding_manifest(), event.name, list(event.vectors))
        self._gallery_saved(gallery)
        self.events.mark_corrected(event_id, message)
        log.info("web: event %d marked wrong: %s", event_id, message)
        return {"ok": True, "message": message}

    # ---- photos -----------------------------------------------------------------------------------
    def recognize(self, data: bytes, boxes: Optional[Sequence[Box]] = None) -> dict[str, Any]:
        """Return every face of an uploaded image (box, name, distance, attributes) as ``face-edge recognize
        --json`` does; ``boxes``: look at these faces instead of detecting them."""
        image = decode_image(data, self.settings.web.max_image_megapixels)

        def look(analyzer: Any) -> tuple[list[Any], Optional[float], list[str]]:
            faces = analyzer.analyze(image, boxes)   # FaceEdgeError (a model failed) answers 400 with its line
            threshold = analyzer.gallery.threshold if analyzer.gallery is not None else None
            return faces, threshold, sorted(analyzer.models)
        faces, threshold, models = self._with_models(look)
        return {"width": int(image.shape[1]), "height": int(image.shape[0]), "threshold": threshold,
                "models": models, "faces": [f.to_dict() for f in faces]}
