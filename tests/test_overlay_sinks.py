"""Overlay text and drawing; sinks: window fallback, video writer, JSON-lines events."""
from __future__ import annotations

import json
import logging

import cv2
import numpy as np
import pytest

from edge.bundle import InputSpec, Manifest, OutputSpec
from edge.crop import CropSpec
from edge.errors import ConfigError
from edge.models import HeadResult, Prediction
from edge.overlay import _text_lines, draw_faces, draw_status, face_summary, put_text, status_frame
from edge.sinks import EventSink, VideoWriterSink, display_available, make_window
from edge.track import Track


def _manifests() -> dict[str, Manifest]:
    inp = InputSpec(32, 32)
    attrs = Manifest("attributes", "attributes", "1", "", inp, CropSpec(32), (
        OutputSpec("attributes", "sigmoid", labels=("Smiling", "Eyeglasses", "Young"),
                   thresholds=(0.5, 0.3, 0.5), unreliable=("Young",)),))
    multi = Manifest("multitask", "multitask", "1", "", inp, CropSpec(32), (
        OutputSpec("age", "regression", unit="years"),
        OutputSpec("gender", "softmax", labels=("female", "male")),
        OutputSpec("emotion", "softmax", labels=("happy", "sad", "other"), unreliable=("other",))))
    return {"attributes": attrs, "multitask": multi}


def _track(emotion: dict) -> Track:
    track = Track(7, (100, 80, 120, 120), 0, 0.0)
    track.add_prediction(Prediction("attributes", {"attributes": HeadResult(
        "attributes", "sigmoid", scores={"Smiling": 0.8, "Eyeglasses": 0.35, "Young": 0.99})}))
    track.add_prediction(Prediction("multitask", {
        "age": HeadResult("age", "regression", value=31.4, unit="years"),
        "gender": HeadResult("gender", "softmax", scores={"female": 0.7, "male": 0.3}),
        "emotion": HeadResult("emotion", "softmax", scores=emotion)}))
    return track


def test_summary_uses_thresholds_and_hides_unreliable_labels():
    s = face_summary(_track({"happy": 0.6, "sad": 0.3, "other": 0.1}), _manifests(), vote_min=3)
    assert s.tags == ["Smiling", "Eyeglasses"]           # Eyeglasses over its own 0.3; Young is unreliable
    assert s.values == {"age": 31.4, "gender": "female", "emotion": "happy"}
    assert not s.recognised and s.name is None
    hidden = face_summary(_track({"happy": 0.1, "sad": 0.1, "other": 0.8}), _manifests(), vote_min=3)
    assert "emotion" not in hidden.values                # top label unreliable: not shown


def test_text_lines_name_unknown_and_distance():
    track = _track({"happy": 0.6, "sad": 0.3, "other": 0.1})
    for _ in range(3):
        track.add_identity("ana", 0.21)
    lines = _text_lines(face_summary(track, _manifests(), vote_min=3))
    assert lines[0] == "#7 ana 0.21"
    assert lines[1] == "age 30-39 | female | happy"          # no groups in this manifest: the default age groups
    assert lines[2] == "Smiling, Eyeglasses"
    stranger = Track(8, (0, 0, 10, 10), 0, 0.0)
    stranger.add_identity(None, 0.74)
    assert _text_lines(face_summary(stranger, {}, vote_min=3))[0] == "#8 unknown 0.74"


def _shipped_multitask() -> Manifest:
    """The multitask manifest as shipped: gender is one sigmoid, p(female); age lists its groups."""
    from pathlib import Path

    from edge.bundle import read_manifest

    return read_manifest(Path(__file__).resolve().parents[1] / "models" / "multitask")


def _multitask_track(p_female: float, age: float) -> Track:
    track = Track(3, (200, 100, 110, 110), 0, 0.0)
    track.add_prediction(Prediction("multitask", {
        "age": HeadResult("age", "regression", value=age, unit="years"),
        "gender": HeadResult("gender", "sigmoid", scores={"female": p_female}),
        "emotion": HeadResult("emotion", "softmax", scores={"angry": 0.1, "disgust": 0.0, "fear": 0.1,
                                                            "happy": 0.6, "sad": 0.1, "surprise": 0.0,
                                                            "neutral": 0.1}),
        "ethnicity": HeadResult("ethnicity", "softmax", scores={"white": 0.5, "black": 0.1, "asian": 0.2,
                                                                "indian": 0.1, "others": 0.1})}))
    return track


def test_one_sigmoid_gender_head_shows_a_word_for_women_and_for_men():
    manifests = {"multitask": _shipped_multitask()}
    assert manifests["multitask"].output("gender").labels == ("female",)
    woman = face_summary(_multitask_track(0.91, 25.3), manifests, vote_min=3)
    man = face_summary(_multitask_track(0.08, 25.3), manifests, vote_min=3)
    assert woman.values["gender"] == "female" and man.values["gender"] == "male"
    assert woman.tags == [] and man.tags == []                # not mixed into the attribute tags
    assert _text_lines(woman)[1] == "age 20-29 | female | happy | white"
    assert _text_lines(man)[1] == "age 20-29 | male | happy | white"
    assert man.to_dict()["age"] == 25.3 and man.to_dict()["age_group"] == "20-29"   # events keep the years


def test_negative_label_from_the_manifest_and_unreliable_binary_heads():
    from edge.bundle import manifest_to_dict, parse_manifest

    inp = InputSpec(32, 32)
    manifest = Manifest("m", "multitask", "1", "", inp, CropSpec(32), (
        OutputSpec("gender", "sigmoid", labels=("woman",), thresholds=(0.6,), negative_label="man-ish"),
        OutputSpec("glasses", "sigmoid", labels=("glasses",)),
        OutputSpec("smile", "sigmoid", labels=("smile",), unreliable=("smile",))))
    manifest = parse_manifest({**manifest_to_dict(manifest), "files": {}})   # negative_label survives the YAML
    assert manifest.output("gender").negative_label == "man-ish"
    assert manifest.output("glasses").negative() == "not glasses"
    track = Track(1, (0, 0, 50, 50), 0, 0.0)
    track.add_prediction(Prediction("m", {"gender": HeadResult("gender", "sigmoid", scores={"woman": 0.55}),
                                          "glasses": HeadResult("glasses", "sigmoid", scores={"glasses": 0.7}),
                                          "smile": HeadResult("smile", "sigmoid", scores={"smile": 0.9})}))
    summary = face_summary(track, {"m": manifest}, vote_min=3)
    assert summary.values == {"gender": "man-ish", "glasses": "glasses"}    # 0.55 < its 0.6 threshold; smile hidden


@pytest.mark.parametrize("age, group", [(-1.0, "0-2"), (0.0, "0-2"), (2.9, "0-2"), (3.0, "3-9"),
                                        (19.99, "10-19"), (25.3, "20-29"), (69.9, "60-69"), (70.0, "70+"),
                                        (104.0, "70+")])
def test_age_groups_default_and_from_the_manifest(age, group):
    from edge.overlay import DEFAULT_AGE_GROUPS, value_group

    assert value_group(age, DEFAULT_AGE_GROUPS) == group
    assert value_group(age, _shipped_multitask().output("age").groups) == group


def test_custom_groups_in_the_manifest_win_over_the_defaults():
    inp = InputSpec(32, 32)
    manifest = Manifest("m", "multitask", "1", "", inp, CropSpec(32), (
        OutputSpec("age", "regression", unit="years",
                   groups=({"label": "child", "max": 18}, {"label": "adult", "min": 18})),))
    track = Track(1, (0, 0, 50, 50), 0, 0.0)
    track.add_prediction(Prediction("m", {"age": HeadResult("age", "regression", value=25.3, unit="years")}))
    assert _text_lines(face_summary(track, {"m": manifest}, 3))[1] == "age adult"


def test_multitask_text_fits_a_640x480_frame():
    summary = face_summary(_multitask_track(0.91, 44.0), {"multitask": _shipped_multitask()}, vote_min=3)
    frame = np.zeros((480, 640, 3), np.uint8)
    track = _multitask_track(0.91, 44.0)
    draw_faces(frame, [(track, summary)])
    width = max(cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)[0][0] for line in _text_lines(summary))
    assert width < 640 // 2                                   # one line, well inside the frame
    x, y, w, h = track.box
    assert frame[y + h + 4:y + h + 50, x:x + width].any()     # drawn below the box


def test_drawing_changes_pixels_and_stays_in_the_frame():
    frame = np.zeros((480, 640, 3), np.uint8)
    track = _track({"happy": 0.6, "sad": 0.3, "other": 0.1})
    track.box = (500, 400, 120, 70)                       # near the bottom-right corner
    draw_faces(frame, [(track, face_summary(track, _manifests(), 3))])
    draw_status(frame, 41.7, "ai_edge_litert x1", "camera lost, reconnecting")
    assert frame.any()
    assert frame[:30, :220].any()                         # the FPS corner
    assert frame[440:, :].any()                           # the status banner


def test_put_text_has_a_dark_backing_box():
    frame = np.full((100, 300, 3), 255, np.uint8)
    h = put_text(frame, "readable", (10, 10))
    region = frame[10:10 + h, 10:80]
    assert h > 10 and (region < 60).mean() > 0.5          # mostly backing box, white glyphs on it


def test_status_frame():
    frame = status_frame(640, 480, "camera lost, reconnecting")
    assert frame.shape == (480, 640, 3) and frame[200:280].std() > 0


def test_window_without_display_falls_back_to_headless(monkeypatch, caplog):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert not display_available()
    with caplog.at_level(logging.WARNING, logger="face-edge.sink"):
        assert make_window("x") is None
    assert "running headless" in caplog.text


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_video_writer_writes_a_readable_file(tmp_path, suffix):
    path = tmp_path / f"out{suffix}"
    sink = VideoWriterSink(path, fps=10)
    for i in range(12):
        frame = np.full((120, 160, 3), i * 10, np.uint8)
        assert sink.write(frame if i != 5 else cv2.resize(frame, (80, 60)))   # odd size is resized
    sink.close()
    cap = cv2.VideoCapture(str(path))
    count = 0
    while cap.read()[0]:
        count += 1
    assert count == 12
    assert int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 160


def test_video_writer_in_a_missing_folder(tmp_path):
    with pytest.raises(ConfigError, match="output.record"):
        VideoWriterSink(tmp_path / "no" / "out.mp4")


def test_events_are_json_lines(tmp_path):
    path = tmp_path / "events.jsonl"
    sink = EventSink(path)
    sink.emit("appear", 1700000000.25, track=3, name=None, attributes=["Smiling"], age=np.float32(30.5))
    sink.emit("leave", 1700000004.0, track=3, name="ana", seconds=3.75)
    sink.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["event"] for e in lines] == ["appear", "leave"]
    assert lines[0]["time"] == "2023-11-14T22:13:20.250+00:00" and lines[0]["age"] == 30.5
    assert lines[1]["name"] == "ana" and lines[1]["seconds"] == 3.75


def test_events_file_that_cannot_be_written(tmp_path):
    with pytest.raises(ConfigError, match="output.events"):
        EventSink(tmp_path / "missing" / "e.jsonl")
