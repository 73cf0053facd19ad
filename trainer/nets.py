"""Backbones, heads and fine-tuning helpers.

Every model built here takes 0..255 RGB float32 pixels and holds its own preprocessing
layer, so full-int8 conversion gives a uint8 input with scale 1 and zero point 0
(docs/run-format.md). The backbone is a nested Keras model named ``backbone`` whose output
is the last convolutional feature map; :func:`pooled_features` adds global average pooling.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import keras
from keras import layers

from .errors import DataError

BACKBONES = ("mobilenet_v2", "mobilenet_v3_small", "custom_cnn")
IMAGENET_MOBILENET_V2 = Path(__file__).resolve().parents[2] / "shared" / "weights" / \
    "mobilenet_v2_1.0_no_top_imagenet.weights.h5"


def default_weights(name: str, alpha: float) -> Optional[Path]:
    """Return the shared ImageNet weights path that fits (name, alpha), or None (from scratch)."""
    if name == "mobilenet_v2" and abs(alpha - 1.0) < 1e-6 and IMAGENET_MOBILENET_V2.is_file():
        return IMAGENET_MOBILENET_V2
    return None


def _custom_cnn(size: int, alpha: float) -> keras.Model:
    inp = keras.Input((size, size, 3))
    x = inp
    for filters in (32, 64, 128, 256):
        f = max(8, int(filters * alpha))
        x = layers.Conv2D(f, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.Conv2D(f, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.MaxPooling2D()(x)
    return keras.Model(inp, x, name="custom_cnn")


def build_backbone(name: str = "mobilenet_v2", alpha: float = 1.0, input_size: int = 96,
                   weights: Optional[str | Path] = None) -> keras.Model:
    """Return a model 0..255 RGB (input_size^2 x 3) -> last conv feature map, preprocessing inside.

    ``weights`` is a ``.weights.h5`` file for the bare backbone (e.g. the shared ImageNet
    MobileNetV2 1.0 no-top file) or None for random initialisation. The nested base model
    is named ``backbone`` so :func:`unfreeze_top` and Grad-CAM can find it.
    """
    shape = (input_size, input_size, 3)
    if name == "mobilenet_v2":
        base = keras.applications.MobileNetV2(input_shape=shape, alpha=alpha, include_top=False,
                                              weights=None)
    elif name == "mobilenet_v3_small":
        base = keras.applications.MobileNetV3Small(input_shape=shape, alpha=alpha, include_top=False,
                                                   weights=None, minimalistic=False,
                                                   include_preprocessing=False)
    elif name == "custom_cnn":
        base = _custom_cnn(input_size, alpha)
    else:
        raise DataError(f"--backbone {name!r} is not one of {', '.join(BACKBONES)}")
    if weights:
        if not Path(weights).is_file():
            raise DataError(f"backbone weights {weights} do not exist")
        try:
            base.load_weights(str(weights))
        except Exception as exc:
            raise DataError(f"backbone weights {weights} do not fit {name} alpha {alpha}: "
                            f"{str(exc).splitlines()[0]}") from None
    base.name = "backbone"
    inp = keras.Input(shape, name="image")
    # Scale 0..255 to [-1, 1] inside the model (what MobileNet's preprocess_input does).
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")(inp)
    out = base(x)
    return keras.Model(inp, out, name=f"{name}_{alpha:g}_{input_size}")


def pooled_features(backbone: keras.Model) -> keras.KerasTensor:
    """Return the global-average-pooled output tensor of a model from :func:`build_backbone`."""
    return layers.GlobalAveragePooling2D(name="pool")(backbone.output)


def dense_trunk(x: keras.KerasTensor, units: int = 256, dropout: float = 0.3,
                name: str = "trunk") -> keras.KerasTensor:
    """Return ``x`` through Dense(no bias) + BatchNorm + ReLU + Dropout: the shared head trunk."""
    if dropout:
        x = layers.Dropout(dropout / 2, name=f"{name}_in_dropout")(x)
    x = layers.Dense(units, use_bias=False, name=f"{name}_dense")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    x = layers.ReLU(name=f"{name}_relu")(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return x


def sigmoid_head(x: keras.KerasTensor, labels: int, name: str,
                 bias_init: Optional[list[float]] = None) -> keras.KerasTensor:
    """Return a Dense sigmoid output called ``name`` (its layer name is the head/signature name).

    ``bias_init`` (log-odds of the label priors) starts training at the base rates.
    """
    init = keras.initializers.Constant(bias_init) if bias_init is not None else "zeros"
    return layers.Dense(labels, activation="sigmoid", bias_initializer=init, name=name)(x)


def backbone_of(model: keras.Model) -> keras.Model:
    """Return the nested model named ``backbone`` inside ``model`` (searched recursively)."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            if layer.name == "backbone":
                return layer
            try:
                return backbone_of(layer)
            except KeyError:
                pass
    raise KeyError("no nested 'backbone' model")


def set_bn_momentum(model: keras.Model, momentum: float = 0.9) -> int:
    """Set every BatchNormalization momentum in ``model`` (recursively); return how many.

    Keras' 0.99 default moves the moving statistics too slowly for a few fine-tuning epochs.
    """
    count = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            count += set_bn_momentum(layer, momentum)
        elif isinstance(layer, layers.BatchNormalization):
            layer.momentum = momentum
            count += 1
    return count


_BLOCK = re.compile(r"^(?:block_(\d+)_|expanded_conv_?(\d*)_)")


def _block_ids(base: keras.Model) -> list[int]:
    """Return a block number per layer of ``base``: stem = 0, block k = k + 1, layers after the last block = last + 1."""
    ids, current, last_block_layer = [], 0, -1
    for i, layer in enumerate(base.layers):
        m = _BLOCK.match(layer.name)
        if m:
            digits = next((g for g in m.groups() if g is not None), "")
            current = max(current, (int(digits) if digits else 0) + 1)
            last_block_layer = i
        ids.append(current)
    if last_block_layer >= 0:
        ids[last_block_layer + 1:] = [current + 1] * (len(ids) - last_block_layer - 1)
    return ids


def unfreeze_top(model: keras.Model, n_blocks: int, keep_bn_frozen: bool = False) -> int:
    """Freeze the backbone, then make its top ``n_blocks`` blocks trainable; return trainable layer count.

    n_blocks <= 0 freezes the whole backbone; a very large n unfreezes all of it. The
    final 1x1 expansion conv after the last block counts as one block. For the custom CNN
    (no named blocks) each Conv2D counts as a block boundary.
    """
    base = backbone_of(model)
    base.trainable = True
    ids = _block_ids(base)
    if len(set(ids)) <= 1:  # custom CNN: count Conv2D layers from the top
        ids, k = [], 0
        for layer in base.layers:
            k += isinstance(layer, layers.Conv2D)
            ids.append(k)
    distinct = sorted(set(ids))
    keep = set(distinct[-n_blocks:]) if n_blocks > 0 else set()
    count = 0
    for layer, block in zip(base.layers, ids):
        train = block in keep and not (keep_bn_frozen and isinstance(layer, layers.BatchNormalization))
        layer.trainable = train
        count += int(train and bool(layer.weights))
    return count


def freeze_backbone(model: keras.Model) -> None:
    """Make the whole nested backbone non-trainable (BatchNorm then runs in inference mode)."""
    backbone_of(model).trainable = False
