"""What the multi-task model outputs: head kinds, labels, age groups, and the manifest output blocks."""
from __future__ import annotations

from typing import Any

from trainer.data.fer import EMOTIONS
from trainer.data.utkface import ETHNICITIES

HEADS = ("age", "gender", "emotion", "ethnicity")
KINDS = {"age": "regression", "gender": "sigmoid", "emotion": "softmax", "ethnicity": "softmax"}
# The gender head is ONE sigmoid unit: p(female). UTKFace codes 1 = female, 0 = male.
GENDER_LABELS = ("female",)
# Age groups are half-open: min <= age < max; the last group has no max.
AGE_GROUPS: tuple[dict[str, Any], ...] = tuple(
    [{"label": "0-2", "min": 0, "max": 3}, {"label": "3-9", "min": 3, "max": 10}]
    + [{"label": f"{lo}-{lo + 9}", "min": lo, "max": lo + 10} for lo in range(10, 70, 10)]
    + [{"label": "70+", "min": 70}])


def output_specs(gender_threshold: float = 0.5) -> list[dict[str, Any]]:
    """Return the manifest ``outputs`` of the model (tensor = Keras output name = head name)."""
    return [
        {"name": "age", "kind": "regression", "tensor": "age", "unit": "years", "groups": [dict(g) for g in AGE_GROUPS]},
        {"name": "gender", "kind": "sigmoid", "tensor": "gender", "labels": list(GENDER_LABELS),
         "thresholds": [float(gender_threshold)]},
        {"name": "emotion", "kind": "softmax", "tensor": "emotion", "labels": list(EMOTIONS)},
        {"name": "ethnicity", "kind": "softmax", "tensor": "ethnicity", "labels": list(ETHNICITIES)},
    ]
