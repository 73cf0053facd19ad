"""An image folder is a set of stills: each image its own scene. Real OpenCV, real LiteRT on tiny bundles,
three people's photos from ../shared (face_recognition's examples; skipped without them)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.api import Analyzer
from edge.cli import main
from edge.config import Settings

from .conftest import shared_path
from .helpers.tiny_bundles import build_attributes_bundle, build_multitask_bundle

PEOPLE = ("alex-lacamoire.png", "biden.jpg", "lin-manuel-miranda.png")   # one face each, three sizes and aspects


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stills-models")
    build_attributes_bundle(root / "attributes")
    build_multitask_bundle(root / "multitask")
    return root


def test_an_image_folder_of_three_people_gives_three_scenes_and_no_carried_label(models_dir, tmp_path, capsys,
                                                                               monkeypatch):
    examples = shared_path("data", "face_recognition_examples")
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, name in enumerate(PEOPLE):
        shutil.copy(examples / name, photos / f"{i}_{name}")
    config = tmp_path / "edge.yaml"
    config.write_text(f"source:\n  uri: photos\n  realtime: false\nmodels:\n  dir: {models_dir}\n"
                      "  bundles: [attributes, multitask]\ndisplay:\n  window: false\n")
    monkeypatch.delenv("FACE_EDGE_CONFIG", raising=False)
    record, events = tmp_path / "out.avi", tmp_path / "events.jsonl"
    assert main(["run", "--config", str(config), "--record", str(record), "--events", str(events),
                 "--log-level", "info"]) == 0                       # plays the folder once and stops
    assert "stopped after 3 frames" in capsys.readouterr().err

    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert [e["event"] for e in lines] == ["appear"] * 3            # one event per face per image, no leave
    assert [e["image"] for e in lines] == [f"{i}_{n}" for i, n in enumerate(PEOPLE)]
    assert len({e["track"] for e in lines}) == 3                     # a new track in every image

    settings = Settings()
    settings.models.dir, settings.models.bundles = str(models_dir), ["attributes", "multitask"]
    analyzer = Analyzer.from_config(settings=settings, gallery=False)
    for event, name in zip(lines, PEOPLE):
        faces = analyzer.analyze(cv2.imread(str(examples / name)))
        assert len(faces) == 1
        expected = faces[0].summary                                  # what face-edge recognize says of that photo
        shown = {k: v for k, v in event.items() if k in expected}
        assert shown == expected, name                              # labels from this image alone, none carried

    cap = cv2.VideoCapture(str(record))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == 3
    first = cv2.imread(str(examples / PEOPLE[0]))
    assert frames[1].shape[:2] == first.shape[:2]                    # the recording keeps the first image's size
    portrait = frames[1]                                             # biden.jpg, 282 x 640: pillar-boxed
    assert portrait[:, :60].max() < 40 and portrait[:, -60:].max() < 40
    assert portrait[:, 150:270].std() > 20                           # the photo itself in the middle


def test_a_folder_with_nothing_readable_stops_with_exit_2(tmp_path, capsys):
    (tmp_path / "a.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "b.png").write_bytes(np.zeros(10, np.uint8).tobytes())
    assert main(["run", "--source", str(tmp_path), "--no-display"]) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("face-edge: error:")]
    assert len(lines) == 1 and "none of its 2 image(s) can be read" in lines[0] and "Traceback" not in err
