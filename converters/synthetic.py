"""Tiny synthetic training runs (docs/run-format.md) for tests and the mode benchmark.

The images are synthetic textures whose labels follow simple pixel statistics, so a
small network learns them in a few epochs and int8 parity is measured on a model that
makes confident decisions. They are NOT face models; nothing here is shipped.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

TASKS = ("attributes", "multitask", "embedding", "distortion")
BACKBONES = ("tiny", "mobilenet_v2", "mobilenet_v3_small")


def _images(rng: np.random.Generator, n: int, size: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Return uint8 RGB textures and the latent factors their labels derive from."""
    base = rng.uniform(20, 235, size=(n, 1, 1, 3))
    noise = rng.normal(0, 18, size=(n, size, size, 3))
    quadrant = rng.integers(0, 4, size=n)
    img = base + noise
    half = size // 2
    for i, q in enumerate(quadrant):
        y, x = (q // 2) * half, (q % 2) * half
        img[i, y:y + half, x:x + half] += 60
    img = np.clip(img, 0, 255).astype(np.uint8)
    return img, {"base": base.reshape(n, 3), "quadrant": quadrant}


def _labels(task: str, faces: np.ndarray, latent: dict[str, np.ndarray], rng: np.random.Generator,
            identities: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Return (possibly modified faces, label arrays keyed by head name) for ``task``."""
    if task == "attributes":
        return faces, {"attributes": (latent["base"] > 128).astype(np.int64)}
    if task == "multitask":
        age = latent["base"].mean(axis=1) / 255.0 * 80.0
        return faces, {"gender": (latent["base"][:, :1] > 128).astype(np.int64),
                       "emotion": latent["quadrant"].astype(np.int64), "age": age.astype(np.float32)}
    if task == "distortion":
        kind = rng.integers(0, 3, size=len(faces))
        out = faces.astype(np.float32)
        out[kind == 1] *= 0.3                                          # dark
        out[kind == 2] += rng.normal(0, 60, size=out[kind == 2].shape)  # noisy
        return np.clip(out, 0, 255).astype(np.uint8), {"distortion": kind.astype(np.int64)}
    # embedding: each identity is a fixed random pattern, each face a noisy view of one
    size = faces.shape[1]
    protos = np.random.default_rng(1234).uniform(0, 255, size=(identities, size, size, 3))
    ids = rng.integers(0, identities, size=len(faces))
    views = protos[ids] * 0.8 + faces.astype(np.float32) * 0.2
    return np.clip(views, 0, 255).astype(np.uint8), {"embedding": ids.astype(np.int64)}


def _outputs_spec(task: str) -> list[dict[str, Any]]:
    if task == "attributes":
        return [{"name": "attributes", "kind": "sigmoid", "labels": ["red", "green", "blue"],
                 "thresholds": [0.5, 0.45, 0.55], "unreliable": ["blue"]}]
    if task == "multitask":
        return [{"name": "age", "kind": "regression", "unit": "years"},
                {"name": "gender", "kind": "sigmoid", "labels": ["male"], "thresholds": [0.5]},
                {"name": "emotion", "kind": "softmax", "labels": ["tl", "tr", "bl", "br"]}]
    if task == "distortion":
        return [{"name": "distortion", "kind": "softmax", "labels": ["clean", "dark", "noisy"]}]
    return [{"name": "embedding", "kind": "embedding"}]


def _trunk(backbone: str, size: int) -> Callable[[Any], Any]:
    import keras

    def tiny(x: Any) -> Any:
        x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(x)
        x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
        x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
        x = keras.layers.AveragePooling2D(pool_size=max(1, size // 16))(x)
        return keras.layers.Flatten()(x)

    def v2(x: Any) -> Any:
        x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(x)
        net = keras.applications.MobileNetV2(input_shape=(size, size, 3), alpha=0.35, include_top=False,
                                             weights=None, pooling="avg")
        return net(x)

    def v3(x: Any) -> Any:
        # include_preprocessing adds the Rescaling layer; minimalistic=False keeps hard-swish and SE.
        net = keras.applications.MobileNetV3Small(input_shape=(size, size, 3), alpha=0.75, minimalistic=False,
                                                  include_top=False, weights=None, pooling="avg",
                                                  include_preprocessing=True)
        return net(x)

    return {"tiny": tiny, "mobilenet_v2": v2, "mobilenet_v3_small": v3}[backbone]


def _build(task: str, backbone: str, size: int, identities: int) -> tuple[Any, Any, dict[str, Any]]:
    """Return (training model, exported model, losses) for ``task``."""
    import keras

    inp = keras.Input((size, size, 3), name="image")
    feat = _trunk(backbone, size)(inp)
    dense = lambda n, act, name: keras.layers.Dense(n, activation=act, name=name)(feat)  # noqa: E731
    if task == "attributes":
        outs = {"attributes": dense(3, "sigmoid", "attributes")}
        losses = {"attributes": "binary_crossentropy"}
    elif task == "multitask":
        age = keras.layers.Dense(1, name="age_raw")(feat)
        outs = {"age": keras.layers.Rescaling(40.0, offset=40.0, name="age")(age),
                "gender": dense(1, "sigmoid", "gender"), "emotion": dense(4, "softmax", "emotion")}
        losses = {"age": "mae", "gender": "binary_crossentropy", "emotion": "sparse_categorical_crossentropy"}
    elif task == "distortion":
        outs = {"distortion": dense(3, "softmax", "distortion")}
        losses = {"distortion": "sparse_categorical_crossentropy"}
    else:
        emb = keras.layers.UnitNormalization(name="embedding")(keras.layers.Dense(16, name="embedding_raw")(feat))
        logits = keras.layers.Dense(identities, activation="softmax", name="identity")(emb)
        train = keras.Model(inp, {"identity": logits})
        return train, keras.Model(inp, {"embedding": emb}), {"identity": "sparse_categorical_crossentropy"}
    model = keras.Model(inp, outs)
    return model, model, losses


def make_run(out: str | Path, task: str = "attributes", backbone: str = "tiny", size: int = 32,
             n_train: int = 600, n_heldout: int = 150, epochs: int = 4, seed: int = 0,
             identities: int = 8) -> Path:
    """Write a synthetic RUN folder for ``task`` to ``out`` (trained ``epochs`` epochs); return its path."""
    import keras

    if task not in TASKS:
        raise ValueError(f"task {task!r} is not one of {TASKS}")
    out = Path(out)
    (out / "samples").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    keras.utils.set_random_seed(seed)
    faces, latent = _images(rng, n_train + n_heldout, size)
    faces, labels = _labels(task, faces, latent, rng, identities)
    train_model, model, losses = _build(task, backbone, size, identities)
    if epochs > 0:
        train_model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=losses)
    targets = labels if task != "embedding" else {"identity": labels["embedding"]}
    history = {}
    if epochs > 0:  # epochs=0: an untrained network, enough to check that its ops convert
        history = train_model.fit(faces[:n_train].astype(np.float32), {k: v[:n_train] for k, v in targets.items()},
                                  epochs=epochs, batch_size=32, verbose=0).history
    model.save(out / "model.keras")
    np.save(out / "samples" / "train_faces.npy", faces[:n_train])
    np.save(out / "samples" / "heldout_faces.npy", faces[n_train:])
    np.savez(out / "samples" / "heldout_labels.npz", **{k: v[n_train:] for k, v in labels.items()})
    run = {"name": f"synthetic-{task}", "task": task, "version": "0.0.1", "created": "2026-01-01T00:00:00Z",
           "input": {"height": size, "width": size, "channels": 3, "color": "rgb", "value_range": [0, 255],
                     "mean": [0.0], "std": [1.0], "dtype": "float32"},
           "crop": {"size": size, "margin": 0.25, "shift_y": 0.0},
           "outputs": _outputs_spec(task), "metrics": {"note": "synthetic textures, not faces"},
           "data": {"source": "converters.synthetic textures (not faces)", "licence": "generated, no licence"},
           "training": {"epochs": epochs, "backbone": backbone, "weights": "random init",
                        "command": f"python -c 'from converters.synthetic import make_run; "
                                   f"make_run(\"RUN\", \"{task}\", \"{backbone}\", {size})'"},
           "history": {k: [float(v) for v in vals] for k, vals in history.items()}, "seed": seed}
    (out / "run.yaml").write_text(yaml.safe_dump(run, sort_keys=False), encoding="utf-8")
    return out
