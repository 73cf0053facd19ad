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
    assert s.tags == ["Eyeglasses"]      # over its own 0.3; Young is unreliable; Smiling: the emotion head says it
    assert s.values == {"age": 31.4, "gender": "female", "emotion": "happy"}
    alone = face_summary(_track({"happy": 0.6, "sad": 0.3, "other": 0.1}), {"attributes": _manifests()["attributes"]},
                         vote_min=3)
    assert alone.tags == ["Smiling", "Eyeglasses"] and alone.values == {}   # no emotion head: the tag shows
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
    assert lines[2] == "Eyeglasses"
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


def _attribute_and_multitask_track(box, p_female: float, smiling: float, emotion: dict) -> Track:
    track = Track(1, box, 0, 0.0)
    attrs = _shipped("attributes").output("attributes").labels
    scores = {label: 0.0 for label in attrs}
    scores.update({"Male": 1.0 - p_female, "Smiling": smiling, "Eyeglasses": 0.99, "Young": 0.9})
    track.add_prediction(Prediction("attributes", {"attributes": HeadResult("attributes", "sigmoid", scores=scores)}))
    track.add_prediction(Prediction("multitask", {
        "age": HeadResult("age", "regression", value=44.0, unit="years"),
        "gender": HeadResult("gender", "sigmoid", scores={"female": p_female}),
        "emotion": HeadResult("emotion", "softmax", scores=emotion)}))
    return track


def _shipped(name: str) -> Manifest:
    from pathlib import Path

    from edge.bundle import read_manifest

    return read_manifest(Path(__file__).resolve().parents[1] / "models" / name)


def test_one_value_per_quantity_with_the_shipped_manifests():
    """Gender comes from the multitask head only (no "Male" tag beside "female"), emotion and Smiling
    never contradict (the emotion head owns it), age groups replace "Young"; other tags stay."""
    manifests = {"attributes": _shipped("attributes"), "multitask": _shipped("multitask")}
    angry = {"angry": 0.7, "disgust": 0.0, "fear": 0.0, "happy": 0.1, "sad": 0.1, "surprise": 0.0, "neutral": 0.1}
    summary = face_summary(_attribute_and_multitask_track((10, 10, 90, 90), 0.9, 0.95, angry), manifests, 3)
    assert summary.values["gender"] == "female" and summary.values["emotion"] == "angry"
    assert "Male" not in summary.tags and "Smiling" not in summary.tags and "Young" not in summary.tags
    assert "Eyeglasses" in summary.tags
    only_attributes = face_summary(_attribute_and_multitask_track((10, 10, 90, 90), 0.1, 0.95, angry),
                                   {"attributes": _shipped("attributes")}, 3)
    assert {"Male", "Smiling", "Eyeglasses"} <= set(only_attributes.tags)


def test_the_manifest_says_which_labels_a_dedicated_head_owns():
    from edge.bundle import manifest_to_dict, parse_manifest

    inp = InputSpec(32, 32)
    attrs = Manifest("attributes", "attributes", "1", "", inp, CropSpec(32), (
        OutputSpec("attributes", "sigmoid", labels=("Male", "Grinning"), quantities={"Grinning": "mood"}),))
    attrs = parse_manifest({**manifest_to_dict(attrs), "files": {}})     # survives the YAML round trip
    mood = Manifest("mood", "multitask", "1", "", inp, CropSpec(32), (
        OutputSpec("feeling", "softmax", labels=("glad", "cross"), quantity="mood"),))
    track = Track(1, (0, 0, 50, 50), 0, 0.0)
    track.add_prediction(Prediction("attributes", {"attributes": HeadResult(
        "attributes", "sigmoid", scores={"Male": 0.9, "Grinning": 0.9})}))
    track.add_prediction(Prediction("mood", {"feeling": HeadResult("feeling", "softmax",
                                                                  scores={"glad": 0.2, "cross": 0.8})}))
    summary = face_summary(track, {"attributes": attrs, "mood": mood}, 3)
    assert summary.tags == ["Male"]          # the manifest's quantities replace the usual meanings: Male stays
    assert summary.values == {"feeling": "cross"}
    with pytest.raises(Exception, match="not among its labels"):
        parse_manifest({**manifest_to_dict(attrs), "files": {}, "outputs": [
            {"name": "attributes", "kind": "sigmoid", "labels": ["Male"], "quantities": {"Smiling": "emotion"}}]})


def _rects_apart(rects) -> bool:
    return all(not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])
               for i, a in enumerate(rects) for b in rects[i + 1:])


@pytest.mark.parametrize("boxes", [
    [(200, 150, 90, 90), (300, 160, 90, 90)],                   # two close faces side by side
    [(200, 150, 90, 90), (215, 300, 80, 80)],                   # one above the other
    [(40, 20, 300, 300), (380, 60, 120, 120)],                  # a large face right under the status bar
    [(10, 330, 140, 140), (170, 340, 130, 130), (330, 350, 120, 120), (480, 360, 110, 110)],  # a row at the bottom
])
def test_label_blocks_never_overlap_each_other_or_the_status_bar_and_stay_in_the_frame(boxes):
    manifests = {"attributes": _shipped("attributes"), "multitask": _shipped("multitask")}
    happy = {"angry": 0.0, "disgust": 0.0, "fear": 0.0, "happy": 0.8, "sad": 0.1, "surprise": 0.0, "neutral": 0.1}
    tracks = [_attribute_and_multitask_track(b, 0.8, 0.9, happy) for b in boxes]
    for i, t in enumerate(tracks):
        t.id = i + 1
    frame = np.zeros((480, 640, 3), np.uint8)
    status = draw_status(frame, 29.9, "ai_edge_litert x1")
    labels = draw_faces(frame, [(t, face_summary(t, manifests, 3)) for t in tracks], status)
    assert len(labels) == len(tracks)                           # every face got its block
    assert _rects_apart(labels + status)
    assert all(0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 480 for x0, y0, x1, y1 in labels)
    assert all(frame[y0:y1, x0:x1].any() for x0, y0, x1, y1 in labels)     # the text is drawn there


def test_a_crowded_frame_keeps_the_rule_by_shortening_labels():
    manifests = {"attributes": _shipped("attributes"), "multitask": _shipped("multitask")}
    happy = {"angry": 0.0, "disgust": 0.0, "fear": 0.0, "happy": 0.8, "sad": 0.1, "surprise": 0.0, "neutral": 0.1}
    tracks = [_attribute_and_multitask_track((x, y, 60, 60), 0.8, 0.9, happy)
              for y in range(60, 420, 70) for x in range(0, 600, 70)]
    frame = np.zeros((480, 640, 3), np.uint8)
    status = draw_status(frame, 29.9, "ai_edge_litert x1")
    labels = draw_faces(frame, [(t, face_summary(t, manifests, 3)) for t in tracks], status)
    heights = sorted({y1 - y0 for _, y0, _, y1 in labels})
    assert labels and len(heights) > 1                          # some blocks kept only their first line
    assert _rects_apart(labels + status)
    assert all(0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 480 for x0, y0, x1, y1 in labels)


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
