"""Predict age, age group, gender, emotion and ethnicity of the face in an image.

    >>> from trainer.predict_multitask import predict
    >>> predict("photo.jpg")            # the shipped int8 bundle models/multitask
    {'age': {'value': 31.4, 'confidence': 0.63}, 'age_group': {'label': '30-39', 'confidence': 0.58},
     'gender': {'label': 'female', 'confidence': 0.97}, 'emotion': {...}, 'ethnicity': {...},
     'face_detected': True}

The model is a bundle folder (run through edge.models.FaceModel, the device code) or a
training RUN folder (its Keras model). The face is the largest Haar detection; on a tight,
already-aligned face crop with no detection the whole image is used (as in training).

Confidences: class heads give the model's probability of the chosen label (gender: p or 1 - p).
Age is a regression, so its confidences come from the held-out error: treating the error as
Laplace-distributed with scale = held-out MAE, ``age.confidence`` is P(|error| <= 5 years)
and ``age_group.confidence`` the probability that the true age lies in the predicted group.
"""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from edge.crop import CropSpec
from trainer.data.multitask import DETECT_PAD
from trainer.errors import DataError
from trainer.faces import FaceCropper, read_image

DEFAULT_BUNDLE = Path(__file__).resolve().parents[1] / "models" / "multitask"
AGE_TOLERANCE = 5.0

Image = Union[str, Path, np.ndarray]


def _laplace_cdf(x: float, b: float) -> float:
    return 0.5 * math.exp(x / b) if x < 0 else 1.0 - 0.5 * math.exp(-x / b)


class MultitaskPredictor:
    """A loaded multi-task model (bundle or RUN); ``predict_crops`` / ``predict`` return result dicts."""

    def __init__(self, source: Union[str, Path] = DEFAULT_BUNDLE, threads: int = 1):
        path = Path(source)
        self.source = path
        if (path / "run.yaml").is_file() and (path / "model.keras").is_file():
            from trainer.run import read_run

            run = read_run(path)
            self.kind, self._run, self._model = "run", run, run.load_model()
            outputs, metrics, crop = run.info["outputs"], run.info.get("metrics") or {}, run.crop
        elif (path / "manifest.yaml").is_file():
            from edge.bundle import load_bundle, manifest_to_dict
            from edge.models import FaceModel

            self._face_model = FaceModel(load_bundle(path), num_threads=threads)
            data = manifest_to_dict(self._face_model.manifest)
            self.kind, outputs, metrics, crop = "bundle", data["outputs"], data.get("metrics") or {}, \
                self._face_model.manifest.crop
        else:
            raise DataError(f"{path}: neither a bundle (manifest.yaml) nor a training RUN (run.yaml + model.keras)")
        self.outputs = {o["name"]: o for o in outputs}
        missing = {"age", "gender", "emotion", "ethnicity"} - set(self.outputs)
        if missing:
            raise DataError(f"{path}: not a multitask model (no output(s) {', '.join(sorted(missing))})")
        self.crop_spec = crop if isinstance(crop, CropSpec) else CropSpec.from_dict(crop)
        self.cropper = FaceCropper(self.crop_spec, pad=DETECT_PAD)
        held = metrics.get("heldout_int8") if self.kind == "bundle" else None
        held = held or metrics.get("heldout") or {}
        self.age_mae = float(held.get("age_mae") or 6.0)
        self.groups = list(self.outputs["age"].get("groups") or [])

    def raw(self, crops_rgb: np.ndarray) -> dict[str, np.ndarray]:
        """Return {head: N x K} raw outputs for uint8 RGB crops of the model's size."""
        if self.kind == "run":
            from trainer.multitask.report import keras_outputs
            from trainer.tasks.multitask import run_views

            return keras_outputs(self._model, np.asarray(crops_rgb), 128, run_views(self._run))
        from trainer.bundle_eval import face_model_outputs

        return face_model_outputs(self._face_model, np.asarray(crops_rgb))

    def _age_group(self, age: float) -> tuple[str, float]:
        for g in self.groups:
            lo, hi = float(g["min"]), float(g["max"]) if "max" in g else math.inf
            if lo <= age < hi or (g is self.groups[0] and age < lo):
                p = _laplace_cdf(hi - age, self.age_mae) - _laplace_cdf(lo - age, self.age_mae)
                return str(g["label"]), p
        return "", 0.0

    def interpret(self, raw: dict[str, np.ndarray], i: int) -> dict[str, Any]:
        """Return the result dict of face ``i`` of :meth:`raw` outputs (see module doc)."""
        age = float(raw["age"][i, 0])
        group, p_group = self._age_group(age)
        gspec = self.outputs["gender"]
        p_label = float(raw["gender"][i, 0])
        label = gspec["labels"][0]
        other = "male" if label == "female" else "female"
        th = float((gspec.get("thresholds") or [0.5])[0])
        result: dict[str, Any] = {
            "age": {"value": round(age, 1), "confidence": round(1.0 - math.exp(-AGE_TOLERANCE / self.age_mae), 3)},
            "age_group": {"label": group, "confidence": round(p_group, 3)},
            "gender": {"label": label if p_label >= th else other,
                       "confidence": round(p_label if p_label >= th else 1.0 - p_label, 3)},
        }
        for head in ("emotion", "ethnicity"):
            probs = raw[head][i]
            k = int(np.argmax(probs))
            result[head] = {"label": self.outputs[head]["labels"][k], "confidence": round(float(probs[k]), 3)}
        return result

    def predict_crops(self, crops_rgb: np.ndarray) -> list[dict[str, Any]]:
        """Return one result dict per uint8 RGB face crop (already cropped like the device)."""
        raw = self.raw(crops_rgb)
        return [self.interpret(raw, i) for i in range(len(crops_rgb))]

    def crop(self, image: Image) -> tuple[np.ndarray, bool]:
        """Return (RGB crop of the largest face, whether Haar found it) of an image path or BGR array."""
        bgr = read_image(image) if isinstance(image, (str, Path)) else image
        if bgr is None or getattr(bgr, "size", 0) == 0:
            raise DataError(f"{image}: missing or not a readable image")
        return self.cropper.crop(bgr)

    def predict(self, image: Image) -> dict[str, Any]:
        """Return the result dict for the largest face of an image path or BGR uint8 array."""
        crop, found = self.crop(image)
        result = self.predict_crops(crop[None])[0]
        result["face_detected"] = bool(found)
        return result


@lru_cache(maxsize=4)
def _predictor(source: str) -> MultitaskPredictor:
    return MultitaskPredictor(source)


def predict(image: Image, model: Union[str, Path, None] = None) -> dict[str, Any]:
    """Return {"age", "age_group", "gender", "emotion", "ethnicity" (each with a confidence), "face_detected"}.

    ``model`` is a bundle or RUN folder (default: the shipped models/multitask bundle).
    """
    return _predictor(str(model or DEFAULT_BUNDLE)).predict(image)


CSV_COLUMNS = ("age", "age_group", "gender", "emotion", "ethnicity")


def predict_files(paths: list[Path], model: Union[str, Path]) -> tuple[list[str], list[list[Any]]]:
    """Return (CSV header, one row per image: image, face_detected, then label and confidence per head)."""
    predictor = _predictor(str(model))
    crops, found = [], []
    for path in paths:
        crop, detected = predictor.crop(path)
        crops.append(crop)
        found.append(detected)
    results = predictor.predict_crops(np.stack(crops)) if crops else []
    header = ["image", "face_detected"]
    for head in CSV_COLUMNS:
        header += [head, f"{head}_confidence"]
    rows = []
    for path, detected, res in zip(paths, found, results):
        row: list[Any] = [str(path), int(detected)]
        for head in CSV_COLUMNS:
            value = res[head].get("value", res[head].get("label"))
            row += [value, res[head]["confidence"]]
        rows.append(row)
    return header, rows


def predict_command(args: Any) -> int:
    """``face-train predict RUN|BUNDLE IMAGES... [--csv out.csv]`` for multitask models; returns the exit code."""
    import csv
    import sys

    from trainer.commands.predict import expand_images

    paths = expand_images(args.images)
    header, rows = predict_files(paths, args.run)
    out = open(args.csv, "w", newline="") if args.csv else sys.stdout
    try:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)
    finally:
        if args.csv:
            out.close()
    if args.csv:
        print(f"wrote {len(rows)} rows to {args.csv}")
    return 0
