"""Distortion classifier task: labelled synthetic copies of real face crops, and a model that learns them."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.conftest import shared_path
from trainer.distort import LABELS
from trainer.faces import FaceCropper
from trainer.tasks.distortion import HEAD, build_classifier, every_distortion, labelled_copies
from trainer.tasks.recognition import CROP


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    folder = shared_path("data", "celeba", "img_align_celeba")
    cropper = FaceCropper(spec=CROP)
    return np.stack([cropper.crop(cv2.imread(str(p)))[0] for p in sorted(folder.glob("*.jpg"))[:60]])


def test_copies_carry_their_label(crops: np.ndarray) -> None:
    x, y = labelled_copies(crops, copies=2, size=64, seed=3)
    assert x.shape == (120, 64, 64, 3) and x.dtype == np.uint8
    assert set(np.unique(y)) <= set(range(len(LABELS))) and len(np.unique(y)) >= 4
    first = [k for k in range(60) if y[k] == LABELS.index("clean")]
    assert first and np.array_equal(x[first[0]], cv2.resize(crops[first[0]], (64, 64), interpolation=cv2.INTER_AREA))
    dark = [k for k in range(60) if y[k] == LABELS.index("dark")]
    assert dark and x[dark[0]].mean() < 0.6 * cv2.resize(crops[dark[0]], (64, 64)).mean()


def test_balanced_test_set_has_every_label_once_per_face(crops: np.ndarray) -> None:
    x, y = every_distortion(crops[:10], 64, seed=1)
    assert x.shape[0] == 10 * len(LABELS)
    assert np.bincount(y).tolist() == [10] * len(LABELS)


@pytest.mark.slow  # ~20 s of training on the CPU
def test_classifier_learns_the_distortions(crops: np.ndarray) -> None:
    import keras

    keras.utils.set_random_seed(0)
    x, y = labelled_copies(crops, copies=6, size=64, seed=0)
    model = build_classifier(64, 0.5, len(LABELS))
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss={HEAD: "sparse_categorical_crossentropy"})
    model.fit(x, {HEAD: y}, batch_size=32, epochs=8, verbose=0)
    tx, ty = every_distortion(crops[:30], 64, seed=9)   # new draws of the same faces
    pred = np.asarray(model.predict(tx, verbose=0)[HEAD]).argmax(1)
    assert (pred == ty).mean() > 0.5   # chance is 1/6
