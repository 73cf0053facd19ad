"""LFW ``pairs.txt``: the official reader (10 folds) and a writer that builds such pairs from identity folders.

Format (Huang et al., LFW technical report): the first line is ``<folds> <pairs per class per fold>``
(a single number means one fold); then, per fold, that many matched lines ``name n1 n2`` followed
by that many mismatched lines ``name1 n1 name2 n2``. Image ``n`` of ``name`` is
``root/name/name_%04d.jpg`` in LFW; for other identity folders (e.g. celeba_wild, whose files
keep their original names) ``n`` is the 1-based position in the person's sorted file list.
"""
from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from trainer.data.identities import IMAGE_SUFFIXES, IdentitySet
from trainer.errors import DataError


@dataclass(frozen=True)
class PairSpec:
    """One pair as written in pairs.txt: names and 1-based image numbers, same person or not, fold."""

    name1: str
    n1: int
    name2: str
    n2: int
    fold: int

    @property
    def same(self) -> bool:
        """Return True for a matched (same person) pair."""
        return self.name1 == self.name2


@dataclass(frozen=True)
class Pair:
    """A resolved pair: two image paths, whether they show the same person, and the fold (0-based)."""

    left: Path
    right: Path
    same: bool
    fold: int


def parse_pairs(text: str, where: str = "pairs.txt") -> list[PairSpec]:
    """Return the PairSpecs of a pairs.txt text; DataError names the line that is wrong."""
    lines = [(n, line.split()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise DataError(f"{where}: empty pairs file")
    head_no, head = lines[0]
    try:
        folds, per_class = (1, int(head[0])) if len(head) == 1 else (int(head[0]), int(head[1]))
    except (ValueError, IndexError):
        raise DataError(f"{where}:{head_no}: expected '<folds> <pairs per class>', got {' '.join(head)!r}") from None
    expected = folds * per_class * 2
    body = lines[1:]
    if len(body) != expected:
        raise DataError(f"{where}: header promises {folds} folds x {per_class} x 2 = {expected} pairs, "
                        f"found {len(body)}")
    specs = []
    for k, (n, parts) in enumerate(body):
        fold, within = divmod(k, 2 * per_class)
        matched = within < per_class
        try:
            if matched and len(parts) == 3:
                specs.append(PairSpec(parts[0], int(parts[1]), parts[0], int(parts[2]), fold))
            elif not matched and len(parts) == 4:
                specs.append(PairSpec(parts[0], int(parts[1]), parts[2], int(parts[3]), fold))
            else:
                kind = "matched 'name n1 n2'" if matched else "mismatched 'name1 n1 name2 n2'"
                raise ValueError(f"expected a {kind} line")
        except ValueError as exc:
            raise DataError(f"{where}:{n}: {exc if 'expected' in str(exc) else 'image numbers must be integers'}"
                            f" (got {' '.join(parts)!r})") from None
    return specs


def image_path(root: Path, name: str, number: int) -> Path:
    """Return the file of image ``number`` (1-based) of person ``name`` under ``root``."""
    lfw = root / name / f"{name}_{number:04d}.jpg"
    if lfw.is_file():
        return lfw
    folder = root / name
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
    if not 1 <= number <= len(files):
        raise DataError(f"{root}: person {name!r} has no image number {number} ({len(files)} images found)")
    return files[number - 1]


def read_pairs(path: str | Path, root: str | Path) -> list[Pair]:
    """Return the resolved Pairs of the pairs.txt at ``path`` for images under ``root``."""
    path, root = Path(path), Path(root)
    if not path.is_file():
        raise DataError(f"{path}: no such pairs file")
    specs = parse_pairs(path.read_text(), str(path))
    return [Pair(image_path(root, s.name1, s.n1), image_path(root, s.name2, s.n2), s.same, s.fold)
            for s in specs]


def generate_pairs(people: IdentitySet, folds: int = 10, per_class: int = 60,
                   seed: int = 1729) -> list[PairSpec]:
    """Return LFW-style PairSpecs from identity folders: ``folds`` folds of ``per_class`` matched + mismatched.

    As in LFW, the folds are person-disjoint (each person belongs to one fold) when there are at
    least ``folds`` people with two or more images. Image numbers are 1-based positions in each
    person's sorted file list (see :func:`image_path`).
    """
    rng = random.Random(seed)
    groups = {name: sorted(paths) for name, paths in people.by_identity().items()}
    names = sorted(n for n, p in groups.items() if len(p) >= 2)
    if len(names) < 2:
        raise DataError("need at least two people with two or more images to build pairs")
    rng.shuffle(names)
    disjoint = len(names) >= 2 * folds
    parts = [names[f::folds] for f in range(folds)] if disjoint else [names] * folds
    specs: list[PairSpec] = []
    for fold, members in enumerate(parts):
        matched = [(n, a + 1, b + 1) for n in members for a, b in itertools.combinations(range(len(groups[n])), 2)]
        mismatched = [(n1, a + 1, n2, b + 1) for n1, n2 in itertools.combinations(members, 2)
                      for a in range(len(groups[n1])) for b in range(len(groups[n2]))]
        if len(matched) < per_class or len(mismatched) < per_class:
            raise DataError(f"fold {fold + 1}: only {len(matched)} matched / {len(mismatched)} mismatched "
                            f"pairs possible for {per_class} requested; lower per_class")
        specs += [PairSpec(n, a, n, b, fold) for n, a, b in rng.sample(matched, per_class)]
        specs += [PairSpec(n1, a, n2, b, fold) for n1, a, n2, b in rng.sample(mismatched, per_class)]
    return specs


def format_pairs(specs: Sequence[PairSpec]) -> str:
    """Return the pairs.txt text of ``specs`` (grouped per fold: matched lines, then mismatched)."""
    folds = sorted({s.fold for s in specs})
    per_fold = [[s for s in specs if s.fold == f] for f in folds]
    per_class = len([s for s in per_fold[0] if s.same])
    for f, items in zip(folds, per_fold):
        same = sum(s.same for s in items)
        if same != per_class or len(items) - same != per_class:
            raise DataError(f"fold {f}: pairs.txt needs {per_class} matched and {per_class} mismatched pairs")
    lines = [f"{len(folds)}\t{per_class}"]
    for items in per_fold:
        lines += [f"{s.name1}\t{s.n1}\t{s.n2}" for s in items if s.same]
        lines += [f"{s.name1}\t{s.n1}\t{s.name2}\t{s.n2}" for s in items if not s.same]
    return "\n".join(lines) + "\n"


def write_pairs(specs: Sequence[PairSpec], path: str | Path) -> Path:
    """Write ``specs`` as an official-format pairs.txt at ``path``; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(format_pairs(specs))
    return path
