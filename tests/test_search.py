"""The face search around tracked faces (edge.search), with real OpenCV on the demo clip."""
from __future__ import annotations

import cv2
import numpy as np

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


class _SizesSeen:
    """A real CascadeClassifier that records the size of every image it searches."""

    def __init__(self, classifier: cv2.CascadeClassifier):
        self.classifier, self.sizes = classifier, []

    def detectMultiScale(self, image, *args, **kwargs):
        self.sizes.append(image.shape[:2])
        return self.classifier.detectMultiScale(image, *args, **kwargs)


def test_every_whole_frame_search_uses_the_background_classifier():
    """A scene's first frame is searched whole in the loop, with the background search's classifier (OpenCV keeps
    a classifier's buffers at the largest image it searched: one whole-frame classifier, not two); it finds what
    a whole-frame search finds, and is not searched a second time in the background."""
    cap = cv2.VideoCapture(str(DEMO_CLIP))
    frames = [cap.read()[1] for _ in range(20)]
    cap.release()
    detector = HaarDetector(min_size=40, downscale=1.0)
    first = cv2.equalizeHist(cv2.cvtColor(frames[0], cv2.COLOR_BGR2GRAY))
    expected = [tuple(int(v) for v in b) for b in detector.classifier.detectMultiScale(first, 1.1, 5, minSize=(40, 40))]
    loop = _SizesSeen(detector.classifier)
    detector.classifier = loop
    search = FaceSearch(detector, full_frame_every=0, budget_ms=8.0)
    try:
        found = search.find(frames[0])
        assert [r.kind for r in search.regions] == ["whole"]
        assert sorted(found) == sorted(expected) and expected
        assert search.background_searches == 0 and search._background._offered is None
        tracks = [_Track(box) for box in found]
        for frame in frames[1:]:
            search.find(frame, tracks)
    finally:
        search.close()
    height, width = first.shape
    assert loop.sizes and all(h * w < height * width / 2 for h, w in loop.sizes), loop.sizes


def test_a_shrunk_track_search_gives_boxes_in_frame_pixels():
    """Around a large face, search_region shrinks the region before searching (TRACK_WINDOWS): the boxes it
    returns are in the frame's pixels and on the faces that the same search at full size finds."""
    from edge.search import region_around, search_region

    cap = cv2.VideoCapture(str(DEMO_CLIP))
    frames = [cv2.equalizeHist(cv2.cvtColor(cap.read()[1], cv2.COLOR_BGR2GRAY)) for _ in range(8)]
    cap.release()
    classifier = HaarDetector(min_size=40, downscale=1.0).classifier
    compared = 0
    for before, after in zip(frames[:-1], frames[1:]):
        for box in classifier.detectMultiScale(before, 1.1, 5, minSize=(40, 40)):
            region = region_around(tuple(int(v) for v in box), after.shape[1], after.shape[0], 40, "track")
            assert region.lo > 48                                  # large enough to be shrunk
            full = search_region(classifier, after, region, 1.1, 5, windows=0.0)
            shrunk = search_region(classifier, after, region, 1.1, 5, windows=2.0)
            assert full and shrunk
            for b in shrunk:
                assert region.x0 <= b[0] and b[0] + b[2] <= region.x1 + 2 and region.y0 <= b[1] <= region.y1
                assert max(iou(b, f) for f in full) >= 0.6, (b, full)
            compared += 1
    assert compared >= 7


def test_a_face_found_after_a_search_is_followed_the_next_frame_on_the_face():
    """A track found in the last frame after a search is followed for one frame by matching its patch (not
    searched), on the box a whole-frame search puts there, then searched again; a face that moved fast, was
    missed, or whose patch no longer matches is searched."""
    cap = cv2.VideoCapture(str(DEMO_CLIP))
    frames = [cv2.equalizeHist(cv2.cvtColor(cap.read()[1], cv2.COLOR_BGR2GRAY)) for _ in range(8)]
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
            kinds.append("whole" if "whole" in seen else "followed" if "followed" in seen else "track")
            near = [b for b in found if iou(b, track.box) >= 0.3]
            assert near, kinds
            track.box = near[0]
            if kinds[-1] == "followed":                     # on the face a whole-frame search finds there
                whole = detector.classifier.detectMultiScale(grey, 1.1, 5, minSize=(40, 40))
                assert max(iou(track.box, tuple(b)) for b in whole) >= 0.5
        assert kinds[0] == "whole" and kinds.count("followed") >= 3
        assert all(not (a == "followed" and b == "followed") for a, b in zip(kinds, kinds[1:]))
        search.find(frames[-1], [track])
        if any(r.kind == "followed" for r in search.regions):
            search.find(frames[-1], [track])              # the frame after a followed one is searched
        assert not any(r.kind == "followed" for r in search.regions)
        track.box = (track.box[0] + track.box[2], track.box[1], track.box[2], track.box[3])   # a face side away
        search.find(frames[-1], [track])                  # it moved fast: searched again
        assert not any(r.kind == "followed" for r in search.regions)
        track.missed = 1
        search.find(frames[-1], [track])
        assert not any(r.kind == "followed" for r in search.regions)
        track.missed = 0
        search.find(frames[-1], [track])
        if any(r.kind == "followed" for r in search.regions):
            search.find(frames[-1], [track])
        assert not any(r.kind == "followed" for r in search.regions)   # searched: it may be followed next,
        search.find(np.full_like(frames[-1], 128), [track])           # but its patch is not in a blank frame
        assert not any(r.kind == "followed" for r in search.regions)
    finally:
        search.close()
