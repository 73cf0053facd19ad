"""The gallery: storage (atomic, 0600, no pickle), refusals, nearest-person matching, threshold calibration."""
from __future__ import annotations

import math
import os
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edge.bundle import parse_manifest
from edge.errors import GalleryError
from edge.gallery import (DEFAULT_THRESHOLD, FLOOR_FRACTION, Gallery, calibrate_threshold, check_name,
                          STRANGER_ACCEPT_RATE, model_threshold, nearest_impostor_distances)

DIM = 128


def unit(*pairs: tuple[int, float]) -> np.ndarray:
    """Return the unit vector with the given (axis, weight) components."""
    v = np.zeros(DIM, np.float32)
    for axis, weight in pairs:
        v[axis] = weight
    return v / np.linalg.norm(v)


def at_distance(base_axis: int, other_axis: int, distance: float) -> np.ndarray:
    """Return a unit vector whose cosine distance to e[base_axis] is exactly ``distance``."""
    cos = 1.0 - distance
    return unit((base_axis, cos), (other_axis, math.sqrt(1.0 - cos * cos)))


def two_people(tmp_path: Path) -> Gallery:
    gallery = Gallery.load(tmp_path / "g" / "gallery.npz", "emb", "1.0")
    gallery.add("alice", np.stack([unit((0, 1.0)), at_distance(0, 10, 0.05)]))
    gallery.add("bob", unit((1, 1.0)))
    return gallery


def test_roundtrip_is_an_npz_without_pickle_and_mode_0600(tmp_path: Path) -> None:
    gallery = two_people(tmp_path)
    path = gallery.save()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["header.npy", "owners.npy", "vectors.npy"]  # no photos by default
    with np.load(path, allow_pickle=False) as npz:  # readable without pickle
        assert npz["vectors"].shape == (3, DIM)
    again = Gallery.load(path, "emb", "1.0")
    assert [(p.name, p.samples) for p in again.list()] == [("alice", 2), ("bob", 1)]
    np.testing.assert_allclose(again.vectors_of("alice"), gallery.vectors_of("alice"))
    assert (again.model_name, again.model_version) == ("emb", "1.0")


def test_missing_file_is_an_empty_gallery_that_names_nobody(tmp_path: Path) -> None:
    gallery = Gallery.load(tmp_path / "none.npz", "emb", "1")
    assert len(gallery) == 0
    match = gallery.match(unit((0, 1.0)))
    assert match.name is None and math.isinf(match.distance)
    gallery.save()  # an empty gallery (nobody enrolled yet, or the last one removed) round-trips
    assert len(Gallery.load(tmp_path / "none.npz", "emb", "1")) == 0
    full = two_people(tmp_path)
    for name in full.names():
        full.remove(name)
    full.save()
    assert Gallery.load(full.path, "emb", "1.0").names() == []


def test_match_is_the_nearest_member_and_unknown_above_the_threshold(tmp_path: Path) -> None:
    gallery = two_people(tmp_path)
    gallery.threshold_override = 0.3
    # Nearer to alice's second member than to her first: distance is to the nearest member.
    probe = at_distance(0, 10, 0.06)
    m = gallery.match(probe * 3.0)  # not normalised: match normalises
    assert m.name == "alice" and m.distance < 0.02
    m = gallery.match(at_distance(1, 20, 0.25))
    assert m.name == "bob" and m.distance == pytest.approx(0.25, abs=1e-5)
    m = gallery.match(at_distance(1, 20, 0.35))
    assert m.name is None and m.nearest == "bob" and m.distance == pytest.approx(0.35, abs=1e-5)
    with pytest.raises(GalleryError, match="size 64"):
        gallery.match(np.ones(64, np.float32))


@pytest.mark.parametrize("bad", ["", "   ", "a/b", "../etc", "..", "x\\y", ".hidden", "a\nb", "c:d", "x" * 65])
def test_names_with_path_characters_or_empty_are_refused(tmp_path: Path, bad: str) -> None:
    gallery = Gallery.load(tmp_path / "g.npz", "emb", "1")
    with pytest.raises(GalleryError, match="name"):
        gallery.add(bad, unit((0, 1.0)))
    assert len(gallery) == 0


def test_ordinary_names_are_kept() -> None:
    assert check_name("  Anne-Marie O'Neil ") == "Anne-Marie O'Neil"
    assert check_name("José_2") == "José_2"


def test_gallery_of_another_model_asks_to_re_enroll(tmp_path: Path) -> None:
    path = two_people(tmp_path).save()
    with pytest.raises(GalleryError, match=r"made with model emb v1\.0.*now emb v2\.0.*re-enroll"):
        Gallery.load(path, "emb", "2.0")
    with pytest.raises(GalleryError, match="re-enroll"):
        Gallery.load(path, "other", "1.0")


def test_gallery_with_kept_photos_asks_to_reembed(tmp_path: Path) -> None:
    gallery = Gallery.load(tmp_path / "g.npz", "emb", "1.0")
    photos = np.zeros((1, 160, 160, 3), np.uint8)
    gallery.add("alice", unit((0, 1.0)), photos)
    gallery.save()
    with pytest.raises(GalleryError, match="face-edge gallery reembed"):
        Gallery.load(tmp_path / "g.npz", "emb", "2.0")
    kept = Gallery.read(tmp_path / "g.npz")
    assert kept.has_photos and kept.photos_of("alice").shape == (1, 160, 160, 3)
    # Re-embedding adopts the new model and replaces the vectors.
    kept.reembed(lambda photo: unit((5, 1.0)), "emb", "2.0")
    kept.save()
    again = Gallery.load(tmp_path / "g.npz", "emb", "2.0")
    assert again.match(unit((5, 1.0))).name == "alice"


@pytest.mark.parametrize("damage", ["garbage", "truncated", "not-a-gallery", "bad-owner", "path-name", "pickle"])
def test_corrupt_file_is_refused_and_left_as_it_was(tmp_path: Path, damage: str) -> None:
    path = two_people(tmp_path).save()
    good = path.read_bytes()
    if damage == "garbage":
        bad = b"\x00\x01 definitely not an npz"
    elif damage == "truncated":
        bad = good[: len(good) // 2]
    elif damage == "not-a-gallery":
        import io
        buf = io.BytesIO()
        np.savez(buf, vectors=np.zeros((1, 4), np.float32))
        bad = buf.getvalue()
    elif damage == "bad-owner":
        g = Gallery.read(path)
        g._owners[0] = 7  # a vector that belongs to nobody
        bad = g.to_bytes()
    elif damage == "path-name":
        g = Gallery.read(path)
        g._people[0] = "../../etc"  # a hand-edited file must not smuggle in a path-like name
        bad = g.to_bytes()
    else:
        import io
        buf = io.BytesIO()  # an object array needs pickle to load: refused, never unpickled
        np.savez(buf, header=np.array([{"format": "face-edge-gallery"}], dtype=object))
        bad = buf.getvalue()
    path.write_bytes(bad)
    with pytest.raises(GalleryError, match="corrupt or not a face-edge gallery.*left untouched"):
        Gallery.load(path, "emb", "1.0")
    assert path.read_bytes() == bad  # refused, not "repaired" or overwritten
    assert "\n" not in str(pytest.raises(GalleryError, Gallery.read, path).value)


def test_crash_between_write_and_rename_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gallery = two_people(tmp_path)
    path = gallery.save()
    before = path.read_bytes()
    gallery.add("carol", unit((2, 1.0)))

    def crash(src: str, dst: str) -> None:  # the power goes out after the temp file is written
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(GalleryError, match="previous file is kept"):
        gallery.save()
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["gallery.npz"]  # no temp file left behind
    assert Gallery.load(path, "emb", "1.0").names() == ["alice", "bob"]
    gallery.save()
    assert Gallery.load(path, "emb", "1.0").names() == ["alice", "bob", "carol"]


def test_remove_and_merge(tmp_path: Path) -> None:
    gallery = two_people(tmp_path)
    other = Gallery(gallery.model_name, gallery.model_version)
    other.add("bob", unit((3, 1.0)))
    other.add("dan", unit((4, 1.0)))
    with pytest.raises(GalleryError, match="already enrolled: bob"):
        gallery.merge(other)
    assert gallery.merge(other, replace=True) == ["bob", "dan"]
    gallery.threshold_override = 0.2
    assert gallery.match(unit((3, 1.0))).name == "bob"
    assert gallery.match(unit((1, 1.0))).name is None  # bob's old sample was replaced
    assert gallery.remove("alice") == 2
    assert gallery.names() == ["bob", "dan"] and gallery.match(unit((4, 1.0))).name == "dan"
    with pytest.raises(GalleryError, match="'alice' is not enrolled"):
        gallery.remove("alice")
    with pytest.raises(GalleryError, match="model"):
        gallery.merge(Gallery("emb", "9"))


# ---- the threshold, on vectors with known geometry ------------------------------------------

def test_nearest_impostor_distance_is_to_the_closest_other_person() -> None:
    # alice: e0 and a vector 0.1 from it; bob: e1 and 0.6 e1 + 0.8 e0 (0.2 from e0).
    vectors = np.stack([unit((0, 1.0)), at_distance(0, 9, 0.1), unit((1, 1.0)), at_distance(1, 0, 0.4)])
    owners = np.array([0, 0, 1, 1])
    d = nearest_impostor_distances(vectors, owners)
    np.testing.assert_allclose(d, [0.2, 1.0 - 0.9 * 0.8, 1.0, 0.2], atol=1e-6)
    assert nearest_impostor_distances(vectors, np.zeros(4)).size == 0  # one person: no impostors


def test_well_separated_people_keep_the_models_threshold() -> None:
    vectors = np.stack([unit((i, 1.0)) for i in range(6)])  # orthogonal: every impostor distance is 1.0
    assert calibrate_threshold(vectors, np.arange(6), ceiling=0.45) == (0.45, "model")
    assert calibrate_threshold(vectors, np.arange(6), ceiling=None) == (DEFAULT_THRESHOLD, "default")


def test_look_alikes_pull_the_threshold_down_to_their_distance(tmp_path: Path) -> None:
    gallery = Gallery.load(tmp_path / "g.npz", "emb", "1", model_threshold=0.5)
    gallery.add("anna", unit((0, 1.0)))
    gallery.add("berta", at_distance(0, 1, 0.3))  # anna's look-alike sister, 0.3 apart
    threshold, origin = gallery.threshold_and_source()
    assert origin == "gallery" and threshold == pytest.approx(0.3, abs=1e-5)
    # A stranger 0.35 from anna would pass the model's 0.5 but not this gallery's threshold.
    assert gallery.match(at_distance(0, 7, 0.35)).name is None
    assert gallery.match(at_distance(0, 7, 0.25)).name == "anna"


def synthetic_people(rng: np.random.Generator, people: int, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (vectors, owners): ``people`` random directions in 128-d, each with ``samples`` noisy copies."""
    centres = rng.normal(size=(people, DIM))
    vectors = np.concatenate([c + 0.3 * rng.normal(size=(samples, DIM)) for c in centres])
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), np.repeat(np.arange(people), samples)


def test_the_calibrated_threshold_is_the_quantile_of_nearest_impostors_within_its_bounds() -> None:
    vectors, owners = synthetic_people(np.random.default_rng(0), 40, 3)
    q = float(np.quantile(nearest_impostor_distances(vectors, owners), STRANGER_ACCEPT_RATE))
    assert 0.6 < q < 1.0
    assert calibrate_threshold(vectors, owners, ceiling=1.2) == (pytest.approx(q), "gallery")
    assert calibrate_threshold(vectors, owners, ceiling=0.5) == (0.5, "model")
    # A floor keeps a gallery of near-twins from making everyone unknown.
    assert calibrate_threshold(vectors, owners, ceiling=1.9)[0] == pytest.approx(max(q, FLOOR_FRACTION * 1.9))


def test_the_threshold_tightens_with_gallery_size_and_names_few_strangers() -> None:
    rng = np.random.default_rng(1)
    strangers, _ = synthetic_people(rng, 300, 1)  # people drawn like the enrolled ones, never enrolled
    ceiling = 1.0                                 # a loose model threshold: it alone names almost every stranger
    stats = {}
    for size in (5, 40):
        rows = []
        for _ in range(20):
            vectors, owners = synthetic_people(rng, size, 3)
            t, origin = calibrate_threshold(vectors, owners, ceiling=ceiling)
            assert origin == "gallery"
            nearest = (1.0 - strangers @ vectors.T).min(axis=1)
            rows.append((t, np.mean(nearest <= t), np.mean(nearest <= ceiling)))
        stats[size] = np.mean(rows, axis=0)
    assert stats[40][0] < stats[5][0]  # more people, more look-alikes for a stranger: stricter
    assert stats[5][2] > 0.95 and stats[40][2] > 0.99
    # With 40 people the nearest-impostor quantile lets about STRANGER_ACCEPT_RATE of strangers through
    # (0.07 measured); with 5 people its estimate is rougher (0.28 measured) but far below the ceiling's.
    assert stats[40][1] < 2 * STRANGER_ACCEPT_RATE, stats
    assert stats[5][1] < 0.4, stats


def test_twins_hit_the_floor_and_config_overrides_everything(tmp_path: Path) -> None:
    gallery = Gallery.load(tmp_path / "g.npz", "emb", "1", model_threshold=0.4)
    gallery.add("tom", unit((0, 1.0)))
    gallery.add("tim", at_distance(0, 1, 0.05))
    assert gallery.threshold == pytest.approx(FLOOR_FRACTION * 0.4)
    gallery.threshold_override = 0.33
    assert gallery.threshold_and_source() == (0.33, "config")


def test_one_person_uses_the_models_threshold(tmp_path: Path) -> None:
    gallery = Gallery.load(tmp_path / "g.npz", "emb", "1", model_threshold=0.42)
    gallery.add("solo", np.stack([unit((0, 1.0)), unit((1, 1.0))]))
    assert gallery.threshold_and_source() == (0.42, "model")


def test_model_threshold_comes_from_the_manifest_extra_key() -> None:
    base = {"name": "embedding", "task": "embedding", "version": "1.2", "input": {"height": 112, "width": 112},
            "outputs": [{"name": "embedding", "kind": "embedding"}]}
    assert model_threshold(parse_manifest({**base, "recognition": {"threshold": 0.37}})) == 0.37
    assert model_threshold(parse_manifest(base)) is None
    assert model_threshold(parse_manifest({**base, "recognition": {"threshold": "high"}})) is None


def test_the_lock_lets_one_change_at_a_time(tmp_path: Path) -> None:
    import threading
    import time

    from edge.gallery import gallery_lock

    path = tmp_path / "g" / "gallery.npz"
    order: list[str] = []
    inside = threading.Event()

    def second() -> None:
        inside.wait()
        with gallery_lock(path):
            order.append("second in")

    thread = threading.Thread(target=second)
    thread.start()
    with gallery_lock(path):
        inside.set()
        time.sleep(0.3)  # the second enrollment is waiting on the lock meanwhile
        order.append("first out")
    thread.join(5)
    assert order == ["first out", "second in"]
    assert stat.S_IMODE(os.stat(str(path) + ".lock").st_mode) == 0o600


# ---- ownership on the Pi: the gallery belongs to the service user ----------------------------

needs_root = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                                reason="changing file owners needs root")
SERVICE_UID = 4321  # stands in for the `face-edge` service user (no such account needs to exist)


@needs_root
def test_sudo_enrollment_keeps_the_gallery_the_service_users(tmp_path: Path) -> None:
    from edge.gallery import gallery_lock

    folder = tmp_path / "var-lib-face-edge" / "gallery"
    folder.mkdir(parents=True)
    os.chown(folder, SERVICE_UID, SERVICE_UID)
    path = folder / "gallery.npz"
    with gallery_lock(path):
        two_people(tmp_path).save(path)
    for made in (path, Path(str(path) + ".lock")):
        st = os.stat(made)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (SERVICE_UID, SERVICE_UID, 0o600)


@needs_root
def test_another_user_is_told_to_run_as_the_galleries_owner() -> None:
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="face-edge-owner-", dir="/tmp"))  # pytest's tmp is root-only
    try:
        os.chmod(base, 0o755)
        folder = base / "gallery"
        folder.mkdir()
        os.chmod(folder, 0o777)  # even a writable folder: a file its owner cannot read must not be made
        os.chown(folder, SERVICE_UID, SERVICE_UID)
        root_file = base / "root.npz"
        two_people(base).save(root_file)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child becomes an ordinary user (nobody) and tries both
            try:
                os.close(read_end)
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
                out = []
                for action in (lambda: Gallery("emb", "1").save(folder / "gallery.npz"),
                               lambda: Gallery.read(root_file)):
                    try:
                        action()
                        out.append("no error")
                    except GalleryError as exc:
                        out.append(str(exc))
                os.write(write_end, "\n".join(out).encode())
            except BaseException as exc:  # anything else is reported to the parent, which fails
                os.write(write_end, f"child failed: {exc!r}".encode())
            finally:
                os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end) as fh:
            lines = fh.read().splitlines()
        os.waitpid(pid, 0)
        assert len(lines) == 2, lines
        assert "belongs to user 4321" in lines[0] and "sudo -u 4321 face-edge" in lines[0]
        assert "permission denied" in lines[1] and "sudo -u face-edge" in lines[1]
        assert not (folder / "gallery.npz").exists()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_an_embedding_centre_in_the_manifest_is_removed_before_matching() -> None:
    from edge.bundle import OutputSpec, manifest_to_dict
    from edge.errors import BundleError
    from edge.models import interpret_output

    centre = (0.6, 0.0, 0.0)
    spec = OutputSpec("embedding", "embedding", centre=centre)
    a = interpret_output(spec, np.array([2.0, 1.0, 0.0], np.float32)).vector
    b = interpret_output(spec, np.array([2.0, -1.0, 0.0], np.float32)).vector
    plain = OutputSpec("embedding", "embedding")
    pa = interpret_output(plain, np.array([2.0, 1.0, 0.0], np.float32)).vector
    pb = interpret_output(plain, np.array([2.0, -1.0, 0.0], np.float32)).vector
    assert math.isclose(float(np.linalg.norm(a)), 1.0, rel_tol=1e-6)
    assert float(a @ b) < float(pa @ pb)            # the shared direction no longer makes them look alike
    with pytest.raises(BundleError, match="centre has 3 values"):
        interpret_output(spec, np.ones(4, np.float32))
    raw = {"schema": 1, "name": "e", "task": "embedding", "version": "1", "created": "x",
           "input": {"height": 8, "width": 8, "channels": 3}, "crop": {"size": 8},
           "outputs": [{"name": "embedding", "kind": "embedding", "centre": list(centre)}], "files": {}}
    manifest = parse_manifest(raw, "test")
    assert manifest.outputs[0].centre == centre
    assert manifest_to_dict(manifest)["outputs"][0]["centre"] == list(centre)


# ---- the model's impostor tail (manifest recognition.impostor_tail) -------------------------------------

def impostor_tail_of(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return (rates, distances) measured like the trainer does: pairs of different synthetic people."""
    vectors, owners = synthetic_people(rng, 400, 1)
    dist = 1.0 - vectors @ vectors.T
    pairs = np.sort(dist[np.triu_indices(len(vectors), 1)])
    rates = np.logspace(-4, -0.5, 20)
    return rates, np.quantile(pairs, rates)


def test_the_tail_threshold_names_about_the_target_share_of_strangers_from_the_first_person_on() -> None:
    from edge.gallery import tail_threshold

    rng = np.random.default_rng(2)
    tail = impostor_tail_of(rng)
    strangers, _ = synthetic_people(rng, 400, 1)
    named = {}
    for people in (1, 5, 30):
        rows = []
        for _ in range(10):
            vectors, owners = synthetic_people(rng, people, 3)
            t, origin = calibrate_threshold(vectors, owners, ceiling=1.2, impostor_tail=tail)
            assert t <= tail_threshold(tail, len(vectors)) + 1e-9
            assert origin == "tail" if people == 1 else origin in ("tail", "gallery")  # one person: no impostors
            rows.append(np.mean((1.0 - strangers @ vectors.T).min(axis=1) <= t))
        named[people] = float(np.mean(rows))
    assert tail_threshold(tail, 90) < tail_threshold(tail, 3)          # more samples, stricter
    assert all(n < 2.5 * STRANGER_ACCEPT_RATE for n in named.values()), named


def test_look_alikes_still_tighten_a_tail_threshold_and_the_floor_is_named(tmp_path: Path) -> None:
    from edge.gallery import describe_threshold

    tail = (np.array([1e-3, 0.1]), np.array([0.6, 0.8]))
    gallery = Gallery.load(tmp_path / "g.npz", "emb", "1", model_threshold=0.9, impostor_tail=tail)
    gallery.add("anna", unit((0, 1.0)))
    assert gallery.threshold_and_source()[1] == "tail"
    gallery.add("berta", at_distance(0, 1, 0.5))                      # a sister: 0.5 from anna
    assert gallery.threshold_and_source() == (pytest.approx(0.5, abs=1e-5), "gallery")
    gallery.add("clara", at_distance(0, 2, 0.2))                      # a twin: below the floor of 0.45
    threshold, origin = gallery.threshold_and_source()
    assert (origin, threshold) == ("floor", pytest.approx(FLOOR_FRACTION * 0.9))
    assert "the floor, 0.5 x the model's 0.900" in describe_threshold(threshold, origin, 0.9)


def test_a_broken_impostor_tail_in_a_manifest_is_ignored() -> None:
    from edge.gallery import model_calibration

    base = {"name": "embedding", "task": "embedding", "version": "1", "input": {"height": 32, "width": 32},
            "outputs": [{"name": "embedding", "kind": "embedding"}]}
    good = {"threshold": 0.09, "impostor_tail": {"rates": [1e-5, 1e-2], "distances": [0.03, 0.08]}}
    assert model_calibration(parse_manifest({**base, "recognition": good}))["impostor_tail"] is not None
    for tail in ({"rates": [1e-2, 1e-5], "distances": [0.03, 0.08]}, {"rates": [0.1]}, "steep"):
        calibration = model_calibration(parse_manifest({**base, "recognition": {**good, "impostor_tail": tail}}))
        assert calibration == {"model_threshold": 0.09, "impostor_tail": None, "distance": "cosine"}
