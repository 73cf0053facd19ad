"""Embedding distances (edge.distance): a euclidean model's raw vectors are stored, matched, calibrated,
smoothed and checked by |a - b|; a cosine one's as unit vectors; a bundle's two statements of it agree."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.bundle import OutputSpec, parse_manifest
from edge.distance import check_distance, pairwise, prepare
from edge.errors import BundleError, GalleryError
from edge.gallery import Gallery, model_calibration, nearest_impostor_distances
from edge.models import HeadResult, interpret_output
from edge.track import smooth

DIM = 8


def vec(*values: float) -> np.ndarray:
    v = np.zeros(DIM, np.float32)
    v[:len(values)] = values
    return v


def manifest(unit: str = "", distance: str | None = None, centre: list[float] | None = None):
    output = {"name": "embedding", "kind": "embedding", **({"unit": unit} if unit else {}),
              **({"centre": centre} if centre else {})}
    data = {"name": "embedding", "task": "embedding", "version": "1", "input": {"height": 32, "width": 32},
            "outputs": [output]}
    if distance is not None:
        data["recognition"] = {"threshold": 0.6, "distance": distance}
    return parse_manifest(data)


def test_a_euclidean_gallery_keeps_the_models_own_vectors_and_matches_by_their_difference(tmp_path: Path) -> None:
    gallery = Gallery.load(tmp_path / "g.npz", "emb", "1", threshold=0.6, distance="euclidean")
    gallery.add("anna", vec(1.0, 0.0))
    gallery.add("ben", vec(0.0, 2.0))
    np.testing.assert_array_equal(gallery.vectors_of("ben")[0], vec(0.0, 2.0))   # not normalised
    same_direction = gallery.match(vec(0.0, 1.0))            # cosine 0 from ben, but 1.0 away from him
    assert (same_direction.nearest, same_direction.name) == ("ben", None)
    assert same_direction.distance == pytest.approx(1.0)
    near = gallery.match(vec(0.1, 1.8))
    assert (near.name, near.distance) == ("ben", pytest.approx(np.hypot(0.1, 0.2), abs=1e-6))
    gallery.save()
    again = Gallery.load(tmp_path / "g.npz", "emb", "1", threshold=0.6, distance="euclidean")
    assert again.distance == "euclidean" and again.match(vec(0.1, 1.8)).name == "ben"


def test_a_gallery_is_not_read_with_another_distance_than_it_was_made_with(tmp_path: Path) -> None:
    cosine = Gallery.load(tmp_path / "g.npz", "emb", "1")
    cosine.add("anna", vec(1.0, 0.0))
    cosine.save()
    assert Gallery.read(tmp_path / "g.npz").distance == "cosine"
    with pytest.raises(GalleryError, match="re-enroll") as refused:
        Gallery.load(tmp_path / "g.npz", "emb", "1", distance="euclidean")
    assert "emb v1 (cosine distance)" in str(refused.value) and "emb v1 (euclidean distance)" in str(refused.value)


def test_the_calibration_of_a_euclidean_gallery_uses_euclidean_nearest_impostors() -> None:
    vectors = prepare(np.stack([vec(1.0), vec(1.3), vec(0.0, 1.0)]), "euclidean")
    nearest = nearest_impostor_distances(vectors, np.array([0, 1, 2]), "euclidean")
    np.testing.assert_allclose(nearest, [0.3, 0.3, np.sqrt(2.0)], atol=1e-6)
    # By cosine the first two are the same direction: 0 apart.
    np.testing.assert_allclose(nearest_impostor_distances(prepare(vectors, "cosine"), np.array([0, 1, 2])),
                               [0.0, 0.0, 1.0], atol=1e-6)
    a, b = np.random.default_rng(0).normal(size=(2, 5, DIM)).astype(np.float32)
    np.testing.assert_allclose(pairwise(a, b, "euclidean"), np.linalg.norm(a[:, None] - b[None], axis=2), atol=1e-5)


def test_a_euclidean_output_gives_raw_vectors_and_its_track_mean_is_not_renormalised() -> None:
    spec = OutputSpec("embedding", "embedding", unit="euclidean")
    y = np.array([0.3, -0.4, 0.0], np.float32)
    looked = interpret_output(spec, y)
    np.testing.assert_array_equal(looked.vector, y)
    mean = smooth([looked, interpret_output(spec, np.array([0.1, -0.2, 0.0], np.float32))])
    np.testing.assert_allclose(mean.vector, [0.2, -0.3, 0.0], atol=1e-7)
    unit = smooth([interpret_output(OutputSpec("embedding", "embedding"), y)] * 2)
    assert np.linalg.norm(unit.vector) == pytest.approx(1.0)
    assert isinstance(mean, HeadResult)


def test_a_bundle_states_its_distance_once_consistently() -> None:
    assert model_calibration(manifest("euclidean", "euclidean"))["distance"] == "euclidean"
    assert model_calibration(manifest())["distance"] == "cosine"                # older bundles: cosine
    with pytest.raises(BundleError, match="recognition.distance is cosine but output embedding's unit is euclidean"):
        manifest("euclidean", "cosine")
    with pytest.raises(BundleError, match="not one of cosine, euclidean"):
        manifest("manhattan")
    with pytest.raises(BundleError, match="cannot have one"):
        manifest("euclidean", centre=[0.1] * DIM)
    with pytest.raises(ValueError):
        check_distance("l1")


def test_the_trainers_impostor_tail_is_in_the_distance_the_bundle_declares() -> None:
    from trainer.dlib_port.build import impostor_tail

    rng = np.random.default_rng(3)
    vectors = (rng.normal(size=(60, DIM)) * rng.uniform(0.5, 2.0, size=(60, 1))).astype(np.float32)
    people = [str(i // 3) for i in range(60)]
    i, j = np.triu_indices(60, 1)
    different = np.array([people[a] != people[b] for a, b in zip(i, j)])
    gaps = np.linalg.norm(vectors[i] - vectors[j], axis=1)[different]
    tail = impostor_tail(vectors, people, distance="euclidean")
    # (the rates are stored to 3 significant digits, the distances at the unrounded rates)
    np.testing.assert_allclose(tail["distances"], np.quantile(gaps, tail["rates"]), rtol=0.01)
    assert tail["pairs"] == different.sum()
    cosine = impostor_tail(vectors, people)
    assert max(cosine["distances"]) <= 2.0 and cosine["distances"] != tail["distances"]


def test_the_golden_replay_of_a_euclidean_model_checks_the_vectors_length_too() -> None:
    from edge.push import golden_error

    want = np.array([0.3, -0.4, 0.1], np.float32)
    euclidean, cosine = OutputSpec("embedding", "embedding", unit="euclidean"), OutputSpec("embedding", "embedding")
    for spec in (euclidean, cosine):
        error, allowed = golden_error(spec, want * 1.01, want, scale=0.0)
        assert error <= allowed
    error, allowed = golden_error(euclidean, want * 1.5, want, scale=0.0)     # same direction, half again as long
    assert error > allowed
    error, allowed = golden_error(cosine, want * 1.5, want, scale=0.0)        # a cosine model does not care
    assert error <= allowed


def test_reembedding_kept_photos_adopts_the_new_models_distance(tmp_path: Path) -> None:
    old = Gallery.load(tmp_path / "g.npz", "emb", "1.0.0")
    photos = np.zeros((2, 160, 160, 3), np.uint8)
    photos[1] += 50
    old.add("anna", np.stack([vec(1.0), vec(0.9, 0.1)]), photos)
    old.save()
    with pytest.raises(GalleryError, match="reembed"):
        Gallery.load(tmp_path / "g.npz", "emb", "1.1.0", distance="euclidean")
    gallery = Gallery.read(tmp_path / "g.npz")
    gallery.reembed(lambda photo: vec(2.0 + photo.mean() / 50.0), "emb", "1.1.0", "euclidean")
    gallery.save()
    again = Gallery.load(tmp_path / "g.npz", "emb", "1.1.0", distance="euclidean")
    np.testing.assert_allclose(again.vectors_of("anna")[:, 0], [2.0, 3.0])    # the new model's own vectors
    assert again.match(vec(2.9)).name == "anna" and again.match(vec(2.9)).distance == pytest.approx(0.1, abs=1e-6)
