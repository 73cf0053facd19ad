"""One model output of one face -> what a person reads: a Python dict, and the CSV columns made from it.

Every output kind of a manifest has one shape (the same for a bundle and a training run):

- softmax ``H``: ``{"label", "confidence", "probabilities": {class: p}}``; the label is the most
  probable class and ``confidence`` its probability. CSV: ``H``, ``H_confidence``, ``H_<class>_p``.
- one-label sigmoid ``H`` (a two-class choice such as p(female)): the label is the device's
  decision at the manifest threshold ``t``. The model's score ``s`` is turned into the two classes'
  probabilities re-centred on that threshold, ``q = sigmoid(logit(s) - logit(t))``: tuning ``t`` on
  validation says the score's odds are off by ``t / (1 - t)`` (a prior shift), and ``q`` corrects
  them, so ``q >= 0.5`` exactly when the device says yes and ``confidence`` (the chosen class's
  ``q``) is at least 0.5. CSV: ``H``, ``H_confidence``, ``H_<class>_p`` for both classes, ``H_score``
  (the raw sigmoid output).
- multi-label sigmoid (attributes): ``{"present", "shown", "scores", "thresholds"}``: the labels at or
  over their threshold, those of them the device shows (not marked unreliable), and each label's
  sigmoid score. CSV: ``H`` (the shown labels, ``;``-separated), ``<label>_score``, ``<label>`` (1/0).
- regression ``H``: ``{"value", "unit", "group"}`` (group from the manifest's groups, e.g. age
  31.4 -> 30-39). There is no confidence: the model gives one number. CSV: ``H``, ``H_group``.
- embedding ``H``: ``{"vector", "digest"}``: the unit vector as the device matches it, and the first
  12 hex digits of the SHA-1 of its components rounded to 3 decimals (the same face through the
  same model gives the same digest). CSV: ``H_digest``, with ``vectors`` also ``H_000``, ``H_001``...
- landmarks: ``{"points": [[x, y], ...]}`` in image pixels. CSV: ``landmarks_x0``, ``landmarks_y0``...
"""
from __future__ import annotations

import hashlib
import math
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from edge.bundle import OutputSpec
from edge.models import HeadResult
from edge.overlay import groups_of, value_group

DIGITS = 4            # probabilities and scores in the CSV
DIGEST_DECIMALS = 3   # embedding components rounded before hashing


def recentred(score: float, threshold: float) -> float:
    """Return ``sigmoid(logit(score) - logit(threshold))``: the score's probability with its decision
    threshold moved to 0.5 (equal to ``score`` when the threshold is 0.5)."""
    s = min(max(float(score), 1e-7), 1.0 - 1e-7)
    t = min(max(float(threshold), 1e-7), 1.0 - 1e-7)
    z = math.log(s / (1.0 - s)) - math.log(t / (1.0 - t))
    return 1.0 / (1.0 + math.exp(-z))


def digest(vector: np.ndarray) -> str:
    """Return the first 12 hex digits of the SHA-1 of ``vector`` rounded to DIGEST_DECIMALS (negative zero as zero)."""
    rounded = np.round(np.asarray(vector, np.float64), DIGEST_DECIMALS) + 0.0
    return hashlib.sha1(rounded.astype(np.float32).tobytes()).hexdigest()[:12]


def describe(spec: OutputSpec, head: HeadResult) -> dict[str, Any]:
    """Return the dict of one output (see the module doc for each kind's keys)."""
    if spec.kind == "softmax":
        label, p = head.top()
        return {"label": label, "confidence": p, "probabilities": dict(head.scores)}
    if spec.kind == "sigmoid" and len(spec.labels) == 1:
        positive, negative = spec.labels[0], spec.negative()
        score, threshold = head.scores[positive], spec.threshold(positive)
        q = recentred(score, threshold)
        label = positive if score >= threshold else negative
        return {"label": label, "confidence": q if label == positive else 1.0 - q,
                "probabilities": {positive: q, negative: 1.0 - q}, "score": score, "threshold": threshold}
    if spec.kind == "sigmoid":
        present = [label for label, s in head.scores.items() if s >= spec.threshold(label)]
        return {"present": present, "shown": [label for label in present if label not in spec.unreliable],
                "scores": dict(head.scores), "thresholds": {label: spec.threshold(label) for label in spec.labels}}
    if spec.kind == "regression":
        groups = groups_of(spec)
        return {"value": head.value, "unit": spec.unit,
                "group": value_group(head.value, groups) if groups and head.value is not None else None}
    if spec.kind == "landmarks":
        return {"points": None if head.points is None else head.points.tolist()}
    vector = np.asarray(head.vector, np.float32)
    return {"vector": vector.tolist(), "digest": digest(vector)}


def points_dict(points: Optional[np.ndarray]) -> dict[str, Any]:
    """Return ``{"points": [[x, y], ...]}`` for image-pixel landmarks (None stays None)."""
    return {"points": None if points is None else np.asarray(points, np.float64).tolist()}


def header(specs: Sequence[OutputSpec]) -> list[str]:
    """Return the CSV columns a model's outputs always have, in order (embedding components and
    landmark points, whose number the manifest does not record, follow from the rows)."""
    names: list[str] = []
    for spec in specs:
        h = spec.name
        if spec.kind == "softmax":
            names += [h, f"{h}_confidence"] + [f"{h}_{label}_p" for label in spec.labels]
        elif spec.kind == "sigmoid" and len(spec.labels) == 1:
            names += [h, f"{h}_confidence", f"{h}_{spec.labels[0]}_p", f"{h}_{spec.negative()}_p", f"{h}_score"]
        elif spec.kind == "sigmoid":
            names.append(h)
            for label in spec.labels:
                names += [f"{label}_score", label]
        elif spec.kind == "regression":
            names += [h] + ([f"{h}_group"] if groups_of(spec) else [])
        elif spec.kind == "embedding":
            names.append(f"{h}_digest")
    return names


def columns(spec: OutputSpec, described: Mapping[str, Any], vectors: bool = False) -> dict[str, Any]:
    """Return {CSV column: value} of one output's :func:`describe` dict (probabilities rounded to DIGITS)."""
    h = spec.name
    if spec.kind == "softmax":
        row = {h: described["label"], f"{h}_confidence": round(described["confidence"], DIGITS)}
        row.update({f"{h}_{label}_p": round(p, DIGITS) for label, p in described["probabilities"].items()})
        return row
    if spec.kind == "sigmoid" and len(spec.labels) == 1:
        row = {h: described["label"], f"{h}_confidence": round(described["confidence"], DIGITS)}
        row.update({f"{h}_{label}_p": round(p, DIGITS) for label, p in described["probabilities"].items()})
        row[f"{h}_score"] = round(described["score"], DIGITS)
        return row
    if spec.kind == "sigmoid":
        row = {h: ";".join(described["shown"])}
        for label, s in described["scores"].items():
            row[f"{label}_score"] = round(s, DIGITS)
            row[label] = int(label in described["present"])
        return row
    if spec.kind == "regression":
        row = {h: None if described["value"] is None else round(described["value"], 2)}
        if described.get("group") is not None:
            row[f"{h}_group"] = described["group"]
        return row
    if spec.kind == "landmarks":
        return point_columns(described["points"])
    row = {f"{h}_digest": described["digest"]}
    if vectors:
        row.update({f"{h}_{i:03d}": round(v, 6) for i, v in enumerate(described["vector"])})
    return row


def point_columns(points: Optional[Sequence[Sequence[float]]]) -> dict[str, Any]:
    """Return {landmarks_x0: ..., landmarks_y0: ..., ...} of image-pixel points (rounded to 0.1 px)."""
    row: dict[str, Any] = {}
    for i, (x, y) in enumerate(points or ()):
        row[f"landmarks_x{i}"] = round(float(x), 1)
        row[f"landmarks_y{i}"] = round(float(y), 1)
    return row
