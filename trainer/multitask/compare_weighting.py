"""Fixed vs learned-uncertainty loss weighting, compared on the same data, seed and schedule.

    python -m trainer.multitask.compare_weighting --data ../shared/data --out compare.md

To fit the shared CPU budget the comparison trains the four heads on frozen pooled backbone
features (ImageNet MobileNetV2, or the trunk ``--backbone-from`` gives; the cached lower features
of the multitask fit) rather than
fine-tuning the trunk twice; both weightings see identical batches. It writes a Markdown table of
the validation figures at each weighting's best epoch (by the unweighted validation loss).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import keras
import numpy as np

from edge.crop import CropSpec
from trainer import nets
from trainer.augment import parse_augment_arg
from trainer.data.multitask import load_multitask
from trainer.losses.multitask import make_weighting
from trainer.tasks.multitask import parse_loss_weights

from . import features
from .model import MultitaskTrainer, _apply_heads, _head_layers, build_models
from .spec import KINDS


def pooled(models: Any, feats: np.ndarray, batch: int = 256) -> np.ndarray:
    """Return the pooled (N x 1280) backbone features of cached lower features, frozen trunk."""
    upper = nets.backbone_of(models.top)
    pool = keras.layers.GlobalAveragePooling2D()
    out = [pool(upper(feats[i:i + batch].astype(np.float32), training=False)).numpy()
           for i in range(0, len(feats), batch)]
    return np.concatenate(out)


def head_net(width: int, hidden: int, dropout: float) -> keras.Model:
    """Return the four heads on a pooled feature vector (the same head layout as the full model)."""
    inp = keras.Input((width,))
    fmap = keras.layers.Reshape((1, 1, width))(inp)
    return keras.Model(inp, _apply_heads(fmap, _head_layers(hidden, dropout, {"emotion": 7, "ethnicity": 5}),
                                         dropout, "cmp"))


def compare(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Return {weighting: validation figures at its best epoch}."""
    spec = CropSpec(args.size, 0.25, 0.0)
    data = load_multitask(Path(args.data) / "utkface", Path(args.data) / "fer2013", spec, args.seed,
                          progress=False)
    train, val = data.splits["train"], data.splits["val"]
    models = build_models(args.size, weights=None if args.backbone_from else str(nets.IMAGENET_MOBILENET_V2))
    if args.backbone_from:
        from trainer.tasks.multitask import copy_backbone

        copy_backbone(args.backbone_from, models.full)
    augment = parse_augment_arg("default")
    cache = Path(args.cache_dir) / "multitask"
    tag = f"all_{args.seed}"
    utk, fer = np.flatnonzero(train.source == 0), np.flatnonzero(train.source == 1)
    f_tr = np.concatenate([features.cached_features(f"train_utk_{tag}", models.lower, train.faces[utk], 1,
                                                    args.seed, augment, cache),
                           features.cached_features(f"train_fer_{tag}", models.lower, train.faces[fer], 1,
                                                    args.seed + 1, augment, cache)])
    f_val = features.cached_features(f"val_{tag}", models.lower, val.faces, 1, args.seed, augment, cache)
    x_tr, x_val = pooled(models, f_tr), pooled(models, f_val)
    order = np.concatenate([utk, fer])
    y_tr = {k: v[order] for k, v in train.labels().items()}
    fixed = parse_loss_weights(args.loss_weights)
    results = {}
    for mode in ("fixed", "uncertainty"):
        keras.utils.set_random_seed(args.seed)
        trainer = MultitaskTrainer(head_net(x_tr.shape[1], 128, 0.3), make_weighting(mode, KINDS, fixed), 0.1,
                                   age_delta=args.age_delta)
        trainer.compile(optimizer=keras.optimizers.Adam(1e-3))
        hist = trainer.fit(x_tr, y_tr, validation_data=(x_val, val.labels()), batch_size=64, epochs=args.epochs,
                           shuffle=True, verbose=0).history
        best = int(np.argmin(hist["val_plain_loss"]))
        results[mode] = {k[4:]: float(v[best]) for k, v in hist.items() if k.startswith("val_")}
        results[mode]["best_epoch"] = best + 1
        results[mode]["final_weights"] = trainer.weighting.weights_now()
        print(mode, results[mode], flush=True)
    return results


def markdown(results: dict[str, dict[str, Any]], epochs: int, trunk: str = "ImageNet MobileNetV2",
             fixed_name: str = "fixed (all weights 1)") -> str:
    """Return the comparison as a Markdown table plus a one-line verdict."""
    keys = (("age_mae", "val age MAE (years)", "min"), ("gender_acc", "val gender accuracy", "max"),
            ("emotion_acc", "val emotion accuracy", "max"), ("ethnicity_acc", "val ethnicity accuracy", "max"),
            ("plain_loss", "val unweighted loss", "min"))
    lines = [f"| metric | {fixed_name} | uncertainty (Kendall et al.) |", "|---|---:|---:|"]
    wins = {"fixed": 0, "uncertainty": 0}
    for key, title, better in keys:
        f, u = results["fixed"][key], results["uncertainty"][key]
        lines.append(f"| {title} | {f:.3f} | {u:.3f} |")
        if key != "plain_loss" and f != u:
            wins["fixed" if (f < u) == (better == "min") else "uncertainty"] += 1
    w = results["uncertainty"]["final_weights"]
    lines.append(f"| learned effective weights | - | {', '.join(f'{k} {v:.2f}' for k, v in w.items())} |")
    winner = max(wins, key=wins.get) if wins["fixed"] != wins["uncertainty"] else "neither (tie)"
    lines += ["", f"Heads trained for up to {epochs} epochs on frozen pooled {trunk} features, "
                  "same seed and batches; figures at each run's best epoch by the unweighted validation loss. "
                  f"Better on {wins['uncertainty']} of 4 head metrics with uncertainty weighting, {wins['fixed']} "
                  f"with fixed weights: **{winner}** wins."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True, help="Markdown file to write")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--seed", type=int, default=1729)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--cache-dir", default="/work/cache")
    parser.add_argument("--backbone-from", default=None, metavar="RUN",
                        help="compare on the trunk of this RUN folder (as fit --backbone-from) instead of ImageNet")
    parser.add_argument("--loss-weights", default="", metavar="HEAD=W,...",
                        help="weights of the fixed weighting (as fit --loss-weights; default all 1)")
    parser.add_argument("--age-delta", type=float, default=1.0, help="Huber delta of the age loss (as fit)")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow CPU threads")
    args = parser.parse_args()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    trunk = f"MobileNetV2 ({args.backbone_from} trunk, {args.size} px)" if args.backbone_from \
        else f"ImageNet MobileNetV2 ({args.size} px)"
    fixed_name = f"fixed ({args.loss_weights})" if args.loss_weights else "fixed (all weights 1)"
    text = markdown(compare(args), args.epochs, trunk, fixed_name)
    Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
