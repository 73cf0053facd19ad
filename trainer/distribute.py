"""Training on more than one device: ``tf.distribute.MirroredStrategy``, with the batch and rate scaled.

``face-train fit TASK --devices auto|N|NAME,NAME [--lr-scaling linear|sqrt|none]``:

- ``auto`` (default): every visible GPU when there are two or more (MirroredStrategy: one model
  replica per GPU, gradients all-reduced each step); otherwise TensorFlow's default one-device
  strategy, and nothing changes.
- ``N``: the first N GPUs; on a machine without GPUs, N logical CPU devices (to check the
  multi-device path anywhere; not faster: TensorFlow already spreads one device over every core).
- ``GPU:0,GPU:1`` (or ``/gpu:0,...``): exactly these devices.

The rules, with R replicas:

- **Batch**: ``--batch`` is the batch of one device. Each step takes ``batch x R`` examples
  (``R`` slices of ``--batch``), so a device's memory use and speed per step stay what they were
  on one device and R devices go through an epoch in 1/R of the steps.
- **Learning rate** (``--lr-scaling``): ``linear`` (default) multiplies every learning rate by R,
  the rule of Goyal et al. 2017 ("Accurate, Large Minibatch SGD"): a step now averages the
  gradient over R times as many examples, so it may move R times as far; ``sqrt`` multiplies by
  sqrt(R) (gentler, often better with Adam for large R); ``none`` keeps the rates given.

The run folder is the same (docs/run-format.md); ``run.yaml`` ``training.distribute`` records the
devices, replicas, per-device and global batch and the rates used. Checkpoints are plain Keras
weights, so a run resumes on any number of devices.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from typing import Any, Optional

from .errors import DataError

LR_RULES = ("linear", "sqrt", "none")
LR_ARGS = ("lr", "lr1", "lr2")    # the learning-rate options of the tasks that support --devices
# One MirroredStrategy per device set and process: two instances over the same devices in one
# process can collide in their collective-op keys (TensorFlow aborts with a shape mismatch).
_MIRRORED: dict[tuple[str, ...], Any] = {}


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--devices`` and ``--lr-scaling`` (a task that adds them runs under the chosen strategy)."""
    parser.add_argument("--devices", default="auto", metavar="auto|N|NAMES",
                        help="'auto': every GPU when there are 2 or more (MirroredStrategy), else one device; N: the "
                             "first N GPUs (no GPU: N logical CPU devices, for checking); or GPU:0,GPU:1. --batch is "
                             "per device: each step takes batch x devices examples")
    parser.add_argument("--lr-scaling", default="linear", choices=LR_RULES,
                        help="learning rates with R devices: linear = x R (Goyal et al. 2017, default), "
                             "sqrt = x sqrt(R), none = as given")


@dataclass
class DevicePlan:
    """The strategy a fit runs under and the devices it spans."""

    strategy: Any
    devices: list[str] = field(default_factory=list)

    @property
    def replicas(self) -> int:
        """Return the number of model replicas (1 on the default strategy)."""
        return int(self.strategy.num_replicas_in_sync)


def lr_factor(rule: str, replicas: int) -> float:
    """Return the learning-rate multiplier of ``rule`` for ``replicas`` devices."""
    if rule not in LR_RULES:
        raise DataError(f"--lr-scaling {rule!r} is not one of {', '.join(LR_RULES)}")
    if rule == "linear":
        return float(replicas)
    if rule == "sqrt":
        return math.sqrt(replicas)
    return 1.0


def _mirrored(names: list[str]) -> Any:
    import tensorflow as tf

    key = tuple(names)
    if key not in _MIRRORED:
        _MIRRORED[key] = tf.distribute.MirroredStrategy(names)
    return _MIRRORED[key]


def _split_cpu(n: int) -> list[str]:
    """Split the CPU into ``n`` logical devices (must run before TensorFlow initialises its devices)."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is None or len(current) != n:
        try:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
        except RuntimeError:
            raise DataError(f"--devices {n}: TensorFlow's devices were already initialised in this process, so the "
                            "CPU cannot be split any more; run face-train in a fresh process") from None
    return [d.name for d in tf.config.list_logical_devices("CPU")][:n]


def plan_devices(spec: str = "auto") -> DevicePlan:
    """Return the DevicePlan for a ``--devices`` value (see the module docstring)."""
    import tensorflow as tf

    spec = (spec or "auto").strip()
    gpus = tf.config.list_physical_devices("GPU")
    if spec == "auto":
        if len(gpus) >= 2:
            names = [f"/gpu:{i}" for i in range(len(gpus))]
            return DevicePlan(_mirrored(names), names)
        return DevicePlan(tf.distribute.get_strategy(), [])
    if spec.isdigit():
        n = int(spec)
        if n < 1:
            raise DataError("--devices: give at least 1")
        if n == 1:
            return DevicePlan(tf.distribute.get_strategy(), [])
        if gpus:
            if len(gpus) < n:
                raise DataError(f"--devices {n}: only {len(gpus)} GPU(s) visible")
            names = [f"/gpu:{i}" for i in range(n)]
        else:
            names = _split_cpu(n)
        return DevicePlan(_mirrored(names), names)
    names = [("/" + n.strip().lower()) if not n.strip().startswith("/") else n.strip().lower()
             for n in spec.split(",") if n.strip()]
    known = {d.name.lower().replace("/physical_device:", "/") for d in tf.config.list_physical_devices()}
    unknown = [n for n in names if n not in known and n.replace("/device:", "/") not in known]
    if unknown:
        raise DataError(f"--devices: no device {unknown[0]} here (have: {', '.join(sorted(known))})")
    if len(names) == 1:
        return DevicePlan(tf.distribute.OneDeviceStrategy(names[0]), names)
    return DevicePlan(_mirrored(names), names)


def scale_for_devices(args: argparse.Namespace, plan: DevicePlan) -> dict[str, Any]:
    """Turn ``args.batch`` into the global batch and scale the learning rates; return what run.yaml records."""
    replicas = plan.replicas
    factor = lr_factor(getattr(args, "lr_scaling", "linear"), replicas)
    record: dict[str, Any] = {"strategy": type(plan.strategy).__name__, "replicas": replicas,
                              "devices": plan.devices, "per_device_batch": int(args.batch),
                              "global_batch": int(args.batch) * replicas,
                              "lr_scaling": getattr(args, "lr_scaling", "linear"), "lr_factor": round(factor, 6)}
    args.batch = int(args.batch) * replicas
    for name in LR_ARGS:
        value = getattr(args, name, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            record[f"{name}_given"] = value
            setattr(args, name, value * factor)
            record[name] = value * factor
    return record


def without_short_batches(ds: Any, replicas: int) -> Any:
    """Return the batched dataset ``ds`` without batches of fewer than ``replicas`` examples (``ds`` itself on
    one replica). A strategy splits each batch over its replicas, so such a batch (an epoch's last one)
    leaves a replica with none, and TensorFlow 2.21 fails on an empty replica batch ("Incompatible
    shapes: [..] vs. [0,...]"). At most ``replicas - 1`` examples an epoch are left out."""
    if replicas <= 1:
        return ds
    import tensorflow as tf

    return ds.filter(lambda x, *_: tf.shape(tf.nest.flatten(x)[0])[0] >= replicas)


def without_short_batch_rows(arrays: Any, batch: int, replicas: int) -> Any:
    """Return ``arrays`` (a structure of equal-length arrays that Keras cuts into batches of ``batch``) without
    the rows of a last batch of fewer than ``replicas`` rows: :func:`without_short_batches` for arrays."""
    import tensorflow as tf

    rows = len(tf.nest.flatten(arrays)[0])
    short = rows % batch
    if replicas <= 1 or short == 0 or short >= replicas:
        return arrays
    return tf.nest.map_structure(lambda a: a[:rows - short], arrays)


def describe(record: dict[str, Any]) -> str:
    """Return one line saying how the fit is spread over devices."""
    rates = ", ".join(f"{k} {record[k]:.3g}" for k in LR_ARGS if k in record)
    return (f"training on {record['replicas']} devices ({', '.join(record['devices'])}) with {record['strategy']}: "
            f"batch {record['per_device_batch']} per device = {record['global_batch']} per step; learning rates "
            f"x{record['lr_factor']:.3g} ({record['lr_scaling']} rule): {rates}")


def plan_for(args: argparse.Namespace) -> Optional[DevicePlan]:
    """Return the DevicePlan of a parsed ``face-train fit`` command, or None when its task has no --devices."""
    if not hasattr(args, "devices"):
        return None
    return plan_devices(args.devices)
