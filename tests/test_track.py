"""IoU tracker: ids across frames, track end, due logic, identity voting, attribute smoothing."""
from __future__ import annotations

import numpy as np
import pytest

from edge.config import TrackerSettings
from edge.models import HeadResult, Prediction
from edge.track import IouTracker, Track, iou, smooth


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_ids_follow_moving_faces_and_new_faces_get_new_ids():
    tracker = IouTracker(TrackerSettings())
    tracker.update([(100, 100, 50, 50)], 0, 0.0)
    tracker.update([(104, 102, 50, 50), (400, 100, 40, 40)], 1, 0.1)
    ids = {t.box: t.id for t in tracker.visible()}
    assert ids[(104, 102, 50, 50)] == 1 and ids[(400, 100, 40, 40)] == 2
    tracker.update([(110, 104, 52, 52), (396, 98, 40, 40)], 2, 0.2)
    assert sorted(t.id for t in tracker.visible()) == [1, 2]
    assert all(t.hits == 3 for t in tracker.tracks if t.id == 1)


def test_crossing_boxes_match_greedily_by_overlap():
    tracker = IouTracker(TrackerSettings(iou=0.2))
    tracker.update([(0, 0, 50, 50), (60, 0, 50, 50)], 0, 0.0)
    tracker.update([(50, 0, 50, 50), (8, 0, 50, 50)], 1, 0.1)   # order swapped in the detection list
    by_id = {t.id: t.box for t in tracker.tracks}
    assert by_id[1] == (8, 0, 50, 50) and by_id[2] == (50, 0, 50, 50)


def test_track_survives_max_missed_frames_then_ends():
    tracker = IouTracker(TrackerSettings(max_missed=2))
    tracker.update([(10, 10, 40, 40)], 0, 0.0)
    assert tracker.update([], 1, 0.1) == [] and tracker.visible() == []
    assert tracker.update([], 2, 0.2) == []
    ended = tracker.update([], 3, 0.3)
    assert [t.id for t in ended] == [1] and tracker.tracks == []
    tracker.update([(10, 10, 40, 40)], 4, 0.4)
    assert tracker.tracks[0].id == 2                   # a face that comes back is a new track


def test_models_are_due_when_new_and_every_refresh_frames():
    track = Track(1, (0, 0, 10, 10), 0, 0.0)
    assert track.due(0, 15)
    track.last_run = 0
    assert not track.due(14, 15) and track.due(15, 15)


def _identity_looks(track: Track, names):
    for name in names:
        track.add_identity(name, 0.2 if name else 0.7)


def test_name_shown_only_when_it_wins_vote_min_of_vote_window():
    track = Track(1, (0, 0, 10, 10), 0, 0.0, vote_window=5)
    assert track.identity(3) is None                  # no look yet
    _identity_looks(track, ["ana", None, "ana"])
    assert track.identity(3).name is None             # 2 of 3: still unknown
    _identity_looks(track, ["ana"])
    ident = track.identity(3)
    assert ident.name == "ana" and ident.votes == 3 and ident.distance == pytest.approx(0.2)
    _identity_looks(track, ["bob", "bob", "bob"])      # window of 5: ana 1, bob 3
    assert track.identity(3).name == "bob"


def test_split_votes_stay_unknown_with_the_latest_distance():
    track = Track(1, (0, 0, 10, 10), 0, 0.0, vote_window=5)
    _identity_looks(track, ["ana", "bob", None, "ana", "bob"])
    ident = track.identity(3)
    assert ident.name is None and ident.distance == pytest.approx(0.2)


def test_attributes_are_the_mean_of_the_recent_looks():
    track = Track(1, (0, 0, 10, 10), 0, 0.0, vote_window=3)
    for p in (0.9, 0.1, 0.8, 0.6):
        track.add_prediction(Prediction("attributes", {
            "attributes": HeadResult("attributes", "sigmoid", scores={"Smiling": p})}))
    smoothed = track.smoothed()[("attributes", "attributes")]
    assert smoothed.scores["Smiling"] == pytest.approx((0.1 + 0.8 + 0.6) / 3)


def test_smooth_regression_and_embeddings():
    ages = [HeadResult("age", "regression", value=v, unit="years") for v in (30.0, 40.0)]
    assert smooth(ages).value == 35.0 and smooth(ages).unit == "years"
    vecs = [HeadResult("e", "embedding", vector=np.array([1.0, 0.0])),
            HeadResult("e", "embedding", vector=np.array([0.0, 1.0]))]
    out = smooth(vecs).vector
    assert np.linalg.norm(out) == pytest.approx(1.0) and out[0] == pytest.approx(out[1])


def test_forget_drops_looks_and_makes_the_track_due():
    track = Track(1, (0, 0, 10, 10), 0, 0.0)
    track.add_prediction(Prediction("m", {"h": HeadResult("h", "regression", value=1.0)}))
    track.add_identity("ana", 0.1)
    track.last_run = 5
    track.forget()
    assert track.heads == {} and track.identity(1) is None and track.due(6, 15)
