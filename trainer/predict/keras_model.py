"""A training RUN's Keras model behind edge's FaceModel interface, so a run and its bundle are compared on equal terms.

:class:`KerasFaceModel` has what edge's image API uses of a model (``name``, ``task``,
``manifest``, ``predict(crop)``): the run's run.yaml is parsed by edge's own manifest parser,
the face crops come from edge (``edge.look.look_at`` through ``edge.api.Analyzer``), outputs
are averaged over the run's test-time views like ``edge.models.FaceModel.outputs`` and turned
into head results by ``edge.models.interpret_output``. Only the network differs: float Keras
instead of the converted TFLite model.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from edge.bundle import BundleError, Manifest, parse_manifest
from edge.models import Prediction, interpret_output
from edge.views import PLAIN, apply_view

from ..errors import RunError
from ..run import RUN_YAML, read_run


class KerasFaceModel:
    """A RUN folder's Keras model; ``predict(crop_bgr)`` returns an edge Prediction."""

    def __init__(self, run_dir: str | Path, views: bool = True):
        run = read_run(run_dir)
        try:
            manifest = parse_manifest(run.info, f"{run.path}/{RUN_YAML}")
        except BundleError as exc:
            raise RunError(str(exc)) from None
        self.manifest: Manifest = manifest if views else replace(manifest, views=PLAIN)
        self.path = run.path
        self._model = run.load_model()

    @property
    def name(self) -> str:
        """Return the run's model name (run.yaml ``name``)."""
        return self.manifest.name

    @property
    def task(self) -> str:
        """Return the run's manifest task (attributes, multitask, embedding, distortion, landmarks)."""
        return self.manifest.task

    def _input(self, crop_bgr: np.ndarray) -> np.ndarray:
        inp = self.manifest.input
        img = crop_bgr
        if img.shape[:2] != (inp.height, inp.width):
            img = cv2.resize(img, (inp.width, inp.height), interpolation=cv2.INTER_AREA)
        if inp.channels == 1:
            return (cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img)[:, :, None]
        return img[:, :, ::-1] if inp.color == "rgb" else img

    def outputs(self, crop_bgr: np.ndarray) -> list[np.ndarray]:
        """Return each run.yaml output (float32 vector) for one BGR uint8 crop, averaged over the run's views."""
        batch = np.stack([self._input(apply_view(crop_bgr, view)) for view in self.manifest.views]).astype(np.float32)
        import keras

        out = self._model(batch, training=False)
        if not isinstance(out, dict):
            out = dict(zip(self._model.output_names, out if isinstance(out, (list, tuple)) else [out]))
        result = []
        for spec in self.manifest.outputs:
            if spec.name not in out:
                raise RunError(f"run {self.path}: the Keras model has no output {spec.name!r} "
                               f"(it has {', '.join(map(str, out))})")
            y = keras.ops.convert_to_numpy(out[spec.name]).astype(np.float32).reshape(len(batch), -1)
            result.append(y.mean(axis=0))
        return result

    def predict(self, crop_bgr: np.ndarray) -> Prediction:
        """Return the Prediction of every head for one BGR uint8 face crop."""
        heads = {spec.name: interpret_output(spec, y) for spec, y in zip(self.manifest.outputs, self.outputs(crop_bgr))}
        return Prediction(model=self.name, heads=heads)


def is_run(folder: str | Path) -> bool:
    """Return True when ``folder`` holds a training run (run.yaml; its model.keras is checked on loading)."""
    return (Path(folder) / RUN_YAML).is_file()

