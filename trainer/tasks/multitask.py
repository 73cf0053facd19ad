"""Multi-task: age, gender, emotion and ethnicity from one MobileNetV2 trunk (UTKFace + FER2013).

``face-train fit multitask --data ../shared/data --out runs/multitask`` reads UTKFace (age,
gender, ethnicity from the file names) and FER2013 (emotion; image folders or fer2013.csv),
crops every face like the device (Haar on a padded image, cached), mixes both sets in every
batch with each head's loss masked where its label is missing, trains the top of the network
on cached lower-backbone features (frozen heads-only stage, then fine-tuning of the top
blocks), tunes the gender threshold on validation, and writes the RUN folder with RUN/eval/.
``--weighting fixed|uncertainty`` chooses hand-set loss weights or Kendall et al.'s learned ones.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edge.crop import CropSpec
from edge.views import DEFAULT_MAX_CALLS, PRESETS, View, parse_views, views_to_list

from ..errors import DataError
from ..run import Run, command_line, input_spec, write_run
from . import add_common_fit_arguments

NAME = "multitask"
MANIFEST_TASK = "multitask"
LICENCE = ("UTKFace (Zhang, Song & Qi, CVPR 2017) and FER2013 (Goodfellow et al., ICML 2013 workshop): "
           "non-commercial research use only; images remain the property of their owners")
FIXED_WEIGHTS = {"age": 1.0, "gender": 1.0, "emotion": 1.0, "ethnicity": 1.0}


def add_fit_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the multitask options (common ones from the registry, plus data, weighting and feature cache)."""
    add_common_fit_arguments(parser)
    parser.set_defaults(stage1_epochs=2, stage2_epochs=8, lr2=5e-4, unfreeze=100, patience=3, batch=64)
    parser.add_argument("--utkface", default=None, help="UTKFace folder (default: DATA/utkface)")
    parser.add_argument("--utkface-more", default=None, metavar="FOLDER|none",
                        help="a second UTKFace folder, split 75/10/15 on its own and added to every split "
                             "(default: DATA/utkface_more when it exists; 'none' trains on --utkface alone)")
    parser.add_argument("--fer", default=None, help="FER2013 folder or fer2013.csv (default: DATA/fer2013)")
    parser.add_argument("--weighting", default="uncertainty", choices=["fixed", "uncertainty"],
                        help="fixed loss weights or learned homoscedastic-uncertainty weights (Kendall et al. 2018)")
    parser.add_argument("--trunk", default="top", choices=["top", "all"],
                        help="'top': train the layers above --cut on cached lower features (fast, augmentation "
                             "limited to the cached variants); 'all': fine-tune the whole trunk on freshly "
                             "augmented images every epoch (about 5 minutes per 36,676 faces on 2 cores)")
    parser.add_argument("--loss-weights", default="", metavar="HEAD=W,...",
                        help="with --weighting fixed: weights of the heads (e.g. emotion=2,gender=1.5); "
                             "heads not named weigh 1")
    parser.add_argument("--cut", default="block_5_add",
                        help="with --trunk top: backbone layer whose output is cached; layers above it are trained")
    parser.add_argument("--backbone-from", default=None, metavar="RUN",
                        help="start the trunk from the backbone of another RUN folder (e.g. the attribute "
                             "model, fine-tuned on CelebA faces) instead of --weights")
    parser.add_argument("--init-from", default=None, metavar="RUN",
                        help="start from every weight (trunk and heads) of an earlier multitask RUN (same --alpha and "
                             "--hidden), to train it further; use with --stage1-epochs 0")
    parser.add_argument("--init-from-bundle", default=None, metavar="BUNDLE",
                        help="start from every weight of a converted multitask bundle (its model.tflite, "
                             "dequantized, BatchNorm folded: trainer.bundle_weights), when its Keras run is gone; "
                             "BatchNorm stays frozen; use with --stage1-epochs 0")
    parser.add_argument("--keep", default="best", choices=["best", "last"],
                        help="weights written: best epoch by the unweighted validation loss, or the last epoch "
                             "(end of the cosine schedule)")
    parser.add_argument("--version", default="0.1.0", help="model version written to the manifest")
    parser.add_argument("--hidden", type=int, default=128, help="units of each head's hidden layer")
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--age-delta", type=float, default=1.0,
                        help="Huber delta of the age loss in units of 10 years: 1.0 is quadratic up to 10 years "
                             "(fits the mean), 0.1 is nearly L1 (fits the median, what MAE measures)")
    parser.add_argument("--label-smoothing", type=float, default=0.1, help="for the class heads")
    parser.add_argument("--utk-variants", type=int, default=4, help="cached augmented variants per UTKFace face")
    parser.add_argument("--fer-variants", type=int, default=2, help="cached variants per FER face (1 = no flip)")
    parser.add_argument("--utk-repeat", type=int, default=2, help="times each UTKFace face is drawn per epoch")
    parser.add_argument("--train-samples", type=int, default=1000, help="representative crops saved for int8")
    parser.add_argument("--views", default="auto", choices=["auto", *sorted(PRESETS)],
                        help="test-time views the device averages every output over (edge.views; written to the "
                             "manifest, used for the gender threshold and every figure): 'plain' one model call per "
                             "face, 'mirror' the face and its mirror image (2 calls), 'crops' mirror x 6 zoomed or "
                             "shifted crops (12 calls); 'auto' (default) scores all three on validation and keeps the "
                             "best mean rank over the four heads (ties: fewer calls) among those of at most "
                             "--max-calls calls")
    parser.add_argument("--max-calls", type=int, default=DEFAULT_MAX_CALLS,
                        help=f"with --views auto: the most model calls per face the chosen views may make (default "
                             f"{DEFAULT_MAX_CALLS}: face + mirror)")
    parser.add_argument("--no-eval", action="store_true", help="skip the evaluation files after fitting")
    parser.add_argument("--prepare-only", action="store_true",
                        help="only crop the faces and cache the lower-backbone features, then stop")
    parser.add_argument("--threads", type=int, default=0, help="TensorFlow CPU threads (0 = TensorFlow's default)")


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--bundle``: also score a converted bundle (int8) with edge.models.FaceModel."""
    parser.add_argument("--bundle", default=None, help="converted bundle folder to score with the device code")
    parser.add_argument("--float-bundle", default=None,
                        help="face-convert --quant float32 bundle of the same run, for the float size and latency")


def _roots(args: argparse.Namespace) -> tuple[Path, Path, Optional[Path]]:
    data = Path(args.data)
    utk = Path(args.utkface) if args.utkface else data / "utkface"
    fer = Path(args.fer) if args.fer else data / "fer2013"
    for what, path in (("UTKFace", utk), ("FER2013", fer)):
        if not path.exists():
            raise DataError(f"{what} not found at {path} (give --data with utkface/ and fer2013/, or --utkface/--fer)")
    more = getattr(args, "utkface_more", None)
    if more is None:
        return utk, fer, (data / "utkface_more" if (data / "utkface_more").exists() else None)
    if more == "none":
        return utk, fer, None
    if not Path(more).exists():
        raise DataError(f"--utkface-more {more}: no such folder (give 'none' to train on --utkface alone)")
    return utk, fer, Path(more)


def copy_bundle(bundle_folder: str | Path, model: Any) -> str:
    """Load the weights of a converted multitask bundle into ``model`` (trainer.bundle_weights).

    Returns the data licence recorded in the bundle's manifest.
    """
    from edge.bundle import load_bundle

    from ..bundle_weights import load_bundle_weights
    from ..multitask.model import AGE_OFFSET, AGE_SCALE

    bundle = load_bundle(bundle_folder)
    if bundle.manifest.task != MANIFEST_TASK:
        raise DataError(f"--init-from-bundle {bundle_folder}: a {bundle.manifest.task} bundle, not multitask")
    load_bundle_weights(model, bundle.model_path, {"age_unit": (AGE_SCALE, AGE_OFFSET)})
    return str((bundle.manifest.extra.get("data") or {}).get("licence") or LICENCE)


def parse_loss_weights(text: str) -> dict[str, float]:
    """Return FIXED_WEIGHTS updated by a ``head=weight,...`` string; an unknown head or a bad number raises DataError."""
    weights = dict(FIXED_WEIGHTS)
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        head, _, value = (t.strip() for t in part.partition("="))
        if head not in weights:
            raise DataError(f"--loss-weights: {head!r} is not a head (heads: {', '.join(weights)})")
        try:
            weights[head] = float(value)
        except ValueError:
            raise DataError(f"--loss-weights: {part!r} is not head=number") from None
    return weights


def _weights_arg(args: argparse.Namespace) -> Optional[str]:
    from .. import nets

    if args.weights == "none":
        return None
    if args.weights == "imagenet":
        found = nets.default_weights(args.backbone, args.alpha)
        return str(found) if found else None
    return args.weights


def copy_backbone(run_folder: str | Path, model: Any) -> str:
    """Load the backbone weights of the RUN folder's model into ``model``'s backbone (same architecture).

    Returns the data licence recorded in that run (its trunk was trained on that data).
    """
    from .. import nets
    from ..run import read_run

    run = read_run(run_folder)
    source = nets.backbone_of(run.load_model())
    target = nets.backbone_of(model)
    shapes = [w.shape for w in source.get_weights()], [w.shape for w in target.get_weights()]
    if shapes[0] != shapes[1]:
        raise DataError(f"--backbone-from {run_folder}: its backbone ({source.count_params()} parameters) is not "
                        f"the same architecture as --backbone/--alpha ({target.count_params()} parameters)")
    target.set_weights(source.get_weights())
    return str((run.info.get("data") or {}).get("licence") or "not recorded")


def trained_layers(args: argparse.Namespace) -> str:
    """Return which layers ``--trunk`` / ``--cut`` / ``--unfreeze`` let training change, in words."""
    if args.trunk == "all":
        return f"the top {args.unfreeze} {args.backbone} blocks (all of them when that many exist) + heads, " \
               "on freshly augmented images"
    return f"{args.backbone} layers above {args.cut} + heads (lower layers frozen)"


def batchnorm_folded(run_folder: str | Path) -> bool:
    """Return True when the multitask RUN folder's BatchNorm layers hold a bundle's folded biases (its fit kept
    them frozen): a fit that continues that run must keep them frozen too, or BatchNorm's batch statistics
    replace the identity those weights expect and the network's outputs are lost in the first epoch."""
    from ..run import read_run

    training = read_run(run_folder).info.get("training") or {}
    return bool((training.get("fit") or {}).get("keep_bn_frozen"))


def copy_multitask(run_folder: str | Path, model: Any) -> str:
    """Load every weight of the multitask RUN folder's model into ``model`` (same heads and width).

    Returns the data licence recorded in that run.
    """
    from ..run import read_run

    run = read_run(run_folder)
    if (run.info.get("training") or {}).get("task") != NAME:
        raise DataError(f"--init-from {run_folder}: not a multitask run")
    source = run.load_model()
    if [w.shape for w in source.get_weights()] != [w.shape for w in model.get_weights()]:
        raise DataError(f"--init-from {run_folder}: its network ({source.count_params()} parameters) differs from "
                        f"this one ({model.count_params()}); give the same --alpha and --hidden")
    model.set_weights(source.get_weights())
    return str((run.info.get("data") or {}).get("licence") or LICENCE)


def fit(args: argparse.Namespace) -> Run:
    """Train the multi-task model and write the RUN folder (+ RUN/eval unless --no-eval); return the Run."""
    import keras

    from .. import fit as fitting
    from ..augment import parse_augment_arg
    from ..data.multitask import DETECT_PAD, load_multitask
    from ..losses.multitask import make_weighting
    from ..multitask import features, images
    from ..multitask.model import MultitaskTrainer, build_models, clean_copy
    from ..multitask.spec import KINDS, output_specs
    from ..multitask.views_choice import choose_views, compare_views

    if args.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    if args.loss_weights and args.weighting != "fixed":
        raise DataError("--loss-weights sets fixed weights: give --weighting fixed with it")
    if sum(bool(x) for x in (args.backbone_from, args.init_from, args.init_from_bundle)) > 1:
        raise DataError("give one of --backbone-from, --init-from and --init-from-bundle")
    keras.utils.set_random_seed(args.seed)
    utk_root, fer_root, more_root = _roots(args)
    spec = CropSpec(args.size, args.margin, args.shift_y)
    data = load_multitask(utk_root, fer_root, spec, args.seed, args.limit, args.cache_dir, progress=not args.quiet,
                          utk_more_root=more_root)
    train, val, test = data.splits["train"], data.splits["val"], data.splits["test"]
    if min(len(train), len(val), len(test)) == 0:
        raise DataError(f"multitask: an empty split ({data.sizes}); use more images")
    warm = args.backbone_from or args.init_from or args.init_from_bundle
    weights = None if warm else _weights_arg(args)  # replaced anyway
    build_kwargs = dict(size=args.size, alpha=args.alpha, weights=weights, cut=args.cut, hidden=args.hidden,
                        dropout=args.dropout, backbone=args.backbone)
    models = build_models(**build_kwargs)
    licence = LICENCE
    folded = bool(args.init_from) and batchnorm_folded(args.init_from)
    if args.init_from:
        licence = copy_multitask(args.init_from, models.full)
    elif args.init_from_bundle:
        licence = copy_bundle(args.init_from_bundle, models.full)
    elif args.backbone_from:
        licence += f"; the trunk comes from {args.backbone_from}: {copy_backbone(args.backbone_from, models.full)}"
    augment = parse_augment_arg(args.augment)
    weighting = make_weighting(args.weighting, KINDS, parse_loss_weights(args.loss_weights))
    if args.trunk == "all":
        if args.prepare_only:
            print(f"faces cropped and cached: {data.sizes}")
            return Run(Path(args.out), {})
        net = models.full
        train_ds = images.train_dataset(train, args.utk_repeat, args.batch, args.seed, augment)
        val_ds = features.eval_dataset(val.faces, val.labels(), 256)
    else:
        cache = Path(args.cache_dir or "/work/cache") / "multitask"
        tag = f"{args.limit or 'all'}_{args.seed}"
        utk_tr, fer_tr = np.flatnonzero(train.source == 0), np.flatnonzero(train.source == 1)
        f_utk = features.cached_features(f"train_utk_{tag}", models.lower, train.faces[utk_tr], args.utk_variants,
                                         args.seed, augment, cache)
        f_fer = features.cached_features(f"train_fer_{tag}", models.lower, train.faces[fer_tr], args.fer_variants,
                                         args.seed + 1, augment, cache)
        order = np.concatenate([utk_tr, fer_tr])  # feature rows follow this order of train faces
        train_feats = np.concatenate([f_utk, f_fer])
        rows = features.row_table([(len(utk_tr), args.utk_variants), (len(fer_tr), args.fer_variants)])
        repeats = np.where(train.source[order] == 0, args.utk_repeat, 1)
        train_labels = {k: v[order] for k, v in train.labels().items()}
        val_feats = features.cached_features(f"val_{tag}", models.lower, val.faces, 1, args.seed, augment, cache)
        if args.prepare_only:
            print(f"faces and features cached: {data.sizes}")
            return Run(Path(args.out), {})
        net = models.top
        train_ds = features.train_dataset(train_feats, rows, train_labels, repeats, args.batch, args.seed)
        val_ds = features.eval_dataset(val_feats, val.labels(), 256)
    trainer = MultitaskTrainer(net, weighting, args.label_smoothing, args.age_delta, name="multitask_trainer")
    trainer(np.zeros((1,) + tuple(net.input_shape[1:]), np.float32))  # built, so a checkpoint can be loaded

    def compile_model(model: Any, lr: Any) -> None:
        model.compile(optimizer=keras.optimizers.Adam(lr))

    cfg = fitting.FitConfig(stage1_epochs=args.stage1_epochs, stage1_lr=args.lr1, stage2_epochs=args.stage2_epochs,
                            stage2_lr=args.lr2, unfreeze_blocks=args.unfreeze, bn_momentum=args.bn_momentum,
                            monitor="val_plain_loss", mode="min", patience=args.patience,
                            keep=args.keep,
                            keep_bn_frozen=bool(args.init_from_bundle) or folded)
    out = Path(args.out)
    result = fitting.two_stage_fit(trainer, compile_model, train_ds, val_ds, cfg, out / "checkpoints",
                                   resume=not args.no_resume, verbose=0 if args.quiet else 2)
    loss_weights = trainer.weighting.weights_now()
    model = clean_copy(models, **build_kwargs)

    # Gender threshold tuned on validation, on the full model's own outputs as the device computes them.
    # The gender threshold is tuned on validation with the views the device will average over.
    candidates = PRESETS if args.views == "auto" else {args.views: PRESETS[args.views]}
    table = compare_views(model, val.faces, val.labels(), candidates)
    views_name = choose_views(table, args.max_calls if args.views == "auto" else None)
    threshold = float(table[views_name]["gender_threshold"])
    views_comparison = table if args.views == "auto" else None
    views = PRESETS[views_name]

    rng = np.random.default_rng(args.seed)
    rep = rng.choice(len(train), min(args.train_samples, len(train)), replace=False)
    utk_train = train.source == 0
    info = {
        "name": args.name or NAME, "task": MANIFEST_TASK, "version": args.version,
        "input": input_spec(args.size), "crop": spec.to_dict(), "views": views_to_list(views),
        "outputs": output_specs(threshold), "metrics": {},
        "data": {"sources": {"utkface": str(utk_root), **({"utkface_more": str(more_root)} if more_root else {}),
                             "fer2013": str(fer_root)}, "sizes": data.sizes,
                 "split": "UTKFace: seeded random 75/10/15 of each folder (no identities in UTKFace); "
                          "FER2013: official test, "
                          "validation = seeded 10% of the official training part",
                 "detect_pad": DETECT_PAD, "crop_stats": data.crop_stats,
                 "skipped": {k: len(v) for k, v in data.skipped.items()},
                 "age_train_mean": float(np.nanmean(train.age[utk_train])), "licence": licence},
        "training": {"task": NAME, "backbone": args.backbone, "alpha": args.alpha, "size": args.size,
                     "weights": (f"all weights of {args.init_from}" + (" (BatchNorm folded and frozen, as there)"
                                                                       if folded else "") if args.init_from
                                 else f"all weights of the bundle {args.init_from_bundle} (dequantized, BatchNorm "
                                      f"folded and frozen)" if args.init_from_bundle
                                 else f"backbone of {args.backbone_from}" if args.backbone_from
                                 else str(weights) if weights else "random init"), "trunk": args.trunk,
                     **({"cut": args.cut} if args.trunk == "top" else {}),
                     "trained_layers": trained_layers(args),
                     "weighting": args.weighting, "loss_weights_final": loss_weights,
                     "losses": {"age": f"masked Huber on years/10, delta {args.age_delta:g}", "gender": "masked BCE",
                                "emotion": "masked CE", "ethnicity": "masked CE"},
                     "label_smoothing": args.label_smoothing, "hidden": args.hidden, "dropout": args.dropout,
                     **({"variants": {"utkface": args.utk_variants, "fer2013": args.fer_variants}}
                        if args.trunk == "top" else {"augmentation": "fresh draw per image per epoch"}),
                     "utk_repeat": args.utk_repeat, "batch": args.batch, "augment": augment,
                     "fit": cfg.to_dict(), "best_epoch": result.best_epoch, "best_val_plain_loss": result.best_value,
                     "views": views_name,
                     **({"views_comparison_val": views_comparison} if views_comparison else {}),
                     "kept_epoch": result.best_epoch if args.keep == "best" else len(result.history.get("loss", [])) - 1,
                     "command": command_line()},
        "history": result.history, "seed": args.seed,
    }
    run = write_run(out, model, info, train.faces[rep], test.faces, test.labels())
    if not args.no_eval:
        from ..run import update_run

        update_run(run, metrics=evaluate(run, args, model=model))
    return run


def run_views(run: Run) -> tuple[View, ...]:
    """Return the test-time views of the RUN (run.yaml ``views``; runs before them: one plain view)."""
    return parse_views(run.info.get("views"), f"run {run.path}")


def evaluate(run: Run, args: argparse.Namespace, model: Any = None) -> dict[str, Any]:
    """Write RUN/eval (metrics, reports, confusion matrices, fairness, Grad-CAM, gallery, size/latency).

    With ``--bundle`` the converted bundle is scored too, through edge.models.FaceModel, and its
    figures (suffix ``_int8``) and the float-vs-int8 differences are added. Returns run.yaml metrics.
    """
    from edge.bundle import load_bundle

    from ..bundle_eval import bundle_outputs
    from ..evaluate.fairness import write_fairness
    from ..evaluate.plots import plot_history
    from ..multitask import report
    from ..multitask.card import render_card

    model = model or run.load_model()
    _, faces, labels = run.samples()
    limit = int(getattr(args, "limit", 0) or 0)
    if limit and getattr(args, "data", None) is None:
        faces, labels = faces[:limit], {k: v[:limit] for k, v in labels.items()}
    th = float(run.output("gender").get("thresholds", [0.5])[0])
    baseline = (run.info.get("data") or {}).get("age_train_mean")
    folder = run.eval_dir
    out = report.keras_outputs(model, faces, views=run_views(run))
    scores = report.head_metrics(out, labels, th, baseline)
    tables, fmetrics = report.fairness(out, labels, th)
    write_fairness(tables, fmetrics, folder)
    report.write_figures(folder, out, labels, scores, "")
    report.gallery_and_gradcam(folder, model, faces, labels, out, int(run.info.get("seed", 0)), th)
    if run.info.get("history"):
        plot_history(run.info["history"], folder / "history.png",
                     ["plain_loss", "age_mae", "gender_acc", "emotion_acc", "ethnicity_acc"])
    metrics: dict[str, Any] = {"heldout": scores["summary"],
                               "fairness_max_gap": {g: t["max_gap"] for g, t in tables.items()}}
    everything: dict[str, Any] = {"float": scores, "fairness": tables}
    bundle = getattr(args, "bundle", None)
    if bundle:
        if load_bundle(bundle).manifest.views != run_views(run):
            raise DataError(f"--bundle {bundle}: its test-time views differ from the run's; convert the run again")
        q = bundle_outputs(bundle, faces)
        qscores = report.head_metrics(q, labels, th, baseline)
        qtables, _ = report.fairness(q, labels, th)
        write_fairness(qtables, fmetrics, folder / "int8")
        report.write_figures(folder, q, labels, qscores, "_int8")
        metrics["heldout_int8"] = qscores["summary"]
        metrics["fairness_max_gap_int8"] = {g: t["max_gap"] for g, t in qtables.items()}
        metrics["int8_minus_float"] = {k: (qscores["summary"][k] - v) for k, v in scores["summary"].items()
                                       if isinstance(v, float) and isinstance(qscores["summary"].get(k), float)}
        everything.update(int8=qscores, fairness_int8=qtables)
    metrics["size_latency"] = report.size_and_latency(model, bundle, getattr(args, "float_bundle", None))
    everything["size_latency"] = metrics["size_latency"]
    report.write_metrics_json(folder, everything)
    fairness_md = (folder / ("int8/fairness.md" if bundle else "fairness.md")).read_text(encoding="utf-8")
    fairness_md = fairness_md.split("\n", 1)[1] if fairness_md.startswith("#") else fairness_md
    comparison = folder / "weighting_comparison.md"
    (folder / "card.md").write_text(render_card(run.info, metrics, ("Measured on the int8 model.\n\n" if bundle else "")
                                                + fairness_md,
                                                comparison.read_text(encoding="utf-8") if comparison.is_file() else ""),
                                    encoding="utf-8")
    return metrics

