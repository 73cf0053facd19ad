"""Train tiny models on one device and on two logical CPU devices; print the loss curves as JSON.

Run as ``python -m tests.helpers.mirrored_fit OUT_DIR [CELEBA_DIR]`` in a fresh process: the CPU can be split
into logical devices only before TensorFlow initialises them. The same seed, data, order and
global batch go to both runs; with two devices MirroredStrategy gives each replica half of
every batch and all-reduces the gradients, which is the same step as one device taking the
whole batch. Compared: trainer.fit.two_stage_fit (head on a frozen backbone, then fine-tuning
of the top blocks with BatchNorm training) and the multi-task trainer's own loss
(trainer.multitask.model.MultitaskTrainer), then a resumed two-device fit, and (given a CelebA
folder) ``face-train fit attributes --devices 2`` itself.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

from trainer.distribute import plan_devices

PLAN = plan_devices("2")   # before anything else touches TensorFlow's devices

import keras  # noqa: E402

from trainer import nets  # noqa: E402
from trainer.fit import FitConfig, two_stage_fit  # noqa: E402

GLOBAL_BATCH, SIZE = 32, 32


def data(n: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return images (uint8-valued float32) and two learnable labels: bright left half, red over green."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, SIZE, SIZE, 3)).astype(np.float32)
    y = np.stack([x[:, :, : SIZE // 2].mean((1, 2, 3)) > x[:, :, SIZE // 2:].mean((1, 2, 3)),
                  x[..., 0].mean((1, 2)) > x[..., 1].mean((1, 2))], 1).astype(np.float32)
    return x, y


def datasets() -> tuple[tf.data.Dataset, tf.data.Dataset]:
    x, y = data()
    vx, vy = data(64, seed=1)
    train = tf.data.Dataset.from_tensor_slices((x, {"out": y})).batch(GLOBAL_BATCH)
    val = tf.data.Dataset.from_tensor_slices((vx, {"out": vy})).batch(GLOBAL_BATCH)
    return train, val


def two_stage(strategy: tf.distribute.Strategy, folder: Path | None = None, stage1: int = 3,
              stage2: int = 2) -> dict[str, list[float]]:
    keras.utils.set_random_seed(7)
    train, val = datasets()
    with strategy.scope():
        backbone = nets.build_backbone("custom_cnn", 0.25, SIZE, None)
        out = keras.layers.Dense(2, activation="sigmoid", name="out")(nets.pooled_features(backbone))
        model = keras.Model(backbone.input, {"out": out})

        def compile_model(m: keras.Model, lr: float) -> None:
            m.compile(optimizer=keras.optimizers.Adam(lr), loss={"out": "binary_crossentropy"})

        cfg = FitConfig(stage1_epochs=stage1, stage1_lr=3e-3, stage2_epochs=stage2, stage2_lr=1e-3,
                        unfreeze_blocks=2, patience=0)
        result = two_stage_fit(model, compile_model, train, val, cfg, folder, verbose=0)
    return {k: result.history[k] for k in ("loss", "val_loss")}


def multitask(strategy: tf.distribute.Strategy) -> dict[str, list[float]]:
    from trainer.losses.multitask import make_weighting
    from trainer.multitask.model import MultitaskTrainer
    from trainer.multitask.spec import HEADS, KINDS

    keras.utils.set_random_seed(7)
    rng = np.random.default_rng(3)
    n = 256
    x = rng.normal(size=(n, 16)).astype(np.float32)
    labels = {"age": (30 + 10 * x[:, 0]).astype(np.float32)[:, None],
              "gender": (x[:, 1] > 0).astype(np.float32)[:, None],
              "emotion": np.argmax(x[:, 2:9], 1).astype(np.float32)[:, None],
              "ethnicity": np.argmax(x[:, 9:14], 1).astype(np.float32)[:, None]}
    labels["age"][::3] = np.nan          # masked heads, as in the mixed UTKFace/FER batches
    labels["emotion"][1::2] = -1
    ds = tf.data.Dataset.from_tensor_slices((x, labels)).batch(GLOBAL_BATCH)
    with strategy.scope():
        inp = keras.Input((16,))
        h = keras.layers.Dense(32, activation="relu")(inp)
        outs = {"age": keras.layers.Dense(1)(h), "gender": keras.layers.Dense(1, activation="sigmoid")(h),
                "emotion": keras.layers.Dense(7, activation="softmax")(h),
                "ethnicity": keras.layers.Dense(5, activation="softmax")(h)}
        net = keras.Model(inp, outs)
        trainer = MultitaskTrainer(net, make_weighting("uncertainty", KINDS, None))
        trainer.compile(optimizer=keras.optimizers.Adam(3e-3))
        hist = trainer.fit(ds, epochs=4, verbose=0)
    assert set(HEADS) == set(labels)
    return {k: [float(v) for v in hist.history[k]] for k in ("loss", "plain_loss")}


def cli_fit(out: Path, celeba: Path) -> int:
    """``face-train fit attributes --devices 2`` on a few CelebA faces (the same process: the CPU is split)."""
    from trainer.cli import main as face_train

    return face_train(["fit", "attributes", "--data", str(celeba), "--out", str(out / "run"), "--limit", "120",
                       "--size", "32", "--backbone", "custom_cnn", "--alpha", "0.25", "--weights", "none",
                       "--stage1-epochs", "1", "--stage2-epochs", "1", "--unfreeze", "1", "--batch", "8",
                       "--devices", "2", "--lr-scaling", "sqrt", "--attributes", "Male,Smiling",
                       "--train-samples", "16", "--no-eval", "--quiet", "--cache-dir", str(out / "cache")])


def main(out: Path, celeba: Path | None = None) -> None:
    one = tf.distribute.get_strategy()
    assert PLAN.replicas == 2, PLAN.devices
    report = {"devices": PLAN.devices,
              "two_stage": {"one": two_stage(one), "two": two_stage(PLAN.strategy)},
              "multitask": {"one": multitask(one), "two": multitask(PLAN.strategy)}}
    # resume under two devices: 2 epochs, then the same run asked for 3 continues from its checkpoint
    first = two_stage(PLAN.strategy, out / "ckpt", stage1=2, stage2=0)
    again = two_stage(PLAN.strategy, out / "ckpt", stage1=3, stage2=0)
    report["resume"] = {"first": first, "again": again}
    if celeba is not None:
        report["cli_exit"] = cli_fit(out, celeba)
    (out / "curves.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else None)
