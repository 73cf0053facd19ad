"""UTKFace and FER2013 readers: the shared data sets, and handmade bad names, rows and folders."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import shared_path
from trainer.data import fer, utkface
from trainer.errors import DataError


def _jpg(path: Path, value: int = 128, side: int = 48) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((side, side), value, np.uint8))


def test_utkface_shared_names_all_parse_and_match_readme():
    data = utkface.read_utkface(shared_path("data", "utkface"))
    assert len(data) == 8000 and data.skipped == []
    summary = utkface.label_summary(data)
    assert summary["gender"] == {"male": 4184, "female": 3816}       # README: 4,184 male, 3,816 female
    assert summary["ethnicity"]["white"] == 3391 and summary["ethnicity"]["others"] == 571
    assert abs(summary["age_mean"] - 33.28) < 0.01


def test_utkface_bad_names_are_skipped_counted_and_named(tmp_path, caplog):
    good = ["25_1_2_20170116174525125.jpg.chip.jpg", "3_0_4_20161219140627985.jpg.chip.jpg"]
    bad = ["39_1_20170116174525125.jpg.chip.jpg",          # race missing (a real UTKFace defect)
           "24_0_1_20170116220224657 .jpg.chip.jpg",         # stray space
           "61_2_0_20170109142408075.jpg.chip.jpg",          # gender 2
           "holiday.jpg"]
    for name in good + bad:
        _jpg(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    data = utkface.read_utkface(tmp_path)
    assert [p.name for p in data.paths] == sorted(good)
    assert data.age.tolist() == [25.0, 3.0] and data.gender.tolist() == [1, 0] and data.ethnicity.tolist() == [2, 4]
    assert len(data.skipped) == len(bad)
    for name in bad:
        assert any(name in message for message in data.skipped)
    assert "does not parse" in caplog.text


def test_utkface_folder_without_parsable_names_is_a_clear_error(tmp_path):
    _jpg(tmp_path / "UTKFace" / "face.jpg")
    with pytest.raises(DataError, match="no file name parses"):
        utkface.read_utkface(tmp_path)


def test_utkface_split_is_seeded_disjoint_and_complete():
    a, b, c = (utkface.split_utkface(1000, s) for s in (7, 7, 8))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["test"], c["test"])
    joined = np.concatenate([a["train"], a["val"], a["test"]])
    assert len(joined) == 1000 and len(np.unique(joined)) == 1000
    assert len(a["test"]) == 150 and len(a["val"]) == 100


def test_fer_shared_folder_layout_and_split():
    data = fer.read_fer(shared_path("data", "fer2013"))
    assert (data.part == "train").sum() == 27417 and (data.part == "test").sum() == 3281
    assert data.skipped == []
    assert (data.labels[data.part == "train"] == fer.EMOTIONS.index("disgust")).sum() == 379
    split = fer.split_fer(data, seed=3)
    assert set(split["val"]).isdisjoint(split["train"]) and set(split["test"]).isdisjoint(split["train"])
    assert np.all(data.part[split["val"]] == "train") and len(split["test"]) == 3281
    # stratified: the validation part keeps each emotion's share of the training part (10%)
    for k in range(len(fer.EMOTIONS)):
        n_train = ((data.labels == k) & (data.part == "train")).sum()
        assert abs((data.labels[split["val"]] == k).sum() - 0.1 * n_train) <= 1


def test_fer_unknown_emotion_folder_is_skipped_with_a_message(tmp_path):
    _jpg(tmp_path / "train" / "happy" / "Training_1.jpg")
    _jpg(tmp_path / "train" / "contempt" / "Training_2.jpg")
    _jpg(tmp_path / "train" / "contempt" / "Training_3.jpg")
    _jpg(tmp_path / "test" / "Sad" / "PublicTest_4.jpg")
    data = fer.read_fer(tmp_path)
    assert len(data) == 2 and data.labels.tolist() == [fer.EMOTIONS.index("happy"), fer.EMOTIONS.index("sad")]
    assert len(data.skipped) == 1
    assert "contempt" in data.skipped[0] and "2 image(s) skipped" in data.skipped[0]


def test_fer_csv_layout_bad_rows_are_skipped_and_named(tmp_path):
    ok = " ".join(["7"] * 2304)
    rows = ["emotion,pixels,Usage",
            f"3,{ok},Training",
            f"6,{ok},PublicTest",
            f"4,{' '.join(['1'] * 2300)},Training",       # line 4: wrong pixel count
            f"9,{ok},Training",                           # line 5: unknown emotion code
            f"0,{ok},PrivateTest"]
    path = tmp_path / "fer2013.csv"
    path.write_text("\n".join(rows) + "\n")
    data = fer.read_fer(tmp_path)
    assert data.labels.tolist() == [3, 6, 0] and data.part.tolist() == ["train", "test", "test"]
    assert data.pixels.shape == (3, 48, 48) and data.pixels.dtype == np.uint8 and int(data.pixels[0, 0, 0]) == 7
    assert len(data.skipped) == 2
    assert "fer2013.csv:4" in data.skipped[0] and "2300 pixel values" in data.skipped[0]
    assert "fer2013.csv:5" in data.skipped[1]


def test_fer_missing_layout_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="fer2013.csv"):
        fer.read_fer(tmp_path)


def test_a_second_utkface_folder_adds_to_every_split_and_keeps_the_first_folders_split(tmp_path):
    from edge.crop import CropSpec
    from trainer.data.multitask import load_multitask

    data = shared_path("data")
    if not (data / "utkface_more").is_dir():
        pytest.skip("../shared/data/utkface_more is not here")
    spec = CropSpec(48, 0.25, 0.0)
    alone = load_multitask(data / "utkface", data / "fer2013", spec, 5, 40, tmp_path, progress=False)
    both = load_multitask(data / "utkface", data / "fer2013", spec, 5, 40, tmp_path, progress=False,
                          utk_more_root=data / "utkface_more")
    for part in ("train", "val", "test"):
        n_first, n_more = both.sizes[part]["utkface"], both.sizes[part]["utkface_more"]
        assert n_first == alone.sizes[part]["utkface"] and n_more > 0
        assert np.array_equal(both.splits[part].faces[:n_first], alone.splits[part].faces[:n_first])
        assert np.array_equal(both.splits[part].age[:n_first], alone.splits[part].age[:n_first])
        assert np.all(both.splits[part].source[:n_first + n_more] == 0)
        assert np.all(np.isfinite(both.splits[part].age[n_first:n_first + n_more]))
    assert set(both.crop_stats) == {"utkface", "utkface_more", "fer2013"}
