"""The project's own golden faces: crops of the public-domain demo clip, never research data.

Every bundle ships golden.npz: a few face crops and the outputs its model gives on them,
which edge.push replays on the device before switching to a new model. Those crops are
committed and redistributed with the bundle, so they must come from material the project
may ship: edge/assets/demo.mp4, built by assets/make_demo_clip.py from scikit-image's
astronaut photograph (NASA, public domain). Held-out research data (CelebA, UTKFace,
FER, ...) is licensed for non-commercial research only and must never end up here.

The faces are found by the same Haar detector the device uses and cut by edge.crop with
the bundle's own crop spec, so they look like what the model sees in operation; an aligned
crop is cut from the five points of a landmarks bundle, as on the device. Needs only OpenCV
and edge (no TensorFlow).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import cv2
import numpy as np

from edge.align import AlignmentError, FaceInputs, Landmarker
from edge.bundle import InputSpec, load_bundle
from edge.crop import CropSpec
from edge.detect import HaarDetector
from edge.models import FaceModel
from edge.sources import DEMO_CLIP

from .errors import ConvertError

GOLDEN_SOURCE = ("edge/assets/demo.mp4 (astronaut Eileen Collins, NASA photo via scikit-image, public domain): "
                 "Haar faces cut with the bundle's crop spec, plus mirrored / brightness variants")
CARD_NOTE = ("Golden faces (golden.npz): public-domain crops of the demo clip edge/assets/demo.mp4 (NASA astronaut "
             "photo); no research-only images are shipped. Rewrite them with `face-convert regolden BUNDLE`.")


@dataclass(frozen=True)
class GoldenRecipe:
    """One golden face: the demo frame, which detected face (0 = largest), and a deterministic variant."""

    frame: int
    face: int = 0
    mirror: bool = False
    gain: float = 1.0


# Four distinct faces: two zoom levels of the main face, the smaller mirrored "guest" copy that is in
# the clip from 3 s to 7.5 s, and a mirrored darker view. Frames chosen where Haar finds the faces.
RECIPES = (GoldenRecipe(20), GoldenRecipe(75, face=1), GoldenRecipe(75, mirror=True, gain=1.25),
           GoldenRecipe(130, gain=0.7), GoldenRecipe(40, mirror=True), GoldenRecipe(90, face=1, gain=0.8))


def _demo_frames(indices: set[int]) -> dict[int, np.ndarray]:
    """Return {index: BGR frame} of the demo clip, read in order (seeking mp4v is not frame exact)."""
    cap = cv2.VideoCapture(str(DEMO_CLIP))
    if not cap.isOpened():
        raise ConvertError(f"cannot read the demo clip {DEMO_CLIP} (golden faces come from it)")
    frames: dict[int, np.ndarray] = {}
    try:
        i = 0
        while len(frames) < len(indices):
            ok, frame = cap.read()
            if not ok:
                break
            if i in indices:
                frames[i] = frame
            i += 1
    finally:
        cap.release()
    missing = sorted(indices - set(frames))
    if missing:
        raise ConvertError(f"demo clip {DEMO_CLIP} has no frame(s) {missing}; rebuild it with assets/make_demo_clip.py")
    return frames


def golden_landmarker(crop: CropSpec, landmarks: Optional[str | Path]) -> Optional[Landmarker]:
    """Return the Landmarker of the landmarks bundle at ``landmarks`` when ``crop`` is aligned (None for box crops);
    ConvertError when an aligned crop has no landmarks bundle to cut its golden faces with."""
    if not crop.aligned:
        return None
    if landmarks is None or not Path(landmarks).is_dir():
        raise ConvertError("an aligned-crop bundle cuts its golden faces with a landmarks bundle: pass --landmarks "
                           f"DIR (e.g. models/landmarks){f'; {landmarks} does not exist' if landmarks else ''}")
    from edge.runtime import get_runtime

    return Landmarker(FaceModel(load_bundle(landmarks), get_runtime("ai_edge_litert")))


def demo_golden_faces(crop: CropSpec, input_spec: InputSpec, n: int = 4,
                      landmarker: Optional[Landmarker] = None) -> np.ndarray:
    """Return ``n`` golden faces: uint8 RGB, n x H x W x 3 at the model's input size (``input_spec``).

    Each is a Haar face of a demo-clip frame cut with ``crop`` (the bundle's crop spec; an aligned
    crop from ``landmarker``'s points), then optionally mirrored and brightness-scaled (see RECIPES);
    the result is deterministic.
    """
    if not 1 <= n <= len(RECIPES):
        raise ConvertError(f"golden faces: between 1 and {len(RECIPES)} demo faces can be made, not {n}")
    recipes = RECIPES[:n]
    frames = _demo_frames({r.frame for r in recipes})
    detector = HaarDetector()  # the device's defaults
    size = (input_spec.width, input_spec.height)
    faces = []
    for r in recipes:
        boxes = detector.detect(frames[r.frame])
        if len(boxes) <= r.face:
            raise ConvertError(f"golden faces: Haar finds {len(boxes)} face(s) in demo frame {r.frame}, "
                               f"face {r.face} was expected")
        try:
            face = FaceInputs(frames[r.frame], boxes[r.face], landmarker).crop(crop)
        except AlignmentError as exc:
            raise ConvertError(f"golden faces: demo frame {r.frame}, face {r.face} cannot be aligned by "
                               f"{landmarker.model.name if landmarker else 'any landmarks bundle'} ({exc})") from None
        if (face.shape[1], face.shape[0]) != size:
            face = cv2.resize(face, size, interpolation=cv2.INTER_AREA)
        if r.mirror:
            face = face[:, ::-1]
        if r.gain != 1.0:
            face = np.clip(np.rint(face.astype(np.float32) * r.gain), 0, 255).astype(np.uint8)
        faces.append(np.ascontiguousarray(face[:, :, ::-1]))  # golden.npz stores RGB
    return np.stack(faces).astype(np.uint8)


def write_demo_golden(folder: Path, model: FaceModel, n: int = 4,
                      landmarks: Optional[str | Path] = None) -> dict[str, Any]:
    """Write folder/golden.npz from ``n`` demo faces through ``model``; return the manifest ``golden`` entry.

    ``landmarks``: the landmarks bundle that aligns the faces of an aligned-crop model.
    """
    from .bundle_writer import write_golden

    landmarker = golden_landmarker(model.manifest.crop, landmarks)
    faces = demo_golden_faces(model.manifest.crop, model.manifest.input, n, landmarker)
    entry = {**write_golden(folder, model, faces), "source": GOLDEN_SOURCE}
    if landmarker is not None:
        entry["aligned_with"] = f"{landmarker.model.name} {landmarker.model.manifest.version}"
    return entry
