"""The integration hub on a real loop: the demo clip, tiny real TFLite bundles, a gallery enrolled from the clip."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from edge.integrations import FaceEvent, Hub, ViewState, face_thumbnail
from edge.pipeline import Pipeline
from edge.sinks import EventSink

from .helpers.live_setup import build_models, enroll_astronaut, make_settings


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    return build_models(tmp_path_factory.mktemp("models"))


class Recorder:
    """An integration that keeps everything it is given."""

    name = "recorder"

    def __init__(self):
        self.events: list[FaceEvent] = []
        self.states: list[ViewState] = []
        self.people: list[list[str]] = []
        self.closed = False

    def on_event(self, event):
        self.events.append(event)

    def on_state(self, state):
        self.states.append(state)

    def on_people(self, names):
        self.people.append(names)

    def stats(self):
        return {"events": len(self.events)}

    def close(self):
        self.closed = True


def test_hub_passes_the_loops_events_on_and_announces_names(models, tmp_path):
    settings = make_settings(models, tmp_path)
    enroll_astronaut(settings)
    pipeline = Pipeline(settings)
    pipeline.events = EventSink(tmp_path / "events.jsonl")
    rec = Recorder()
    raw: dict[int, tuple[np.ndarray, dict[int, tuple]]] = {}
    hub = Hub(pipeline, [rec]).attach()
    pipeline.on_tracks.append(lambda p, frame, visible, ended: raw.__setitem__(
        p.frame_index, (frame.copy(), {t.id: t.box for t in visible})))
    pipeline.run(max_frames=150)

    assert rec.people[0] == ["Eileen"] and rec.closed
    file_events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    hub_events = [e.record for e in rec.events if e.kind != "recognized"]
    assert [{k: v for k, v in r.items() if k != "id"} for r in hub_events] == file_events   # the file is unchanged
    assert [e.id for e in rec.events] == list(range(1, len(rec.events) + 1))
    kinds = [(e.kind, e.record["track"]) for e in rec.events]
    assert ("appear", 1) in kinds and ("recognized", 1) in kinds and ("leave", 1) in kinds
    assert kinds.index(("appear", 1)) < kinds.index(("recognized", 1)) < kinds.index(("leave", 1))
    named = [e for e in rec.events if e.kind == "recognized"]
    assert all(e.name == "Eileen" and e.vectors and e.vectors[0].shape == (16,) for e in named)
    for event in rec.events:
        assert event.face is not None and event.face.ndim == 3 and max(event.face.shape[:2]) <= 128
    # The thumbnail is cut from the frame before the overlay is drawn on it.
    appear = next(e for e in rec.events if e.kind == "appear")
    frame, boxes = raw[appear.record["frame"]]
    assert np.array_equal(appear.face, face_thumbnail(frame, boxes[appear.record["track"]]))
    assert max(s.faces for s in rec.states) >= 1 and any("Eileen" in s.people for s in rec.states)
    final = rec.states[-1]
    assert final.camera == "stopped" and final.faces == 0 and final.people == ()
    assert final.last_seen["name"] == "Eileen"
    assert hub.status()["recorder"] == {"events": len(rec.events)}


def test_use_gallery_swaps_between_frames_and_names_are_voted_again(models, tmp_path):
    from edge.enroll import embedding_bundle
    from edge.people import remove_person, rename_person

    settings = make_settings(models, tmp_path)
    enroll_astronaut(settings)
    manifest = embedding_bundle(settings).manifest
    pipeline = Pipeline(settings)
    rec = Recorder()
    hub = Hub(pipeline, [rec]).attach()
    pipeline.open()
    for _ in range(30):
        pipeline.step()
    assert hub.state.people == ("Eileen",)
    gallery, _ = rename_person(settings, manifest, "Eileen", "Collins")    # what the page does
    hub.use_gallery(gallery)
    assert pipeline.gallery is not gallery          # not before the loop's next frame
    pipeline.step()
    assert pipeline.gallery is gallery and rec.people[-1] == ["Collins"]
    for _ in range(20):
        pipeline.step()
    assert hub.state.people == ("Collins",)
    assert [e.name for e in rec.events if e.kind == "recognized"][-1] == "Collins"
    gallery, _ = remove_person(settings, manifest, "Collins")
    hub.use_gallery(gallery)                        # nobody left: recognition off
    pipeline.step()
    assert pipeline.gallery is None and rec.people[-1] == []
    before = len([e for e in rec.events if e.kind == "recognized"])
    for _ in range(20):
        pipeline.step()
    assert hub.state.people == () and hub.state.faces >= 1
    assert len([e for e in rec.events if e.kind == "recognized"]) == before
    pipeline.close()


def test_an_integration_that_raises_never_stops_the_loop(models, tmp_path, caplog):
    class Broken(Recorder):
        name = "broken"

        def on_event(self, event):
            raise RuntimeError("boom")

        def on_state(self, state):
            raise RuntimeError("boom")

    settings = make_settings(models, tmp_path)
    pipeline = Pipeline(settings)
    rec = Recorder()
    Hub(pipeline, [Broken(), rec]).attach()
    with caplog.at_level(logging.ERROR, logger="face-edge.integrations"):
        assert pipeline.run(max_frames=60) == 60
    assert rec.events and rec.states                       # the others still got everything
    failures = [r for r in caplog.records if "integration broken failed" in r.getMessage()]
    assert len(failures) == 1                              # logged once, not once per frame
