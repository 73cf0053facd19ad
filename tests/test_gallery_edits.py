"""The gallery edits the web page needs: rename, the samples that made a match, removing samples; and
edge.people doing them under the lock with the atomic write."""
from __future__ import annotations

import stat
from types import SimpleNamespace

import numpy as np
import pytest

from edge.config import Settings
from edge.enroll import EnrollResult, Sample
from edge.errors import GalleryError
from edge.gallery import Gallery
from edge.people import forget_match, remove_person, rename_person, save_enrollment


def unit(v) -> np.ndarray:
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v)


def gallery() -> Gallery:
    g = Gallery("emb", "1", dim=3, threshold=0.2)
    g.add("ann", np.stack([unit([1, 0, 0]), unit([1, 0.1, 0]), unit([0.7, 0.7, 0])]))
    g.add("bob", np.stack([unit([0, 0, 1])]))
    return g


def test_rename_keeps_samples_order_and_date_and_refuses_clashes():
    g = gallery()
    enrolled = dict((p.name, p.enrolled) for p in g.list())
    g.rename("ann", "Ann Lee")
    assert g.names() == ["Ann Lee", "bob"]
    assert [p.samples for p in g.list()] == [3, 1]
    assert g.list()[0].enrolled == enrolled["ann"]
    assert g.match(unit([1, 0, 0])).name == "Ann Lee"
    with pytest.raises(GalleryError, match="already enrolled"):
        g.rename("bob", "Ann Lee")
    with pytest.raises(GalleryError, match="not enrolled"):
        g.rename("carol", "dave")
    with pytest.raises(GalleryError, match="path characters"):
        g.rename("bob", "../bob")
    g2 = Gallery.from_bytes(g.to_bytes())
    assert g2.names() == ["Ann Lee", "bob"]


def test_sample_matched_is_the_sample_nearest_to_the_looks_that_matched():
    g = gallery()
    looks = np.stack([unit([0.72, 0.69, 0]), unit([0.7, 0.71, 0.05]), unit([0, 0.1, 1])])
    assert g.sample_matched("ann", looks) == 2            # the third look matched bob, not ann
    assert g.sample_matched("ann", np.stack([unit([1, 0.02, 0])])) == 0
    assert g.sample_matched("bob", looks[:2]) is None
    assert g.sample_matched("nobody", looks) is None


def test_remove_samples_drops_only_those_and_refuses_to_empty_a_person():
    g = gallery()
    before = g.vectors_of("ann")
    assert g.remove_samples("ann", [2]) == 2
    assert np.allclose(g.vectors_of("ann"), before[:2])
    assert g.vectors_of("bob").shape == (1, 3)
    assert g.match(unit([0.7, 0.7, 0])).name is None            # the wrong sample no longer names it
    with pytest.raises(GalleryError, match="no sample"):
        g.remove_samples("bob", [0])
    with pytest.raises(GalleryError, match="no sample"):
        g.remove_samples("ann", [5])


def _settings(tmp_path) -> Settings:
    s = Settings()
    s.recognition.gallery = str(tmp_path / "g" / "gallery.npz")
    s.recognition.threshold = 0.2
    return s


def test_people_changes_go_through_the_lock_and_the_atomic_write(tmp_path):
    s = _settings(tmp_path)
    manifest = SimpleNamespace(name="emb", version="1", extra={})
    result = EnrollResult(samples=[Sample("a.jpg", (0, 0, 9, 9), unit([1, 0, 0]), 100.0),
                                   Sample("b.jpg", (0, 0, 9, 9), unit([0.7, 0.7, 0]), 100.0)])
    done = save_enrollment(s, manifest, "ann", result)
    assert done.total == 2 and done.message.startswith("enrolled ann: 2 new samples (2 in all, 0 skipped)")
    path = tmp_path / "g" / "gallery.npz"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (tmp_path / "g" / "gallery.npz.lock").exists()
    g, message = forget_match(s, manifest, "ann", [unit([0.72, 0.69, 0])])
    assert message == "ann: the sample that matched this face stopped counting (1 sample left)"
    assert Gallery.read(path).list()[0].samples == 1
    with pytest.raises(GalleryError, match="no longer matches"):
        forget_match(s, manifest, "ann", [unit([0.72, 0.69, 0])])
    g, message = rename_person(s, manifest, "ann", "Ann")
    assert Gallery.read(path).names() == ["Ann"] and message == "renamed ann to Ann"
    g, message = remove_person(s, manifest, "Ann")
    assert Gallery.read(path).names() == [] and "removed Ann (1 sample)" in message
    assert not list(path.parent.glob(".gallery.npz.*.tmp"))
