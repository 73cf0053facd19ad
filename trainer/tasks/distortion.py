"""Distortion task: a small classifier that tells a clean face crop from a blurred, dark, noisy, foggy or occluded one.

``face-train fit distortion --out runs/distortion`` takes the recogniser's own face crops
(:data:`trainer.tasks.recognition.CROP`, so the device computes one crop for both models) of
CelebA, UTKFace and the training celeba_wild people, distorts copies of them with
:mod:`trainer.distort` (label drawn uniformly from clean + the five distortions, severity
U(0.5, 1)) and trains a small CNN from scratch (no ImageNet weights exist for it; low-level
cues such as blur and noise do not need them). Validation and test faces are the recogniser's
validation and held-out celeba_wild people, so the classifier is measured on the very faces
the routing evaluation uses. Output: ``distortion`` softmax over ``trainer.distort.LABELS``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..distribute import add_device_arguments
from ..run import Run, command_line, input_spec, update_run, write_run
from .recognition import CROP, DATA_ROOT, load_table, split_wild

NAME = "distortion"
MANIFEST_TASK = "distortion"
HEAD = "distortion"


def add_fit_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the distortion classifier's options."""
    parser.add_argument("--out", type=Path, required=True, help="RUN folder to write")
    parser.add_argument("--data", type=Path, default=DATA_ROOT,
                        help="folder holding celeba/, celeba_wild/, utkface/ (default ../shared/data)")
    parser.add_argument("--size", type=int, default=64, help="model input side (the 112 px crop is resized to it)")
    parser.add_argument("--width", type=float, default=1.0, help="filters of the small CNN x this (16..128 at 1.0)")
    parser.add_argument("--copies", type=int, default=2, help="distorted copies of each training face")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--holdout", type=int, default=30, help="celeba_wild people held out (as the recogniser)")
    parser.add_argument("--val", type=int, default=10, help="celeba_wild validation people (as the recogniser)")
    parser.add_argument("--seed", type=int, default=1729)
    parser.add_argument("--limit", type=int, default=0, help="first N faces per data set (tests)")
    add_device_arguments(parser)


def labelled_copies(crops: np.ndarray, copies: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (``copies`` distorted versions of each crop resized to ``size``, label index into LABELS).

    Each copy's label is drawn uniformly from clean + the distortions; the distortion is applied
    at the crop's own size and the result resized with INTER_AREA, as edge.models does.
    """
    from trainer.distort import distort_batch

    rng = np.random.default_rng(seed)
    images, labels = [], []
    for _ in range(copies):
        out, lab = distort_batch(np.asarray(crops), rng)
        images.append(resized(out, size))
        labels.append(lab)
    return np.concatenate(images), np.concatenate(labels).astype(np.int64)


def resized(crops: np.ndarray, size: int) -> np.ndarray:
    """Return uint8 ``crops`` resized to ``size`` x ``size`` with INTER_AREA (the device's resize)."""
    if len(crops) == 0 or crops.shape[1] == size:
        return np.asarray(crops)
    return np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) for c in crops])


def every_distortion(crops: np.ndarray, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (each crop once per label of LABELS, resized to ``size``; label indices): a balanced test set."""
    from trainer.distort import every_kind

    images = [resized(v, size) for v in every_kind(crops, seed).values()]
    return np.concatenate(images), np.repeat(np.arange(len(images)), len(crops)).astype(np.int64)


def build_classifier(size: int, width: float, classes: int) -> Any:
    """Return a small CNN 0..255 RGB -> {"distortion": softmax over ``classes``} (~16 MFLOPs at 64 px, width 1).

    Four 3x3 conv + BatchNorm + ReLU stages (16, 32, 64, 128 filters x ``width``), the first three
    followed by 2x2 max pooling, then global average pooling and a small dense trunk. The first
    conv runs at full resolution: blur and sensor noise live in the finest detail.
    """
    import keras
    from keras import layers

    from trainer import nets

    inp = keras.Input((size, size, 3), name="image")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")(inp)
    for k, filters in enumerate((16, 32, 64, 128)):
        x = layers.Conv2D(max(8, int(filters * width)), 3, padding="same", use_bias=False, name=f"conv{k}")(x)
        x = layers.BatchNormalization(name=f"conv{k}_bn")(x)
        x = layers.ReLU(name=f"conv{k}_relu")(x)
        if k < 3:
            x = layers.MaxPooling2D(name=f"pool{k}")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = nets.dense_trunk(x, 64, 0.2)
    out = layers.Dense(classes, activation="softmax", name=HEAD)(x)
    model = keras.Model(inp, {HEAD: out}, name="distortion_classifier")
    nets.set_bn_momentum(model, 0.9)  # Keras' 0.99 lags far behind a short from-scratch run
    return model


def fit(args: argparse.Namespace) -> Run:
    """Train the distortion classifier and write its RUN folder (with eval/); return the Run."""
    import keras

    from trainer.distort import LABELS

    keras.utils.set_random_seed(args.seed)
    tables = {n: load_table(n, args.data) for n in ("celeba", "utkface", "celeba_wild")}
    if args.limit:
        tables = {n: t.rows(np.arange(len(t.paths)) < args.limit) for n, t in tables.items()}
    wild = tables["celeba_wild"]
    split = split_wild(wild, args.holdout, args.val, args.seed)
    out_people = set(split.holdout) | set(split.val)
    train_crops = np.concatenate([t.rows(np.array([i not in out_people for i in t.identity], bool)).crops
                                  for t in tables.values()])
    val_faces = wild.rows(np.array([i in set(split.val) for i in wild.identity], bool) & wild.detected)
    test_faces = wild.rows(np.array([i in set(split.holdout) for i in wild.identity], bool) & wild.detected)
    x, y = labelled_copies(train_crops, args.copies, args.size, args.seed)
    vx, vy = every_distortion(val_faces.crops, args.size, args.seed + 1)
    print(f"distortion: {len(x)} training copies of {len(train_crops)} faces; val {len(vx)}; "
          f"test people {len(split.holdout)}", flush=True)
    model = build_classifier(args.size, args.width, len(LABELS))
    steps = int(np.ceil(len(x) / args.batch)) * args.epochs
    model.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(args.lr, steps, alpha=0.05)),
                  loss={HEAD: "sparse_categorical_crossentropy"}, metrics={HEAD: ["accuracy"]})
    hist = model.fit(x, {HEAD: y}, validation_data=(vx, {HEAD: vy}), batch_size=args.batch, epochs=args.epochs,
                     shuffle=True, verbose=2,
                     callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", patience=3,
                                                              restore_best_weights=True)])
    tx, ty = every_distortion(test_faces.crops, args.size, args.seed + 2)
    info = {
        "name": "distortion", "task": MANIFEST_TASK, "version": "0.1.0",
        "input": input_spec(args.size), "crop": CROP.to_dict(),
        "outputs": [{"name": HEAD, "kind": "softmax", "tensor": HEAD, "labels": list(LABELS)}],
        "metrics": {},
        "data": {"train_faces": int(len(train_crops)), "sources": {n: len(t.paths) for n, t in tables.items()},
                 "holdout_people": split.holdout, "val_people": split.val, "root": str(args.data),
                 "labels": "synthetic: trainer.distort on the recogniser's crops, one label per copy",
                 "licence": "CelebA and UTKFace: non-commercial research only"},
        "training": {"task": NAME, "backbone": f"4-stage CNN x{args.width:g} from scratch (no ImageNet weights)",
                     "size": args.size, "copies": args.copies, "epochs": args.epochs, "lr": args.lr,
                     "batch": args.batch, "seed": args.seed, "command": command_line()},
        "history": {k: [float(v) for v in vals] for k, vals in hist.history.items()}, "seed": args.seed,
    }
    rng = np.random.default_rng(args.seed)
    sample = rng.choice(len(x), size=min(600, len(x)), replace=False)
    run = write_run(args.out, model, info, x[np.sort(sample)], tx, {HEAD: ty})
    update_run(run, metrics=evaluate(run, argparse.Namespace(bundle=None)))
    return run


def _report(name: str, y: np.ndarray, prob: np.ndarray, labels: list[str], out_dir: Path) -> dict[str, Any]:
    from trainer.evaluate.classification import multiclass_metrics
    from trainer.evaluate.plots import plot_confusion

    m = multiclass_metrics(y, prob, labels)
    plot_confusion(np.asarray(m["confusion"]), labels, out_dir / f"confusion_{name}.png", f"distortion ({name})")
    return {"accuracy": round(m["accuracy"], 4), "balanced_accuracy": round(m["balanced_accuracy"], 4),
            "macro_f1": round(m["macro_f1"], 4),
            "recall": {k: round(1 - v, 4) for k, v in m["class_error"].items() if v is not None},
            "confusion": m["confusion"]}


def evaluate(run: Run, args: argparse.Namespace) -> dict[str, Any]:
    """Score the run (and ``--bundle`` through edge.models.FaceModel) on its held-out faces, each once per
    label; write confusion PNGs and eval/metrics.json; return the metrics."""
    from ..infer import model_outputs

    labels = list(run.output(HEAD)["labels"])
    _, faces, truth = run.samples()
    y = truth[HEAD]
    out_dir = run.eval_dir
    metrics: dict[str, Any] = {"heldout": f"{len(set(run.info['data']['holdout_people']))} held-out celeba_wild "
                                          f"people, {len(faces) // len(labels)} faces x {len(labels)} labels"}
    metrics["float"] = _report("float", y, model_outputs(run.load_model(), faces)[HEAD], labels, out_dir)
    bundle = getattr(args, "bundle", None)
    if bundle:
        from ..bundle_eval import bundle_outputs

        metrics["int8"] = _report("int8", y, bundle_outputs(bundle, faces)[HEAD], labels, out_dir)
    metrics["accuracy"] = metrics.get("int8", metrics["float"])["accuracy"]
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return metrics
