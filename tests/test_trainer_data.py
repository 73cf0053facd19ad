"""Trainer data readers, splits, face crops and augmentation: shared CelebA and tiny handmade files."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.crop import CropSpec
from trainer.data.celeba import read_celeba, select_attributes
from trainer.data.class_folders import read_class_folders
from trainer.data.splits import (TEST, TRAIN, VAL, choose_split, class_balanced_indices,
                                 identity_disjoint_split, split_indices)
from trainer.data.wflw import read_wflw
from trainer.errors import DataError
from trainer.faces import FaceCropper, cached_face_crops, crop_images

from .conftest import shared_path

NAMES = ["Male", "Smiling", "Young"]


def _face_jpg(path: Path, seed: int = 0) -> None:
    """Write a copy of a real shared CelebA face (tests must run on faces, not noise)."""
    src = shared_path("data", "celeba", "img_align_celeba")
    files = sorted(src.iterdir())
    path.write_bytes(files[seed].read_bytes())


def _tiny_celeba(root: Path, rows: list[str], count: int | None = None, images: int = 3) -> Path:
    (root / "img_align_celeba").mkdir(parents=True)
    for i in range(images):
        _face_jpg(root / "img_align_celeba" / f"{i + 1:06d}.jpg", i)
    header = [str(len(rows) if count is None else count), " ".join(NAMES)]
    (root / "list_attr_celeba.txt").write_text("\r\n".join(header + rows) + "\r\n")
    return root


GOOD_ROWS = ["000001.jpg  1 -1  1", "000002.jpg -1  1  1", "000003.jpg  1  1 -1"]


def test_shared_celeba_reads_with_identity_disjoint_partition():
    root = shared_path("data", "celeba")
    data = read_celeba(root)
    assert len(data) == 7943 and data.labels.shape == (7943, 40)
    assert set(np.unique(data.labels)) == {0, 1}
    assert [int((data.partition == s).sum()) for s in (TRAIN, VAL, TEST)] == [6320, 800, 823]
    ids = [set(data.identities[data.partition == s].tolist()) for s in (TRAIN, VAL, TEST)]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    male = data.labels[:, data.columns(["Male"])[0]].mean()
    assert abs(male - 0.417) < 0.01  # the README's positive rate
    assert select_attributes(data, "headline") == ["Male", "Smiling", "Eyeglasses", "Blond_Hair", "Young"]


def test_tiny_celeba_reads_and_falls_back_to_identity_split(tmp_path):
    root = _tiny_celeba(tmp_path / "c", GOOD_ROWS)
    data = read_celeba(root)
    assert data.files == ["000001.jpg", "000002.jpg", "000003.jpg"]
    assert data.labels.tolist() == [[1, 0, 1], [0, 1, 1], [1, 1, 0]]
    assert (data.partition == -1).all() and (data.identities == -1).all()
    split, how = choose_split(data.partition, data.identities, len(data), seed=3)
    assert "per-image" in how and len(split) == 3


@pytest.mark.parametrize("rows,count,message", [
    (GOOD_ROWS[:2] + ["000003.jpg 1 1"], None, "list_attr_celeba.txt:5: expected an image name and 3 values"),
    (GOOD_ROWS[:2] + ["000003.jpg 1 2 1"], None, "list_attr_celeba.txt:5: attribute values must be -1 or 1"),
    (GOOD_ROWS, 5, "line 1 announces 5 rows but 3 follow"),
    (GOOD_ROWS[:1] + ["000001.jpg 1 1 1"], None, ":4: image 000001.jpg is listed twice"),
])
def test_malformed_attr_file_names_file_and_line(tmp_path, rows, count, message):
    root = _tiny_celeba(tmp_path / "c", rows, count)
    with pytest.raises(DataError, match=message.replace(".", r"\.")):
        read_celeba(root)


def test_missing_label_file_and_missing_image(tmp_path):
    root = _tiny_celeba(tmp_path / "c", GOOD_ROWS + ["000004.jpg 1 1 1"])
    with pytest.raises(DataError, match=r"list_attr_celeba.txt:6: image 000004.jpg is listed but not in"):
        read_celeba(root)
    data = read_celeba(root, missing="skip")
    assert len(data) == 3 and data.missing == ["000004.jpg"]
    (root / "list_attr_celeba.txt").unlink()
    with pytest.raises(DataError, match="list_attr_celeba.txt: label file is missing"):
        read_celeba(root)


def test_unknown_attribute_and_bad_partition(tmp_path):
    root = _tiny_celeba(tmp_path / "c", GOOD_ROWS)
    data = read_celeba(root)
    with pytest.raises(DataError, match="no attribute named Smilling"):
        select_attributes(data, "Male,Smilling")
    (root / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg x\n")
    with pytest.raises(DataError, match=r"list_eval_partition.txt:2: partition must be an integer"):
        read_celeba(root)


def test_corrupt_image_is_skipped_and_counted(tmp_path):
    root = _tiny_celeba(tmp_path / "c", GOOD_ROWS)
    (root / "img_align_celeba" / "000002.jpg").write_bytes(b"not a jpeg at all")
    data = read_celeba(root)
    crops, ok, stats = crop_images(data.paths, FaceCropper(CropSpec(64)), progress=False)
    assert ok.tolist() == [True, False, True]
    assert stats.corrupt == 1 and stats.corrupt_files[0].endswith("000002.jpg")
    assert stats.detected + stats.fallback == 2 and crops.shape == (3, 64, 64, 3)


def test_splits_identity_disjoint_balanced_and_empty():
    ids = np.repeat(np.arange(50), 4)
    split = identity_disjoint_split(ids, seed=7)
    for s in (TRAIN, VAL, TEST):
        for t in (TRAIN, VAL, TEST):
            if s != t:
                assert not set(ids[split == s]) & set(ids[split == t])
    assert np.array_equal(split, identity_disjoint_split(ids, seed=7))
    with pytest.raises(DataError, match="the val split is empty"):
        split_indices(np.zeros(5, np.int8), VAL, "tiny")
    labels = np.zeros((1000, 2), np.int8)
    labels[:20, 0] = 1  # a rare attribute: 2 %
    labels[:, 1] = np.arange(1000) % 2
    drawn = class_balanced_indices(labels, seed=1, power=1.0)
    assert labels[drawn, 0].mean() > 0.2


def test_face_cropper_detects_pads_and_caches(tmp_path):
    img_dir = shared_path("data", "celeba", "img_align_celeba")
    paths = sorted(img_dir.iterdir())[:12]
    cropper = FaceCropper(CropSpec(80, 0.25, 0.0))
    crops, ok, stats = cached_face_crops("t", paths, cropper, cache_dir=tmp_path, progress=False)
    assert ok.all() and crops.shape == (12, 80, 80, 3) and crops.dtype == np.uint8
    assert stats.detected >= 9  # Haar finds ~93 % of these aligned faces
    again, _, stats2 = cached_face_crops("t", paths, cropper, cache_dir=tmp_path, progress=False)
    assert np.array_equal(crops, again) and stats2.detected == stats.detected
    assert len(list(tmp_path.glob("*.crops.npy"))) == 1
    # A crop is RGB: the first file loaded directly and converted agrees with the crop's colour order.
    bgr = cv2.imread(str(paths[0]))
    rgb, found = cropper.crop(bgr)
    assert np.array_equal(rgb, crops[0])
    blank = np.full((100, 80, 3), 127, np.uint8)
    out, found = FaceCropper(CropSpec(64), pad=0.25).crop(blank)
    assert not found and out.shape == (64, 64, 3)


def test_wflw_reader_and_bad_line(tmp_path):
    img_root = tmp_path / "WFLW_images" / "0--Parade"
    img_root.mkdir(parents=True)
    _face_jpg(img_root / "a.jpg")
    ann = tmp_path / "WFLW_annotations" / "list_98pt_rect_attr_train_test"
    ann.mkdir(parents=True)
    marks = " ".join(f"{10 + i % 50}.5 {20 + i % 40}.25" for i in range(98))
    good = f"{marks} 10 20 70 90 1 0 0 1 0 0 0--Parade/a.jpg"
    (ann / "list_98pt_rect_attr_train.txt").write_text(good + "\n")
    data = read_wflw(ann / "list_98pt_rect_attr_train.txt")
    assert data.labels.tolist() == [[1, 0, 0, 1, 0, 0]] and data.hints == [(10, 20, 60, 70)]
    assert data.landmarks.shape == (1, 98, 2) and data.paths[0].is_file()
    (ann / "list_98pt_rect_attr_train.txt").write_text(good + "\n" + good.replace(" 1 0 0 1 0 0 ", " 1 0 ") + "\n")
    with pytest.raises(DataError, match=r"list_98pt_rect_attr_train.txt:2: expected 207 fields"):
        read_wflw(ann / "list_98pt_rect_attr_train.txt")


def test_class_folders(tmp_path):
    for name, n in (("female", 2), ("male", 3)):
        (tmp_path / name).mkdir()
        for i in range(n):
            _face_jpg(tmp_path / name / f"{i}.jpg", i)
    data = read_class_folders(tmp_path)
    assert data.classes == ["female", "male"] and data.labels.tolist() == [0, 0, 1, 1, 1]
    assert data.binary("male")[:, 0].tolist() == [0, 0, 1, 1, 1]
    with pytest.raises(DataError, match="no class folder named 'Male'"):
        data.binary("Male")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: class folder has no images"):
        read_class_folders(tmp_path)
