"""Face verification (LFW protocol) and closed-set identification metrics and plots.

Verification: cosine distance per pair; per fold, the threshold is the one that maximises
accuracy on the *other* folds and the fold's accuracy is measured with it (LFW "unrestricted"
evaluation). ROC, AUC and TAR at a fixed FAR come from scikit-learn over all pairs.
Identification: each probe takes the identity of the nearest enrolled template (mean of the
person's enrolled, L2-normalised embeddings) by cosine distance.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Return the rows of ``x`` scaled to unit L2 norm (zero rows stay zero)."""
    x = np.asarray(x, np.float32)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return 1 - cos(a_i, b_i) for each row pair (0 = same direction, 2 = opposite)."""
    return 1.0 - np.sum(l2_normalise(a) * l2_normalise(b), axis=-1)


def best_threshold(dist: np.ndarray, same: np.ndarray) -> float:
    """Return the distance threshold (same if dist <= t) with the highest accuracy on these pairs."""
    order = np.sort(np.unique(dist))
    candidates = np.concatenate([[order[0] - 1e-6], (order[:-1] + order[1:]) / 2, [order[-1] + 1e-6]])
    same = same.astype(bool)
    # Accuracy for every candidate at once: positives at or below t + negatives above t.
    pos = np.sort(dist[same])
    neg = np.sort(dist[~same])
    tp = np.searchsorted(pos, candidates, side="right")
    tn = len(neg) - np.searchsorted(neg, candidates, side="right")
    acc = (tp + tn) / len(dist)
    return float(candidates[int(np.argmax(acc))])


@dataclass
class VerificationResult:
    """10-fold verification figures for one embedder on one set of pairs."""

    accuracy: float
    accuracy_std: float
    fold_accuracy: list[float]
    fold_threshold: list[float]
    threshold: float
    auc: float
    tar_at_far: dict[str, float]
    pairs: int
    fpr: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    tpr: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))

    def to_dict(self) -> dict:
        """Return the figures as plain numbers (for run.yaml / metrics.json / manifests)."""
        return {"accuracy": round(self.accuracy, 4), "accuracy_std": round(self.accuracy_std, 4),
                "fold_accuracy": [round(a, 4) for a in self.fold_accuracy],
                "threshold": round(self.threshold, 4),
                "fold_threshold": [round(t, 4) for t in self.fold_threshold],
                "auc": round(self.auc, 4), "tar_at_far": {k: round(v, 4) for k, v in self.tar_at_far.items()},
                "pairs": self.pairs}


def tar_at_far(fpr: np.ndarray, tpr: np.ndarray, far: float) -> float:
    """Return the highest true-accept rate whose false-accept rate is at most ``far``."""
    ok = fpr <= far
    return float(tpr[ok].max()) if ok.any() else 0.0


def verify(dist: np.ndarray, same: np.ndarray, folds: np.ndarray,
           fars: Sequence[float] = (1e-3, 1e-2)) -> VerificationResult:
    """Return the VerificationResult for pair distances, same-person flags and fold numbers.

    ``threshold`` is the accuracy-optimal threshold on all pairs (the value to ship); each fold's
    accuracy uses the threshold tuned on the other folds. With M mismatched pairs, FARs below 1/M
    cannot be resolved: TAR there is the rate at zero false accepts.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    dist = np.asarray(dist, np.float64)
    same = np.asarray(same, bool)
    folds = np.asarray(folds)
    accs, thrs = [], []
    for f in np.unique(folds):
        test = folds == f
        t = best_threshold(dist[~test], same[~test])
        accs.append(float(np.mean((dist[test] <= t) == same[test])))
        thrs.append(t)
    fpr, tpr, _ = roc_curve(same, -dist)
    return VerificationResult(
        accuracy=float(np.mean(accs)), accuracy_std=float(np.std(accs)), fold_accuracy=accs,
        fold_threshold=thrs, threshold=best_threshold(dist, same), auc=float(roc_auc_score(same, -dist)),
        tar_at_far={f"{far:g}": tar_at_far(fpr, tpr, far) for far in fars}, pairs=int(len(dist)),
        fpr=fpr, tpr=tpr)


def plot_roc(results: Mapping[str, VerificationResult], path: str | Path, title: str = "Verification ROC") -> Path:
    """Write a ROC PNG (log FAR axis) with one curve per named result; return the path."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for name, res in results.items():
        fpr = np.maximum(res.fpr, 1e-4)
        ax.plot(fpr, res.tpr, label=f"{name} (acc {res.accuracy:.3f}, AUC {res.auc:.3f})")
    ax.set_xscale("log")
    ax.set_xlim(1e-3, 1.0)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@dataclass
class IdentificationResult:
    """Closed-set identification: accuracy, the confusion matrix and identity names."""

    accuracy: float
    probes: int
    people: list[str]
    confusion: np.ndarray = field(repr=False)
    predicted: np.ndarray = field(repr=False)

    def to_dict(self) -> dict:
        """Return the headline figures as plain numbers."""
        return {"accuracy": round(self.accuracy, 4), "probes": self.probes, "people": len(self.people)}


def identify(enroll: np.ndarray, enroll_ids: Sequence[str], probes: np.ndarray,
             probe_ids: Sequence[str]) -> IdentificationResult:
    """Return the IdentificationResult of probes matched to per-person mean templates of ``enroll``."""
    from sklearn.metrics import confusion_matrix

    people = sorted(set(enroll_ids))
    enroll = l2_normalise(enroll)
    ids = np.asarray(enroll_ids)
    templates = l2_normalise(np.stack([enroll[ids == p].mean(axis=0) for p in people]))
    dist = 1.0 - l2_normalise(probes) @ templates.T
    predicted = np.asarray(people)[np.argmin(dist, axis=1)]
    truth = np.asarray(probe_ids)
    return IdentificationResult(accuracy=float(np.mean(predicted == truth)), probes=len(truth), people=people,
                                confusion=confusion_matrix(truth, predicted, labels=people), predicted=predicted)


def plot_confusion(result: IdentificationResult, path: str | Path, title: str = "Identification") -> Path:
    """Write the confusion matrix of an identification as a PNG; return the path."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(result.people)
    fig, ax = plt.subplots(figsize=(max(4, n * 0.18 + 2), max(4, n * 0.18 + 1.5)))
    ax.imshow(result.confusion, cmap="Blues")
    ticks = np.arange(n)
    ax.set_xticks(ticks, result.people, rotation=90, fontsize=max(4, 9 - n // 10))
    ax.set_yticks(ticks, result.people, fontsize=max(4, 9 - n // 10))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}: accuracy {result.accuracy:.3f} on {result.probes} probes")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
