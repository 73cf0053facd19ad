"""The recognition section of a model card (RUN/eval/card.md), written from eval/metrics.json."""
from __future__ import annotations

from typing import Any, Mapping, Optional

NAMES = {"student_int8": "this model, int8 (FaceModel)", "student_float": "this model, float (Keras)",
         "dlib": "dlib ResNet (face_recognition), baseline"}
FLOOR = 0.95


def _row(name: str, m: Mapping[str, Any]) -> str:
    ver = m["verification"]
    ident = [f"{m[k]['accuracy']:.3f}" if k in m else "-" for k in ("identification_wild", "identification_orl")]
    return (f"| {NAMES.get(name, name)} | {ver['accuracy']:.3f} ± {ver['accuracy_std']:.3f} | {ver['auc']:.3f} | "
            f"{ver['tar_at_far']['0.001']:.3f} | {ver['threshold']:.3f} | {ident[0]} | {ident[1]} |")


def recognition_card(metrics: Mapping[str, Any], run_name: str, train_sources: Mapping[str, int],
                     speed_ms: Optional[Mapping[str, float]] = None) -> str:
    """Return the markdown of the held-out recognition figures (verification, identification, distortions)."""
    held = metrics["heldout"]
    students = [n for n in ("student_int8", "student_float") if n in held]
    lines = [
        "## Recognition figures (held-out celeba_wild people, LFW protocol)", "",
        f"{held['people']} celeba_wild people never seen in training (nor their aligned CelebA photos); "
        f"{held['images']} photos where Haar finds the face ({held['images_without_haar_face_left_out']} without a "
        f"Haar face left out); {held['pairs']} pairs in 10 person-disjoint folds (`{run_name}/eval/heldout_pairs.txt`, "
        "official pairs.txt format); each fold's threshold chosen on the other 9 folds.", "",
        "| embedder | verification acc (± fold std) | AUC | TAR @ FAR 1e-3 | threshold (cosine dist.) | "
        "identification, wild (3 enrolled) | identification, ORL (40 people, 3 enrolled) |",
        "|---|---|---|---|---|---|---|",
        *[_row(n, held[n]) for n in (*students, "dlib") if n in held], ""]
    distorted = [n for n in students if "distorted_probe" in held[n]]
    if distorted:
        kinds = list(held[distorted[0]]["distorted_probe"])
        lines += ["Distorted probes: the same pairs with the right-hand face blurred, darkened, noised, fogged or "
                  "partly occluded (`trainer.distort`, severity 0.5-1, seeded); verification accuracy:", "",
                  "| embedder | clean | " + " | ".join(kinds) + " |", "|---" * (len(kinds) + 2) + "|"]
        for n in distorted:
            d = held[n]["distorted_probe"]
            lines.append(f"| {NAMES[n]} | {held[n]['verification']['accuracy']:.3f} | "
                         + " | ".join(f"{d[k]:.3f}" for k in kinds) + " |")
        lines.append("")
    if speed_ms:
        lines += ["Time per face measured during this evaluation (1 thread, shared CPU; "
                  "`python benchmarks/bench_recognition.py` times it beside the dlib encoder on the same faces): "
                  + ", ".join(f"{k} {v:.2f} ms" for k, v in speed_ms.items()) + ".", ""]
    head = held.get("student_int8") or held.get(students[0]) if students else None
    if head is not None:
        acc = head["verification"]["accuracy"]
        verdict = "met" if acc >= FLOOR else "NOT met"
        lines += [f"**The issue's floor (verification >= {FLOOR} int8 on held-out celeba_wild pairs) is {verdict}: "
                  f"{acc:.3f}.** The dlib teacher itself reaches {held['dlib']['verification']['accuracy']:.3f} on "
                  "these small in-the-wild faces." if "dlib" in held else
                  f"**Verification floor {FLOOR}: {verdict} ({acc:.3f}).**",
                  f"Distilled from {sum(train_sources.values())} faces ({dict(train_sources)}).", ""]
    return "\n".join(lines)
