"""Facial attributes: one sigmoid per attribute on a shared trunk (CelebA 40, WFLW 6, class folders).

``face-train fit attributes --data ../shared/data/celeba --out runs/attributes`` reads the data
set in its official layout, crops every face like the device (cached), splits it (official
partition, else identity-disjoint), trains in two stages, tunes per-attribute thresholds on
validation, flags attributes whose validation balanced accuracy is under 0.70, evaluates on
the held-out test split and writes the RUN folder (docs/run-format.md) with RUN/eval/.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edge.crop import CropSpec

from ..errors import DataError
from ..run import Run, command_line, input_spec, write_run
from . import add_common_fit_arguments

NAME = "attributes"
MANIFEST_TASK = "attributes"
HEAD = "attributes"
HEADLINE = ("Male", "Smiling", "Eyeglasses", "Blond_Hair", "Young")
CELEBA_LICENCE = ("CelebA (Liu et al., ICCV 2015, MMLAB CUHK): non-commercial research use only; "
                  "images remain the property of their owners")


@dataclass
class LabelledFaces:
    """A data set reduced to what the attribute task needs: images, N x L 0/1 labels, ids, split."""

    key: str
    layout: str
    root: Path
    paths: list[Path]
    labels: np.ndarray
    label_names: list[str]
    identities: Optional[np.ndarray] = None
    partition: Optional[np.ndarray] = None
    hints: Optional[list] = None
    licence: str = ""
    notes: dict[str, Any] = field(default_factory=dict)

    def head(self, n: int) -> "LabelledFaces":
        """Return the first ``n`` rows (quick runs and tests); all rows when n <= 0."""
        if n <= 0 or n >= len(self.paths):
            return self
        cut = lambda a: None if a is None else a[:n]  # noqa: E731
        return LabelledFaces(self.key, self.layout, self.root, self.paths[:n], self.labels[:n], self.label_names,
                             cut(self.identities), cut(self.partition), cut(self.hints), self.licence, self.notes)


def detect_layout(root: Path) -> str:
    """Return 'celeba', 'wflw' or 'folders' from the files in ``root``; DataError when none fits."""
    if (root / "list_attr_celeba.txt").is_file():
        return "celeba"
    if any(root.rglob("list_98pt_rect_attr_*.txt")):
        return "wflw"
    if root.is_dir() and sum(1 for p in root.iterdir() if p.is_dir()) >= 2:
        return "folders"
    raise DataError(f"{root}: not a CelebA folder (list_attr_celeba.txt), WFLW (list_98pt_rect_attr_*.txt) "
                    "or class-folder data set")


def load_faces(root: str | Path, layout: str = "auto", attributes: str = "all",
               positive: Optional[str] = None, skip_missing: bool = False) -> LabelledFaces:
    """Return the labelled faces of a data set folder in one of the supported official layouts."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"--data {root}: no such folder")
    root = root.resolve()
    layout = detect_layout(root) if layout == "auto" else layout
    if layout == "celeba":
        from ..data.celeba import read_celeba, select_attributes

        data = read_celeba(root, missing="skip" if skip_missing else "error")
        names = select_attributes(data, attributes)
        return LabelledFaces(f"celeba-{root.name}", layout, root, data.paths, data.labels[:, data.columns(names)],
                             names, data.identities, data.partition, licence=CELEBA_LICENCE,
                             notes={"missing_images": len(data.missing)})
    if layout == "wflw":
        from ..data.wflw import read_wflw

        files = sorted(root.rglob("list_98pt_rect_attr_*.txt"))
        parts = []
        for f in files:
            w = read_wflw(f)
            parts.append((w, 2 if "test" in f.name else 0))
        paths = [p for w, _ in parts for p in w.paths]
        labels = np.concatenate([w.labels for w, _ in parts])
        hints = [h for w, _ in parts for h in w.hints]
        names = list(parts[0][0].attributes)
        partition = np.concatenate([np.full(len(w), code, np.int8) for w, code in parts])
        keep_cols = _columns(names, attributes, root)
        return LabelledFaces(f"wflw-{root.name}", layout, root, paths, labels[:, keep_cols],
                             [names[i] for i in keep_cols], None, _val_from_train(partition), hints,
                             licence="WFLW (Wu et al., CVPR 2018): research use")
    if layout == "folders":
        from ..data.class_folders import read_class_folders

        data = read_class_folders(root)
        if positive:
            return LabelledFaces(f"folders-{root.name}", layout, root, data.paths, data.binary(positive),
                                 [positive], licence="see the data set's own licence")
        onehot = np.eye(len(data.classes), dtype=np.int8)[data.labels]
        return LabelledFaces(f"folders-{root.name}", layout, root, data.paths, onehot, list(data.classes),
                             licence="see the data set's own licence")
    raise DataError(f"--layout {layout!r} is not one of auto, celeba, wflw, folders")


def _columns(names: list[str], spec: str, root: Path) -> list[int]:
    if spec in (None, "all"):
        return list(range(len(names)))
    wanted = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [w for w in wanted if w not in names]
    if unknown:
        raise DataError(f"{root}: no attribute named {', '.join(unknown)}; valid: {' '.join(names)}")
    return [names.index(w) for w in wanted]


def _val_from_train(partition: np.ndarray, fraction: float = 0.1, seed: int = 1729) -> np.ndarray:
    """WFLW has train/test files only: move a seeded 10% of train to validation."""
    out = partition.copy()
    train = np.flatnonzero(out == 0)
    rng = np.random.default_rng(seed)
    out[rng.choice(train, size=max(1, int(len(train) * fraction)), replace=False)] = 1
    return out


def face_crops(faces: LabelledFaces, spec: CropSpec, pad: float, cache_dir: Optional[str]) -> tuple[np.ndarray, np.ndarray, dict]:
    """Return (crops memmap/array N x S x S x 3 RGB, ok mask, crop stats) through the device crop (cached)."""
    from ..faces import FaceCropper, cached_face_crops

    crops, ok, stats = cached_face_crops(faces.key, [str(p) for p in faces.paths], FaceCropper(spec, pad=pad),
                                         cache_dir=cache_dir, hints=faces.hints, mmap=True)
    if stats.corrupt:
        print(f"skipped {stats.corrupt} unreadable/corrupt images (first: {stats.corrupt_files[0]})", file=sys.stderr)
    return crops, ok, stats.to_dict()


def make_dataset(crops: np.ndarray, labels: np.ndarray, index: np.ndarray, batch: int, shuffle: bool,
                 augmenter: Any = None, seed: int = 1729) -> Any:
    """Return a tf.data pipeline of (float32 0..255 RGB batch, {HEAD: float32 labels}) over rows ``index``.

    Rows are read from the (memory-mapped) crop cache in index order per batch, so the pipeline
    works for data sets larger than memory; augmentation runs on whole batches in TensorFlow.
    """
    import tensorflow as tf

    size = crops.shape[1]
    n_labels = labels.shape[1]

    def take(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = np.sort(rows)
        return np.asarray(crops[rows], np.float32), labels[rows].astype(np.float32)

    ds = tf.data.Dataset.from_tensor_slices(np.asarray(index, np.int64))
    if shuffle:
        ds = ds.shuffle(len(index), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch)
    ds = ds.map(lambda rows: tf.numpy_function(take, [rows], (tf.float32, tf.float32)),
                num_parallel_calls=2, deterministic=not shuffle)
    ds = ds.map(lambda x, y: (tf.ensure_shape(x, (None, size, size, 3)), tf.ensure_shape(y, (None, n_labels))))
    if augmenter is not None:
        ds = ds.map(lambda x, y: (augmenter(x), y), num_parallel_calls=2)
    return ds.map(lambda x, y: (x, {HEAD: y})).prefetch(2)


def build_model(args: argparse.Namespace, n_labels: int, bias: Optional[list[float]]) -> Any:
    """Return the Keras model: backbone (preprocessing inside) -> pool -> trunk -> sigmoid head ``attributes``."""
    import keras

    from .. import nets

    weights: Optional[str | Path]
    if args.weights == "imagenet":
        weights = nets.default_weights(args.backbone, args.alpha)
    elif args.weights in ("none", "", None):
        weights = None
    else:
        weights = args.weights
    backbone = nets.build_backbone(args.backbone, args.alpha, args.size, weights)
    x = nets.dense_trunk(nets.pooled_features(backbone), args.trunk, args.dropout)
    out = nets.sigmoid_head(x, n_labels, HEAD, bias)
    model = keras.Model(backbone.input, {HEAD: out}, name=f"attributes_{args.backbone}")
    model.weights_origin = (f"ImageNet MobileNetV2 1.0 no-top ({_display(weights)})" if weights == nets.IMAGENET_MOBILENET_V2
                            else _display(weights) if weights else "random initialisation (from scratch)")
    return model


def _display(path: Any) -> str:
    """Return ``path`` relative to the working folder when it lies beside it (../shared/...), else as is."""
    try:
        return os.path.relpath(Path(path).resolve())
    except ValueError:
        return str(path)


def add_fit_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the attribute task's options (common ones plus labels, loss, sampling, head)."""
    add_common_fit_arguments(parser, size=96)
    parser.add_argument("--layout", default="auto", choices=["auto", "celeba", "wflw", "folders"])
    parser.add_argument("--attributes", default="all", help="'all', 'headline' or a comma list of names")
    parser.add_argument("--positive", default=None, help="class folders: the positive class of a binary model")
    parser.add_argument("--loss", default="bce", choices=["bce", "weighted_bce", "corr_bce"])
    parser.add_argument("--corr-lambda", type=float, default=1.0, help="weight of the correlation term (corr_bce)")
    parser.add_argument("--balanced", action="store_true", help="class-balanced sampling of training rows")
    parser.add_argument("--trunk", type=int, default=256, help="units of the shared dense trunk")
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--detect-pad", type=float, default=0.0,
                        help="replicated-border padding per side before Haar (0.25 for tight crops)")
    parser.add_argument("--skip-missing", action="store_true", help="skip listed images that are absent")
    parser.add_argument("--threshold-objective", default="accuracy",
                        choices=["accuracy", "balanced_accuracy", "f1"])
    parser.add_argument("--threshold-min-gain", type=float, default=0.005,
                        help="keep 0.5 unless another threshold gains at least this much validation accuracy")
    parser.add_argument("--train-samples", type=int, default=600, help="representative crops saved for int8")
    parser.add_argument("--no-eval", action="store_true", help="skip the evaluation files after fitting")


def fit(args: argparse.Namespace) -> Run:
    """Train an attribute model on ``args.data`` and write the RUN folder ``args.out``; return the Run."""
    import keras

    from ..augment import build_augmenter, parse_augment_arg
    from ..data.splits import TEST, TRAIN, VAL, choose_split, class_balanced_indices, split_indices
    from ..evaluate.classification import label_correlation, multilabel_report, tune_thresholds
    from ..fit import FitConfig, two_stage_fit
    from ..infer import model_outputs
    from ..losses.attributes import attribute_loss, masked_binary_accuracy, prior_logits
    from ..run import now_utc

    keras.utils.set_random_seed(args.seed)
    out = Path(args.out)
    faces = load_faces(args.data, args.layout, args.attributes, args.positive, args.skip_missing).head(args.limit)
    spec = CropSpec(args.size, args.margin, args.shift_y)
    crops, ok, crop_stats = face_crops(faces, spec, args.detect_pad, args.cache_dir)
    split, split_how = choose_split(faces.partition, faces.identities, len(faces.paths), args.seed)
    split = np.where(ok, split, -1)
    where = str(args.data)
    train_idx, val_idx, test_idx = (split_indices(split, s, where) for s in (TRAIN, VAL, TEST))
    labels = faces.labels.astype(np.int8)
    print(f"{len(faces.paths)} images ({crop_stats['detected']} Haar, {crop_stats['fallback']} aligned-frame "
          f"fallback, {crop_stats['corrupt']} corrupt skipped); split {split_how}: train {len(train_idx)}, "
          f"val {len(val_idx)}, test {len(test_idx)}; {len(faces.label_names)} labels", flush=True)

    fit_idx = class_balanced_indices(labels[train_idx], seed=args.seed) if args.balanced else np.arange(len(train_idx))
    fit_rows = train_idx[fit_idx]
    augment_cfg = parse_augment_arg(args.augment)
    train_ds = make_dataset(crops, labels, fit_rows, args.batch, True, build_augmenter(augment_cfg), args.seed)
    val_ds = make_dataset(crops, labels, val_idx, args.batch, False)
    plain_train = make_dataset(crops, labels, train_idx, args.batch, False)

    model = build_model(args, len(faces.label_names), prior_logits(labels[train_idx]))
    loss = attribute_loss(args.loss, labels[train_idx], args.corr_lambda)

    def compile_model(m: Any, lr: Any) -> None:
        m.compile(optimizer=keras.optimizers.Adam(lr), loss={HEAD: loss},
                  metrics={HEAD: [keras.metrics.MeanMetricWrapper(masked_binary_accuracy, name="acc")]})

    cfg = FitConfig(stage1_epochs=args.stage1_epochs, stage1_lr=args.lr1, stage2_epochs=args.stage2_epochs,
                    stage2_lr=args.lr2, unfreeze_blocks=args.unfreeze, bn_momentum=args.bn_momentum,
                    patience=args.patience, stage1_on_features=args.features_stage1)
    result = two_stage_fit(model, compile_model, train_ds, val_ds, cfg, out / "checkpoints",
                           feature_ds=(plain_train, val_ds), resume=not args.no_resume,
                           verbose=0 if args.quiet else (1 if sys.stdout.isatty() else 2))
    model = result.model

    p_val = model_outputs(model, crops, rows=np.sort(val_idx))[HEAD]
    y_val = labels[np.sort(val_idx)]
    thresholds = tune_thresholds(y_val, p_val, args.threshold_objective, min_gain=args.threshold_min_gain)
    val_report = multilabel_report(y_val, p_val, faces.label_names, thresholds)
    unreliable = val_report["unreliable"]

    rng = np.random.default_rng(args.seed)
    sample_rows = np.sort(rng.choice(train_idx, size=min(args.train_samples, len(train_idx)), replace=False))
    test_rows = np.sort(test_idx)
    name = args.name or NAME
    info = {
        "name": name, "task": MANIFEST_TASK, "version": "1.0.0", "created": now_utc(),
        "input": input_spec(args.size), "crop": spec.to_dict(),
        "outputs": [{"name": HEAD, "kind": "sigmoid", "tensor": HEAD, "labels": faces.label_names,
                     "thresholds": [round(float(t), 3) for t in thresholds], "unreliable": unreliable}],
        "metrics": {"validation": {"n": int(len(val_idx)), "mean_accuracy": val_report["mean_accuracy"],
                                   "mean_balanced_accuracy": val_report["mean_balanced_accuracy"]}},
        "data": {"layout": faces.layout, "path": _display(args.data), "key": faces.key,
                 "images": len(faces.paths), "split": split_how,
                 "counts": {"train": int(len(train_idx)), "val": int(len(val_idx)), "test": int(len(test_idx))},
                 "crops": crop_stats, "detect_pad": args.detect_pad, "licence": faces.licence,
                 "limit": args.limit, **faces.notes},
        "training": {"task": NAME, "command": command_line(), "backbone": args.backbone, "alpha": args.alpha, "input_size": args.size,
                     "weights": model.weights_origin, "loss": args.loss, "corr_lambda": args.corr_lambda,
                     "class_balanced_sampling": bool(args.balanced), "batch": args.batch,
                     "trunk_units": args.trunk, "dropout": args.dropout, "augment": augment_cfg,
                     "threshold_objective": args.threshold_objective,
                     "threshold_min_gain": args.threshold_min_gain, "fit": cfg.to_dict(),
                     "best_epoch": result.best_epoch, "best_val_loss": result.best_value,
                     "epochs_run": len(result.history.get("stage", []))},
        "history": result.history,
        "seed": args.seed,
    }
    run = write_run(out, model, info, np.asarray(crops[sample_rows]), np.asarray(crops[test_rows]),
                    {HEAD: labels[test_rows]})
    run.eval_dir.mkdir(exist_ok=True)
    np.save(run.eval_dir / "train_label_correlation.npy", label_correlation(labels[train_idx]))
    if not args.no_eval:
        from ..run import update_run
        update_run(run, metrics=evaluate(run, argparse.Namespace(data=None, split="test", limit=0, cache_dir=None),
                                         model=model))
    return run


def _heldout(run: Run, args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, str]:
    """Return (faces, labels, description) to evaluate: RUN/samples held-out, or --data's split."""
    from ..data.splits import SPLIT_NAMES, choose_split, split_indices

    names = run.output(HEAD)["labels"]
    if not getattr(args, "data", None):
        _, faces, labels = run.samples()
        desc = f"held-out test split of {run.info.get('data', {}).get('key', 'the training data')} " \
               f"({run.info.get('data', {}).get('split', '')})"
        return faces, labels[HEAD], desc
    data = run.info.get("data") or {}
    lf = load_faces(args.data, "auto", ",".join(names), None, True)
    if lf.label_names != list(names):
        raise DataError(f"--data {args.data}: its labels do not match the run's {len(names)} labels")
    crops, ok, _ = face_crops(lf, run.crop, float(data.get("detect_pad", 0.0)), args.cache_dir)
    split, how = choose_split(lf.partition, lf.identities, len(lf.paths), int(run.info.get("seed", 1729)))
    code = {v: k for k, v in SPLIT_NAMES.items()}[args.split]
    idx = split_indices(np.where(ok, split, -1), code, str(args.data))
    return np.asarray(crops[idx]), lf.labels[idx], f"{args.split} split of {args.data} ({how})"


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """Add evaluation options of the attribute task."""
    parser.add_argument("--gallery", type=int, default=18, help="faces in the prediction gallery")


def evaluate(run: Run, args: argparse.Namespace, model: Any = None) -> dict[str, Any]:
    """Write RUN/eval/ (metrics.json, per-label CSV, report, PNGs) and return the metrics for run.yaml."""
    from ..evaluate import plots
    from ..evaluate.classification import classification_report_text, label_correlation, multilabel_report
    from ..evaluate.gallery import prediction_gallery
    from ..evaluate.gradcam import gradcam_figure
    from ..infer import model_outputs

    out = run.output(HEAD)
    names, thresholds = list(out["labels"]), list(out.get("thresholds") or [0.5] * len(out["labels"]))
    faces, labels, desc = _heldout(run, args)
    if getattr(args, "limit", 0):
        faces, labels = faces[: args.limit], labels[: args.limit]
    model = model or run.load_model()
    prob = model_outputs(model, faces)[HEAD]
    report = multilabel_report(labels, prob, names, thresholds)
    at_half = multilabel_report(labels, prob, names, None)
    folder = run.eval_dir
    (folder / "metrics.json").write_text(json.dumps({"data": desc, "thresholded": report,
                                                     "threshold_0.5": at_half}, indent=1))
    with open(folder / "per_label.csv", "w") as fh:
        fh.write("label,n,positive_rate,threshold,accuracy,balanced_accuracy,f1,auc,error_negative,"
                 "error_positive,majority_baseline,unreliable_on_val\n")
        for label, m in report["per_label"].items():
            fh.write(f"{label},{m['n']},{m['positive_rate']:.4f},{m['threshold']:.2f},{m['accuracy']:.4f},"
                     f"{m['balanced_accuracy']:.4f},{m['f1']:.4f},{'' if m['auc'] is None else round(m['auc'], 4)},"
                     f"{m['error_negative']:.4f},{m['error_positive']:.4f},{m['majority_baseline']:.4f},"
                     f"{int(label in (out.get('unreliable') or []))}\n")
    (folder / "classification_report.txt").write_text(classification_report_text(labels, prob, names, thresholds))
    corr_path = folder / "train_label_correlation.npy"
    corr = np.load(corr_path) if corr_path.is_file() else label_correlation(labels)
    plots.plot_correlation(corr, names, folder / "attribute_correlation.png",
                           "attribute correlation (training labels)" if corr_path.is_file() else "attribute correlation")
    if run.info.get("history"):
        plots.plot_history(run.info["history"], folder / "training_curves.png")
    plots.plot_binary_confusions({k: v["confusion"] for k, v in report["per_label"].items()},
                                 folder / "confusion_matrices.png")
    plots.plot_metric_bars({k: v["balanced_accuracy"] for k, v in report["per_label"].items()},
                           folder / "balanced_accuracy.png", "balanced accuracy (held-out)", floor=0.70)
    shown = [n for n in HEADLINE if n in names] or names[:5]
    cols = [names.index(n) for n in shown]
    k = min(getattr(args, "gallery", 18), len(faces))
    pred = (prob >= np.asarray(thresholds)[None, :]).astype(int)
    def text(row: np.ndarray) -> str:
        return ",".join(n for n, c in zip(shown, cols) if row[c] == 1) or "-"
    prediction_gallery(faces[:k], [text(labels[i]) for i in range(k)], [text(pred[i]) for i in range(k)],
                       folder / "prediction_gallery.png",
                       correct=[bool(np.all(pred[i, cols] == labels[i, cols])) for i in range(k)])
    for n, c in zip(shown[:5], cols[:5]):
        gradcam_figure(model, faces[:6], folder / f"gradcam_{n}.png", HEAD, c, n,
                       [("yes " if labels[i, c] == 1 else "no ") + n for i in range(min(6, len(faces)))])
    headline = {n: round(report["per_label"][n]["accuracy"], 4) for n in shown}
    metrics = {
        "heldout": desc,
        "float": {"n": report["n"], "mean_accuracy": report["mean_accuracy"],
                  "mean_balanced_accuracy": report["mean_balanced_accuracy"],
                  "exact_match": report["exact_match"], "mean_majority_baseline": report["mean_majority_baseline"],
                  "mean_accuracy_at_0.5": at_half["mean_accuracy"], "headline_accuracy": headline,
                  "below_0.70_balanced_accuracy": report["unreliable"]},
        "per_label": {n: {key: (round(v, 4) if isinstance(v, float) else v) for key, v in m.items()
                          if key in ("accuracy", "balanced_accuracy", "f1", "auc", "threshold", "positive_rate")}
                      for n, m in report["per_label"].items()},
    }
    write_card(Run(run.path, {**run.info, "metrics": {**(run.info.get("metrics") or {}), **metrics}}))
    return metrics


# Floors of the shipped CelebA model (issue 4): identity-disjoint test split, after int8 conversion.
FLOORS = {"Male": 0.94, "Smiling": 0.88, "Eyeglasses": 0.97, "Blond_Hair": 0.93, "Young": 0.84, "mean": 0.89}


def write_card(run: Run) -> Path:
    """Write RUN/eval/card.md (appended to the bundle's MODEL_CARD.md by face-convert); return its path.

    Holds the headline table (float from the trainer's evaluation, int8 from ``face-train
    eval-bundle`` when it has run), the unreliable attributes and known limits (the rebuild steps are
    the bundle card's own "Rebuild" section, from run.yaml training.command).
    """
    from ..bundle_eval import headline_markdown

    metrics = run.info.get("metrics") or {}
    out = run.output(HEAD)
    lines = ["## Attribute figures (identity-disjoint held-out test split)", ""]
    int8_path = run.eval_dir / "int8_metrics.json"
    if int8_path.is_file():
        int8 = json.loads(int8_path.read_text())
        lines += [f"Measured on {int8['n']} held-out faces: float = Keras model (trainer evaluation), "
                  f"int8 = this bundle's model.tflite run through edge.models.FaceModel ({int8.get('runtime')}), "
                  "each at the manifest's per-attribute thresholds (tuned on the validation split).", "",
                  headline_markdown(metrics, int8, HEAD, FLOORS if set(HEADLINE) <= set(out["labels"]) else None), ""]
    else:
        f = metrics.get("float") or {}
        lines += [f"Float model: mean accuracy {f.get('mean_accuracy')}, headline {f.get('headline_accuracy')}", ""]
    per = metrics.get("per_label") or {}
    if per:
        lines += ["<details><summary>All attributes (float, held-out test)</summary>", "",
                  "| attribute | accuracy | balanced acc. | F1 | AUC | threshold |", "|---|---|---|---|---|---|"]
        for name, m in per.items():
            auc = m.get("auc")
            lines.append(f"| {name} | {m['accuracy']:.3f} | {m['balanced_accuracy']:.3f} | {m['f1']:.3f} | "
                         f"{'-' if auc is None else f'{auc:.3f}'} | {m['threshold']:.2f} |")
        lines += ["", "</details>", ""]
    unreliable = out.get("unreliable") or []
    data = run.info.get("data") or {}
    lines += ["## Attribute limits", "",
              f"- Not shown on the device (validation balanced accuracy < 0.70): {', '.join(unreliable) or 'none'}.",
              f"- Trained on {data.get('counts', {}).get('train', '?')} faces of {data.get('key', '?')}: celebrities, "
              "mostly young, light-skinned and posed; CelebA labels are subjective for attributes such as "
              "Attractive, Oval_Face or Pointy_Nose. Expect lower figures on ordinary camera faces.",
              f"- Faces are cut by edge.crop on a Haar box (aligned-frame fallback for "
              f"{(data.get('crops') or {}).get('fallback', '?')} of {data.get('images', '?')} training images "
              "where Haar found nothing); on the Pi the same crop is used, so profile faces Haar misses are not scored.",
              ""]  # the rebuild commands are the card's own "Rebuild" section (run.yaml training.command)
    path = run.eval_dir / "card.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def retune(run: Run, data: str, objective: str = "accuracy", min_gain: float = 0.005,
           cache_dir: Optional[str] = None, bundle: Optional[str] = None) -> dict[str, Any]:
    """Re-tune the run's thresholds and unreliable flags on the validation split of ``data``,
    rewrite run.yaml, re-evaluate on the held-out test faces; return the new metrics.

    With ``bundle`` (the run converted, e.g. to int8) the validation scores are the bundle's,
    through edge's FaceModel: the thresholds then fit the model the device actually runs.
    """
    from ..evaluate.classification import multilabel_report, tune_thresholds
    from ..infer import model_outputs
    from ..run import update_run

    model = run.load_model()
    faces, labels, _ = _heldout(run, argparse.Namespace(data=data, split="val", cache_dir=cache_dir))
    if bundle:
        from ..bundle_eval import bundle_outputs

        prob = bundle_outputs(bundle, faces)[HEAD]
    else:
        prob = model_outputs(model, faces)[HEAD]
    out = dict(run.output(HEAD))
    thresholds = tune_thresholds(labels, prob, objective, min_gain=min_gain)
    report = multilabel_report(labels, prob, out["labels"], thresholds)
    out.update(thresholds=[round(float(t), 3) for t in thresholds], unreliable=report["unreliable"])
    training = dict(run.info.get("training") or {}, threshold_objective=objective, threshold_min_gain=min_gain,
                    thresholds_tuned_on=f"validation scores of {bundle} (FaceModel)" if bundle else "validation scores of the Keras model")
    update_run(run, outputs=[out if o["name"] == HEAD else o for o in run.info["outputs"]], training=training,
               metrics={"validation": {"n": int(len(labels)), "mean_accuracy": report["mean_accuracy"],
                                       "mean_balanced_accuracy": report["mean_balanced_accuracy"]}})
    metrics = evaluate(run, argparse.Namespace(data=None, split="test", limit=0, cache_dir=None), model=model)
    update_run(run, metrics=metrics)
    return metrics
