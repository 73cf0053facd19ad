"""LFW pairs.txt reader and writer, identity-folder readers and the person-disjoint pair generator."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import shared_path
from trainer.data.identities import (IdentitySet, enroll_split, read_celeba_identities,
                                     read_identity_folders, read_orl, split_people)
from trainer.data.lfw_pairs import format_pairs, generate_pairs, parse_pairs, read_pairs, write_pairs
from trainer.errors import DataError

HANDMADE = """2\t2
Alice\t1\t2
Bob\t1\t3
Alice\t1\tBob\t2
Bob\t3\tCarol\t1
Carol\t1\t2
Alice\t2\t3
Alice\t3\tCarol\t2
Bob\t2\tAlice\t1
"""


def _lfw_tree(root: Path) -> None:
    for name, count in (("Alice", 3), ("Bob", 3), ("Carol", 2)):
        (root / name).mkdir(parents=True)
        for k in range(1, count + 1):
            (root / name / f"{name}_{k:04d}.jpg").write_bytes(b"x")


def test_reader_follows_the_official_layout(tmp_path: Path) -> None:
    _lfw_tree(tmp_path / "lfw")
    (tmp_path / "pairs.txt").write_text(HANDMADE)
    pairs = read_pairs(tmp_path / "pairs.txt", tmp_path / "lfw")
    assert len(pairs) == 8
    assert [p.same for p in pairs] == [True, True, False, False] * 2
    assert [p.fold for p in pairs] == [0] * 4 + [1] * 4
    assert pairs[0].left.name == "Alice_0001.jpg" and pairs[0].right.name == "Alice_0002.jpg"
    assert pairs[3].left.name == "Bob_0003.jpg" and pairs[3].right.name == "Carol_0001.jpg"


def test_reader_names_the_bad_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r":3: expected a matched"):
        parse_pairs(HANDMADE.replace("Bob\t1\t3", "Bob\t1\tCarol\t3"), "p.txt")
    with pytest.raises(DataError, match="header promises"):
        parse_pairs("10\t300\nAlice\t1\t2\n")
    _lfw_tree(tmp_path / "lfw")
    (tmp_path / "pairs.txt").write_text(HANDMADE.replace("Carol\t1\t2", "Carol\t1\t7"))
    with pytest.raises(DataError, match="no image number 7"):
        read_pairs(tmp_path / "pairs.txt", tmp_path / "lfw")


def test_generator_writes_pairs_the_reader_reads_back(tmp_path: Path) -> None:
    root = tmp_path / "people"
    for p in range(8):
        (root / f"id{p}").mkdir(parents=True)
        for k in range(4):
            (root / f"id{p}" / f"{100 + k * 7}.jpg").write_bytes(b"x")
    people = read_identity_folders(root)
    specs = generate_pairs(people, folds=4, per_class=3, seed=5)
    path = write_pairs(specs, tmp_path / "pairs.txt")
    assert path.read_text().splitlines()[0] == "4\t3"
    pairs = read_pairs(path, root)
    assert len(pairs) == 24 and sum(p.same for p in pairs) == 12
    for p in pairs:
        assert (p.left.parent == p.right.parent) == p.same and p.left != p.right
    # person-disjoint folds (8 people >= 2 x 4 folds)
    folds_of = {}
    for p in pairs:
        for side in (p.left, p.right):
            folds_of.setdefault(side.parent.name, set()).add(p.fold)
    assert all(len(f) == 1 for f in folds_of.values())
    assert format_pairs(parse_pairs(path.read_text())) == path.read_text()
    with pytest.raises(DataError, match="lower per_class"):
        generate_pairs(people, folds=4, per_class=50)


def test_split_people_is_disjoint_and_seeded() -> None:
    people = [str(i) for i in range(100)]
    train, held = split_people(people, 30, seed=3)
    assert len(held) == 30 and not set(train) & set(held) and len(train) == 70
    assert split_people(people, 30, seed=3) == (train, held)
    data = IdentitySet(tuple(Path(f"{i}.jpg") for i in range(6)), ("a", "a", "b", "b", "b", "c"))
    assert data.without(["b"]).identities == ("a", "a", "c")
    assert enroll_split(data, 1) == ([0, 2, 5], [1, 3, 4])


def test_shared_readers() -> None:
    orl = read_orl(shared_path("data", "orl"))
    assert len(orl) == 400 and len(orl.people()) == 40 and orl.paths[0].name == "1.pgm"
    wild = read_identity_folders(shared_path("data", "celeba_wild"))
    assert len(wild) == 1000 and len(wild.people()) == 100
    celeba = read_celeba_identities(shared_path("data", "celeba"))
    assert len(celeba) == 7943 and len(celeba.people()) == 4343
    # many celeba_wild people also have aligned images (same CelebA identity numbers): held-out
    # people must be removed from both folders
    assert len(set(wild.people()) & set(celeba.people())) >= 50
    labels, names = celeba.labels()
    assert max(labels) == len(names) - 1 and np.bincount(labels).min() >= 1
