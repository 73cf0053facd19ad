"""Distortion-aware routing: is "classify the face's distortion, then pick the recogniser" worth it?

Three ways to embed each face of the held-out celeba_wild pairs are compared, on clean probes
and on probes blurred, darkened, noised, fogged or occluded (:mod:`trainer.distort`; the left
face of each pair, the enrolled photo, stays clean):

- ``clean``:  the clean-trained recogniser for every face;
- ``robust``: the recogniser fine-tuned on distorted faces for every face;
- ``routed``: the distortion classifier looks at each face (enrolled and probe alike) and a
  face it calls clean goes to the clean recogniser, any other to the robust one.

Both recognisers are distilled to the same teacher space, which is what lets a routed probe be
compared with a gallery embedded by the other recogniser. Routing is kept only when its mean
pair accuracy over all conditions beats both single recognisers by ``min_gain``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

Embed = Callable[[np.ndarray], np.ndarray]


@dataclass
class RoutingResult:
    """Pair accuracy per strategy and condition, the classifier's routing accuracy, the verdict."""

    accuracy: dict[str, dict[str, float]]   # strategy -> condition -> 10-fold accuracy
    routed_correctly: dict[str, float]      # condition -> fraction of probes sent to the fitting recogniser
    keep_routing: bool
    reason: str

    def mean(self, strategy: str) -> float:
        """Return the strategy's accuracy averaged over every condition."""
        values = list(self.accuracy[strategy].values())
        return float(np.mean(values)) if values else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return the figures as plain numbers (for metrics.json and the model card)."""
        return {"accuracy": self.accuracy, "mean": {s: round(self.mean(s), 4) for s in self.accuracy},
                "routed_correctly": self.routed_correctly, "keep_routing": self.keep_routing,
                "reason": self.reason}

    def markdown(self) -> str:
        """Return the result as a Markdown table (conditions as columns) plus the verdict."""
        conditions = list(next(iter(self.accuracy.values())))
        lines = ["| recogniser | " + " | ".join(conditions) + " | mean |",
                 "|---|" + "---:|" * (len(conditions) + 1)]
        for strategy, row in self.accuracy.items():
            lines.append(f"| {strategy} | " + " | ".join(f"{row[c]:.3f}" for c in conditions)
                         + f" | {self.mean(strategy):.3f} |")
        lines.append("| routed to the fitting recogniser | "
                     + " | ".join(f"{self.routed_correctly[c]:.2f}" for c in conditions) + " | |")
        return "\n".join(lines) + f"\n\nRouting {'kept' if self.keep_routing else 'not kept'}: {self.reason}\n"


def evaluate_routing(crops: np.ndarray, left: np.ndarray, right: np.ndarray, same: np.ndarray, folds: np.ndarray,
                     clean: Embed, robust: Embed, is_clean: Callable[[np.ndarray], np.ndarray],
                     min_gain: float = 0.005, seed: int = 1729) -> RoutingResult:
    """Return the RoutingResult of the pairs (``left``/``right`` index ``crops``; ``same``, ``folds`` per pair).

    ``clean`` and ``robust`` map uint8 RGB crops to embeddings; ``is_clean`` maps crops to a
    bool per crop (the distortion classifier's verdict).
    """
    from trainer.distort import every_kind
    from trainer.evaluate.verification import cosine_distance, verify

    def accuracy(a: np.ndarray, b: np.ndarray) -> float:
        return round(float(verify(cosine_distance(a[left], b[right]), same, folds).accuracy), 4)

    gallery = {"clean": clean(crops), "robust": robust(crops)}
    gallery_clean = is_clean(crops)
    gallery["routed"] = np.where(gallery_clean[:, None], gallery["clean"], gallery["robust"])
    table: dict[str, dict[str, float]] = {"clean": {}, "robust": {}, "routed": {}}
    routed_ok: dict[str, float] = {}
    for condition, probes in every_kind(crops, seed).items():
        vec = {"clean": clean(probes) if condition != "clean" else gallery["clean"],
               "robust": robust(probes) if condition != "clean" else gallery["robust"]}
        probe_clean = is_clean(probes) if condition != "clean" else gallery_clean
        vec["routed"] = np.where(probe_clean[:, None], vec["clean"], vec["robust"])
        for strategy in table:
            table[strategy][condition] = accuracy(gallery[strategy], vec[strategy])
        fits = probe_clean if condition == "clean" else ~probe_clean
        routed_ok[condition] = round(float(fits[right].mean()), 4)
    means = {s: float(np.mean(list(row.values()))) for s, row in table.items()}
    best_single = max(means["clean"], means["robust"])
    keep = means["routed"] >= best_single + min_gain
    single = "clean" if means["clean"] >= means["robust"] else "robust"
    reason = (f"mean pair accuracy routed {means['routed']:.3f} vs clean {means['clean']:.3f} and robust "
              f"{means['robust']:.3f} (needs +{min_gain:g} over the best single recogniser, {single})")
    return RoutingResult(table, routed_ok, keep, reason)


def clean_mask(probabilities: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """Return True per row whose most likely distortion label is "clean"."""
    return np.asarray(probabilities).argmax(axis=1) == list(labels).index("clean")
