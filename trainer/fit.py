"""Two-stage training, generic over tasks: frozen backbone, then fine-tuning of the top blocks.

A task hands :func:`two_stage_fit` a built model (from :mod:`trainer.nets`, with a nested
``backbone``), a function that compiles it for a learning rate, and tf.data datasets. Stage 1
trains only the head (optionally on cached pooled features, which is 10-50x cheaper on a CPU);
stage 2 unfreezes the top blocks at a lower rate. Early stopping and the best checkpoint are on
the validation monitor across both stages; the best weights are restored at the end. Each epoch
writes ``last.weights.h5`` + ``state.json`` so a killed run resumes where it stopped.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import keras
import numpy as np
import tensorflow as tf

from . import nets
from .distribute import without_short_batch_rows, without_short_batches

CompileFn = Callable[[keras.Model, Any], None]  # (model, learning rate or schedule)


@dataclass
class FitConfig:
    """Epochs, rates and early-stopping settings of the two stages."""

    stage1_epochs: int = 4
    stage1_lr: float = 1e-3
    stage2_epochs: int = 6
    stage2_lr: float = 1e-4
    unfreeze_blocks: int = 4        # top backbone blocks trained in stage 2 (0 = no stage 2)
    bn_momentum: float = 0.9        # 0.99 barely moves BatchNorm statistics in a few epochs
    keep_bn_frozen: bool = False
    monitor: str = "val_loss"
    mode: str = "min"
    patience: int = 3               # epochs without improvement before stopping (0 = never stop early)
    stage1_on_features: bool = False  # train stage 1 on cached pooled features (no augmentation)
    cosine_decay: bool = True         # cosine-decay the stage-2 rate over its epochs
    keep: str = "best"                # weights returned: "best" by the monitor, or "last" (end of the schedule)

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a plain dict (stored in run.yaml under training)."""
        return asdict(self)


@dataclass
class FitResult:
    """The trained model (best weights restored) and its per-epoch history."""

    model: keras.Model
    history: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: int = -1
    best_value: float = math.nan


class _Tracker(keras.callbacks.Callback):
    """Keeps the best weights over both stages, the history, and a resumable last checkpoint."""

    def __init__(self, cfg: FitConfig, folder: Optional[Path], history: dict[str, list[float]],
                 stage: int, best: dict[str, Any]):
        super().__init__()
        self.cfg, self.folder, self.history, self.stage, self.best = cfg, folder, history, stage, best

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        logs = dict(logs or {})
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))
        self.history.setdefault("stage", []).append(self.stage)
        value = float(logs.get(self.cfg.monitor, math.nan))
        better = (value < self.best["value"]) if self.cfg.mode == "min" else (value > self.best["value"])
        if math.isnan(self.best["value"]) or better:
            self.best.update(value=value, epoch=len(self.history["stage"]) - 1,
                             weights=[w.copy() for w in self.model.get_weights()])
            if self.folder:
                self.model.save_weights(str(self.folder / "best.weights.h5"))
        if self.folder:
            self.model.save_weights(str(self.folder / "last.weights.h5"))
            # Keras numbers epochs from initial_epoch on, so a resumed stage's count goes on from its start.
            state = {"stage": self.stage, "epochs_done_in_stage": epoch + 1,
                     "history": self.history, "best_epoch": self.best["epoch"],
                     "best_value": self.best["value"]}
            (self.folder / "state.json").write_text(json.dumps(state))


def _early_stop(cfg: FitConfig) -> list[keras.callbacks.Callback]:
    if cfg.patience <= 0:  # e.g. with keep="last": the whole schedule runs
        return []
    return [keras.callbacks.EarlyStopping(monitor=cfg.monitor, mode=cfg.mode, patience=cfg.patience,
                                          restore_best_weights=False)]


def pooled_feature_model(model: keras.Model) -> keras.Model:
    """Return the sub-model input -> pooled backbone features (the layer named ``pool``)."""
    return keras.Model(model.input, model.get_layer("pool").output)


def head_model(model: keras.Model) -> keras.Model:
    """Return the sub-model pooled features -> outputs; it shares its layers with ``model``."""
    return keras.Model(model.get_layer("pool").output, model.output)


def extract_features(model: keras.Model, ds: tf.data.Dataset) -> tuple[np.ndarray, Any]:
    """Return (pooled features, labels) of every batch of ``ds`` (x, y) in order."""
    from tqdm import tqdm

    feats = pooled_feature_model(model)
    xs, ys = [], []
    total = int(ds.cardinality().numpy()) if int(ds.cardinality().numpy()) > 0 else None
    for x, y in tqdm(ds, total=total, desc="backbone features", mininterval=5):
        xs.append(feats(x, training=False).numpy())
        ys.append(y)
    labels = tf.nest.map_structure(lambda *t: np.concatenate([np.asarray(v) for v in t]), *ys)
    return np.concatenate(xs), labels


def two_stage_fit(model: keras.Model, compile_model: CompileFn, train_ds: tf.data.Dataset,
                  val_ds: tf.data.Dataset, cfg: FitConfig, checkpoint_dir: Optional[str | Path] = None,
                  feature_ds: Optional[tuple[tf.data.Dataset, tf.data.Dataset]] = None,
                  resume: bool = True, verbose: int = 2) -> FitResult:
    """Return the model trained in two stages with its best validation weights restored (``cfg.keep``).

    ``compile_model(model, lr)`` must compile the model (the task's loss and metrics).
    ``feature_ds`` = un-augmented (train, val) datasets used for stage-1-on-features when
    ``cfg.stage1_on_features``; ``checkpoint_dir`` keeps best/last weights and history.
    """
    folder = Path(checkpoint_dir) if checkpoint_dir else None
    if folder:
        folder.mkdir(parents=True, exist_ok=True)
    replicas = int(tf.distribute.get_strategy().num_replicas_in_sync)

    def whole(ds: tf.data.Dataset) -> tf.data.Dataset:
        return without_short_batches(ds, replicas)

    history: dict[str, list[float]] = {}
    best: dict[str, Any] = {"value": math.nan, "epoch": -1, "weights": None}
    done = {1: 0, 2: 0}
    state_path = folder / "state.json" if folder else None
    nets.set_bn_momentum(model, cfg.bn_momentum)
    if resume and state_path and state_path.is_file() and (folder / "last.weights.h5").is_file():
        state = json.loads(state_path.read_text())
        model.load_weights(str(folder / "last.weights.h5"))
        history = state["history"]
        done[1] = sum(1 for s in history.get("stage", []) if s == 1)
        done[2] = sum(1 for s in history.get("stage", []) if s == 2)
        best.update(value=state["best_value"], epoch=state["best_epoch"])
        if (folder / "best.weights.h5").is_file():
            best_model_weights = model.get_weights()
            model.load_weights(str(folder / "best.weights.h5"))
            best["weights"] = model.get_weights()
            model.set_weights(best_model_weights)
        print(f"resuming from {folder}: stage 1 {done[1]} epochs, stage 2 {done[2]} epochs done")

    # Stage 1: backbone frozen (BatchNorm in inference mode), head trained at a high rate.
    if cfg.stage1_epochs > done[1] and done[2] == 0:
        nets.freeze_backbone(model)
        tracker = _Tracker(cfg, folder, history, 1, best)
        if cfg.stage1_on_features:
            src_train, src_val = feature_ds if feature_ds else (train_ds, val_ds)
            ftrain, ytrain = extract_features(model, src_train)
            fval, yval = extract_features(model, src_val)
            head = head_model(model)
            compile_model(head, cfg.stage1_lr)
            batch = int(next(iter(train_ds))[0].shape[0])
            (ftrain, ytrain), (fval, yval) = (without_short_batch_rows(pair, batch, replicas)
                                              for pair in ((ftrain, ytrain), (fval, yval)))
            head.fit(ftrain, ytrain, validation_data=(fval, yval), batch_size=batch,
                     epochs=cfg.stage1_epochs, initial_epoch=done[1], shuffle=True, verbose=verbose,
                     callbacks=[_FullModelTracker(tracker, model), *_early_stop(cfg)])
        else:
            compile_model(model, cfg.stage1_lr)
            model.fit(whole(train_ds), validation_data=whole(val_ds), epochs=cfg.stage1_epochs,
                      initial_epoch=done[1], verbose=verbose, callbacks=[tracker, *_early_stop(cfg)])
        done[1] = cfg.stage1_epochs

    # Stage 2: top blocks unfrozen at a lower rate, starting from the best stage-1 weights.
    if cfg.unfreeze_blocks > 0 and cfg.stage2_epochs > done[2]:
        if best["weights"] is not None and done[2] == 0:
            model.set_weights(best["weights"])
        nets.unfreeze_top(model, cfg.unfreeze_blocks, cfg.keep_bn_frozen)
        lr: Any = cfg.stage2_lr
        per_epoch = max(1, int(train_ds.cardinality().numpy()))
        if cfg.cosine_decay:
            lr = keras.optimizers.schedules.CosineDecay(cfg.stage2_lr, per_epoch * cfg.stage2_epochs, alpha=0.05)
        compile_model(model, lr)
        if done[2]:
            # A resumed run continues its learning-rate schedule where it stopped (the optimizer's
            # moments start afresh: they are not checkpointed).
            model.optimizer.iterations.assign(per_epoch * done[2])
        tracker = _Tracker(cfg, folder, history, 2, best)
        model.fit(whole(train_ds), validation_data=whole(val_ds), epochs=cfg.stage2_epochs, initial_epoch=done[2],
                  verbose=verbose, callbacks=[tracker, *_early_stop(cfg)])

    if best["weights"] is not None and cfg.keep == "best":
        model.set_weights(best["weights"])
    if folder:
        (folder / "history.json").write_text(json.dumps(history, indent=1))
    return FitResult(model=model, history=history, best_epoch=int(best["epoch"]),
                     best_value=float(best["value"]))


class _FullModelTracker(keras.callbacks.Callback):
    """Runs a _Tracker for the full model while Keras fits only its head on features."""

    def __init__(self, tracker: _Tracker, full_model: keras.Model):
        super().__init__()
        self.tracker, self.full_model = tracker, full_model

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        self.tracker.set_model(self.full_model)
        self.tracker.on_epoch_end(epoch, logs)
