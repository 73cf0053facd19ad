"""The face search around tracked faces (edge.search), with real OpenCV on the demo clip."""
from __future__ import annotations

import cv2

from edge.crop import iou
from edge.detect import HaarDetector
from edge.search import FaceSearch
from edge.sources import DEMO_CLIP


class _Track:
    missed = 0

    def __init__(self, box: tuple[int, int, int, int]):
        self.box = box


def test_a_tracked_face_is_found_again_in_the_next_frame():
    """Around where a whole-frame search put the demo's faces in one frame, the search of the next frame finds
    them again with no whole-frame search in the loop and none from the background search yet."""
    cap = cv2.VideoCapture(str(DEMO_CLIP))
    frames = [cv2.equalizeHist(cv2.cvtColor(cap.read()[1], cv2.COLOR_BGR2GRAY)) for _ in range(12)]
    cap.release()
    detector = HaarDetector(min_size=40, downscale=1.0)             # the shipped default: full size
    checked = 0
    for before, after in zip(frames[:-1], frames[1:]):
        expected = [tuple(b) for b in detector.classifier.detectMultiScale(after, 1.1, 5, minSize=(40, 40))]
        tracks = [_Track(tuple(b)) for b in detector.classifier.detectMultiScale(before, 1.1, 5, minSize=(40, 40))]
        search = FaceSearch(detector, full_frame_every=0, budget_ms=0.0)
        height, width = after.shape                                 # not a first frame: no whole-frame search
        search._previous = cv2.resize(after, (width // 8, height // 8), interpolation=cv2.INTER_AREA)
        try:
            found = search.find(after, tracks)
        finally:
            search.close()
        assert {r.kind for r in search.regions} <= {"track", "motion", "seed"}
        for box in expected:
            if any(iou(box, t.box) >= 0.3 for t in tracks):
                assert max((iou(box, b) for b in found), default=0.0) >= 0.3, (box, found)
                checked += 1
    assert checked >= 10


def test_a_face_found_in_two_frames_skips_every_other_search():
    """A track found in the last frame after a search keeps its box for one frame unsearched, then is searched
    again; a face that moved fast, or was missed, is searched every frame."""
    cap = cv2.VideoCapture(str(DEMO_CLIP))
    frames = [cv2.equalizeHist(cv2.cvtColor(cap.read()[1], cv2.COLOR_BGR2GRAY)) for _ in range(6)]
    cap.release()
    detector = HaarDetector(min_size=40, downscale=1.0)
    box = tuple(int(v) for v in detector.classifier.detectMultiScale(frames[0], 1.1, 5, minSize=(40, 40))[0])
    track = _Track(box)
    track.id = 7
    search = FaceSearch(detector, full_frame_every=0, budget_ms=0.0)
    kinds = []
    try:
        for grey in frames:
            found = search.find(grey, [track])
            seen = {r.kind for r in search.regions}
            kinds.append("whole" if "whole" in seen else "kept" if "kept" in seen else "track")
            near = [b for b in found if iou(b, track.box) >= 0.3]
            if near:
                track.box = near[0]
        assert kinds[0] == "whole" and "kept" in kinds
        assert all(not (a == "kept" and b == "kept") for a, b in zip(kinds, kinds[1:]))
        assert kinds.count("kept") >= 2
        search.find(frames[-1], [track])
        if any(r.kind == "kept" for r in search.regions):
            search.find(frames[-1], [track])              # the frame after a kept one is searched
        assert not any(r.kind == "kept" for r in search.regions)
        track.box = (track.box[0] + track.box[2], track.box[1], track.box[2], track.box[3])   # a face side away
        search.find(frames[-1], [track])                  # it moved fast: searched again
        assert not any(r.kind == "kept" for r in search.regions)
        track.missed = 1
        search.find(frames[-1], [track])
        assert not any(r.kind == "kept" for r in search.regions)
    finally:
        search.close()
