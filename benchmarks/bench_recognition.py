"""Recognition on held-out people: dlib's own pipeline against the device path of each embedding bundle, one table.

    python benchmarks/bench_recognition.py [--bundle models/embedding] [--landmarks models/landmarks]
        [--run runs/embedding] [--student DIR] [--json out.json]

Every system sees the same photos of the held-out celeba_wild people (the shipped bundle's
``data.holdout_people``) in the same run (trainer.evaluate.recognition_device):

- dlib: face_recognition's pipeline (HOG detector, 5-point shape predictor, ResNet, Euclidean 0.6);
- the shipped bundle through edge (Haar, the landmarks bundle, aligned chip, int8 model, 1 thread);
- with ``--run``: the same port converted to float32 and float16 (converted into a temporary folder);
- with ``--student``: an earlier MobileNet student bundle (box crop), for comparison.

Columns: verification accuracy on LFW-format pairs (all pairs, a missing face = "different";
and the pairs where every system found both faces), TAR at FAR 1e-2, the open-set rates
(15 people enrolled with 3 photos), median ms per face for landmarks + descriptor on this machine,
and, for the device bundles, a Pi 4 estimate from the multiply-accumulate count.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data"


def convert(run: Path, mode: str, folder: Path, landmarks: Path) -> Path:
    """Return a bundle of ``run`` converted to ``mode`` in ``folder`` (no mode comparison)."""
    from converters.convert import convert_run

    return convert_run(run, folder / f"embedding-{mode}", quant=mode, compare_modes=False, landmarks=landmarks)


def main() -> int:
    """Measure every system; print the table (and write --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=REPO / "models" / "embedding")
    parser.add_argument("--landmarks", type=Path, default=REPO / "models" / "landmarks")
    parser.add_argument("--run", type=Path, default=None, help="the port's RUN folder: adds float32 and float16")
    parser.add_argument("--student", type=Path, default=None, help="an earlier student embedding bundle")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from edge.bundle import load_bundle
    from trainer.evaluate.recognition_device import System, compare, device_system, heldout_photos

    manifest = load_bundle(args.bundle).manifest
    photos = heldout_photos(args.data, manifest.extra["data"]["holdout_people"])
    quant = manifest.extra.get("quantization", {}).get("mode", "int8")
    systems = [System("dlib", euclidean=True),
               device_system(f"port {quant} (shipped)", args.bundle, args.landmarks, args.threads)]
    with tempfile.TemporaryDirectory() as tmp:
        if args.run:
            for mode in ("float32", "float16"):
                systems.append(device_system(f"port {mode}", convert(args.run, mode, Path(tmp), args.landmarks),
                                             args.landmarks, args.threads))
        if args.student:
            systems.append(device_system("old student int8", args.student, None, args.threads))
        figures = compare(systems, photos)
    ver, open_set, speed = figures["verification"], figures["open_set"], figures["speed"]
    print(f"\n{figures['people']} held-out people, {figures['photos']} photos, {ver['pairs']} pairs "
          f"({ver['common_pairs']} where every system found both faces); open set: "
          f"{len(open_set['enrolled_people'])} enrolled x 3 photos, {len(open_set['stranger_people'])} strangers\n")
    header = ("| system | faces found | pair accuracy (all) | pair accuracy (common) | TAR@FAR1e-2 | strangers named "
              "| enrolled named right | ms/face here | x faster than dlib | Pi 4 estimate ms |")
    print(header)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in systems:
        v, o, t = ver[s.name], open_set[s.name], speed[s.name]
        print(f"| {s.name} | {figures['faces_found'][s.name]} | {v['all_pairs']['accuracy']:.3f} | "
              f"{v['common_pairs']['accuracy']:.3f} | {v['common_pairs']['tar_at_far']['0.01']:.3f} | "
              f"{o['strangers_named']:.3f} | {o['enrolled_named_correctly']:.3f} | {t['ms_per_face']:.1f} | "
              f"{t.get('faster_than_dlib', 1.0):.1f} | {t.get('pi4_estimate_ms', float('nan')):.0f} |")
    print(f"\nPi 4 estimate: {speed['pi4_assumption']}.")
    for name, lm in figures.get("landmarks_vs_dlib", {}).items():
        print(f"landmarks of {name} against dlib's: NME {lm['nme_percent']}% on {lm['faces']} faces")
    for name, w in figures["enrollment_warnings"].items():
        print(f"enrollment warnings of {name}: {w['right_warnings']} right of {w['warnings']} "
              f"(precision {w['precision']}, recall {w['recall']} over {w['misfiled_photos']} mis-filed photos)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
