"""two_stage_fit returns the best epoch's weights by the monitor, or the last epoch's with keep='last'."""
from __future__ import annotations

import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from trainer import nets  # noqa: E402
from trainer.fit import FitConfig, two_stage_fit  # noqa: E402


def _fit(folder, **settings):
    keras.utils.set_random_seed(0)
    bb = nets.build_backbone("custom_cnn", 0.25, 32)
    out = keras.layers.Dense(1, activation="sigmoid")(nets.pooled_features(bb))
    model = keras.Model(bb.input, out)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (64, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 2, (64, 1)).astype(np.float32)  # noise labels: validation loss wanders
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    val = tf.data.Dataset.from_tensor_slices((x[::-1], 1 - y)).batch(16)
    cfg = FitConfig(stage1_epochs=6, stage1_lr=3e-2, unfreeze_blocks=0, **settings)
    return two_stage_fit(model, lambda m, lr: m.compile(keras.optimizers.Adam(lr), "binary_crossentropy"),
                         train, val, cfg, folder, verbose=0)


@pytest.mark.parametrize("keep", ["best", "last"])
def test_kept_weights_are_the_chosen_checkpoint(tmp_path, keep):
    result = _fit(tmp_path, patience=99, keep=keep)
    val_loss = json.loads((tmp_path / "history.json").read_text())["val_loss"]
    assert result.best_epoch == int(np.argmin(val_loss))
    assert result.best_epoch != len(val_loss) - 1  # else best and last are the same weights
    reference = keras.models.clone_model(result.model)
    reference.load_weights(str(tmp_path / f"{keep}.weights.h5"))
    for got, want in zip(result.model.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_patience_zero_runs_every_epoch(tmp_path):
    """Keras stops at the first epoch without improvement when patience=0; FitConfig takes 0 as 'never stop'."""
    val_loss = _fit(tmp_path, patience=0, keep="last").history["val_loss"]
    assert len(val_loss) == 6
    assert any(b >= a for a, b in zip(val_loss, val_loss[1:]))  # an epoch without improvement was passed


class _LearningRates(keras.callbacks.Callback):
    """Records the learning rate each stage-2 epoch starts with."""

    def __init__(self, seen):
        super().__init__()
        self.seen = seen

    def on_epoch_begin(self, epoch, logs=None):
        opt = self.model.optimizer
        self.seen.append(float(keras.ops.convert_to_numpy(opt.learning_rate)))


def test_a_resumed_stage_two_continues_its_cosine_schedule(tmp_path, monkeypatch):
    """Stopped after 1 and after 3 of 4 fine-tuning epochs and run again each time, the learning rate goes
    on where it stopped, and the checkpoint counts the epochs done across the resumes."""
    import trainer.fit as fitting

    def run(folder, epochs_cap):
        seen: list[float] = []
        real_fit = keras.Model.fit

        def fit(self, *args, callbacks=(), epochs=1, **kwargs):
            return real_fit(self, *args, callbacks=[*callbacks, _LearningRates(seen)],
                            epochs=min(epochs, epochs_cap), **kwargs)

        monkeypatch.setattr(keras.Model, "fit", fit)
        keras.utils.set_random_seed(0)
        bb = nets.build_backbone("custom_cnn", 0.25, 32)
        model = keras.Model(bb.input, keras.layers.Dense(1, activation="sigmoid")(nets.pooled_features(bb)))
        rng = np.random.default_rng(0)
        x = rng.uniform(0, 255, (64, 32, 32, 3)).astype(np.float32)
        y = rng.integers(0, 2, (64, 1)).astype(np.float32)
        train = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
        cfg = FitConfig(stage1_epochs=0, stage2_epochs=4, stage2_lr=1e-2, unfreeze_blocks=99, patience=0,
                        keep="last", cosine_decay=True)
        fitting.two_stage_fit(model, lambda m, lr: m.compile(keras.optimizers.Adam(lr), "binary_crossentropy"),
                              train, train, cfg, folder, verbose=0)
        monkeypatch.undo()
        done = json.loads((folder / "state.json").read_text())["epochs_done_in_stage"]
        return seen, done

    whole, done_whole = run(tmp_path / "whole", 99)
    # stopped twice, after epoch 1 and after epoch 3, then run to the end
    parts = [run(tmp_path / "split", cap) for cap in (1, 3, 99)]
    assert len(whole) == 4 and [len(seen) for seen, _ in parts] == [1, 2, 1]
    np.testing.assert_allclose([rate for seen, _ in parts for rate in seen], whole, rtol=1e-5)
    assert whole[3] < whole[0] / 2
    # the checkpoint counts the stage's epochs done so far, across resumes
    assert done_whole == 4 and [done for _, done in parts] == [1, 3, 4]
