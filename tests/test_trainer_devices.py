"""face-train on more than one device: MirroredStrategy on two logical CPU devices against one device.

The comparison runs in a fresh process (tests/helpers/mirrored_fit.py), because TensorFlow can
split the CPU into logical devices only before it initialises them.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import REPO, SHARED
from trainer.distribute import DevicePlan, describe, lr_factor, scale_for_devices, without_short_batches


class _Replicas:
    def __init__(self, n: int):
        self.num_replicas_in_sync = n


def test_batch_and_learning_rate_rules() -> None:
    args = argparse.Namespace(batch=64, lr1=1e-3, lr2=2e-4, lr_scaling="linear")
    record = scale_for_devices(args, DevicePlan(_Replicas(4), ["/gpu:0", "/gpu:1", "/gpu:2", "/gpu:3"]))
    assert args.batch == 256 and args.lr1 == pytest.approx(4e-3) and args.lr2 == pytest.approx(8e-4)
    assert record["per_device_batch"] == 64 and record["global_batch"] == 256 and record["lr1_given"] == 1e-3
    assert "batch 64 per device = 256 per step" in describe(record) and "x4 (linear rule)" in describe(record)
    assert lr_factor("sqrt", 4) == 2.0 and lr_factor("none", 4) == 1.0 and lr_factor("linear", 1) == 1.0


def test_a_last_batch_too_small_for_every_replica_is_left_out() -> None:
    """TensorFlow 2.21 fails on a replica given no example; a batch of fewer examples than replicas would."""
    tf = pytest.importorskip("tensorflow")
    images = tf.data.Dataset.from_tensor_slices((np.zeros((33, 4, 4, 3), np.float32), {"y": np.arange(33)}))
    sizes = lambda ds: [int(x.shape[0]) for x, _ in ds]   # noqa: E731
    assert sizes(without_short_batches(images.batch(16), 2)) == [16, 16]        # 1 example left out
    assert sizes(without_short_batches(images.batch(15), 2)) == [15, 15, 3]     # 3 can be split over 2
    assert sizes(without_short_batches(images.batch(16), 1)) == [16, 16, 1]     # one device: all of it


@pytest.mark.slow  # ~30 s: six tiny fits and one face-train fit in a fresh TensorFlow process
def test_two_logical_devices_train_to_the_one_device_loss_curve(tmp_path: Path) -> None:
    celeba = SHARED / "data" / "celeba"
    cmd = [sys.executable, "-m", "tests.helpers.mirrored_fit", str(tmp_path)]
    if (celeba / "list_attr_celeba.txt").is_file():
        cmd.append(str(celeba))
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "curves.json").read_text())
    assert len(report["devices"]) == 2
    one, two = report["two_stage"]["one"], report["two_stage"]["two"]
    print("\ntwo-stage loss, 1 device :", np.round(one["loss"], 5))
    print("                2 devices:", np.round(two["loss"], 5))
    # frozen backbone (stage 1, 3 epochs): the same arithmetic, split over two replicas
    np.testing.assert_allclose(two["loss"][:3], one["loss"][:3], rtol=1e-4)
    # fine-tuning (stage 2) normalises each replica's half batch by its own BatchNorm statistics
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=1e-2)
    np.testing.assert_allclose(two["val_loss"], one["val_loss"], rtol=1e-2)
    # the multi-task trainer's own loss: scaled per replica, so the summed gradient is the mean's
    m1, m2 = report["multitask"]["one"], report["multitask"]["two"]
    np.testing.assert_allclose(m2["loss"], m1["loss"], rtol=1e-3)
    np.testing.assert_allclose(m2["plain_loss"], m1["plain_loss"], rtol=1e-3)
    assert m1["loss"][-1] < m1["loss"][0] - 0.5      # it did learn
    # resume on two devices: epochs 1-2 kept from the checkpoint, epoch 3 trained on top
    first, again = report["resume"]["first"]["loss"], report["resume"]["again"]["loss"]
    assert len(again) == 3 and again[:2] == first
    assert "resuming from" in done.stdout
    if "cli_exit" not in report:
        return
    assert report["cli_exit"] == 0
    info = yaml.safe_load((tmp_path / "run" / "run.yaml").read_text())
    dist = info["training"]["distribute"]
    assert dist["replicas"] == 2 and dist["strategy"] == "MirroredStrategy"
    assert (dist["per_device_batch"], dist["global_batch"], info["training"]["batch"]) == (8, 16, 16)
    assert dist["lr_scaling"] == "sqrt" and dist["lr1"] == pytest.approx(dist["lr1_given"] * 2 ** 0.5)
    assert info["history"]["stage"] == [1, 2] and (tmp_path / "run" / "model.keras").is_file()
    assert "training on 2 devices" in done.stdout
