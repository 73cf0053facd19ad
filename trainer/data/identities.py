"""Identity-labelled face image lists: identity folders, CelebA identity_CelebA.txt, ORL.

Every reader returns an :class:`IdentitySet`: parallel lists of image paths and identity
names, plus helpers to split it by identity (never by image) so held-out people stay unseen.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from trainer.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".webp")


@dataclass(frozen=True)
class IdentitySet:
    """Image paths with the identity (person name or number, as text) of each image."""

    paths: tuple[Path, ...]
    identities: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.paths)

    def people(self) -> list[str]:
        """Return the distinct identities, sorted."""
        return sorted(set(self.identities))

    def labels(self) -> tuple[list[int], list[str]]:
        """Return (integer label per image, identity name per label) with labels 0..K-1."""
        names = self.people()
        index = {name: i for i, name in enumerate(names)}
        return [index[i] for i in self.identities], names

    def by_identity(self) -> dict[str, list[Path]]:
        """Return {identity: [paths]} in the set's order."""
        groups: dict[str, list[Path]] = {}
        for path, ident in zip(self.paths, self.identities):
            groups.setdefault(ident, []).append(path)
        return groups

    def subset(self, people: Iterable[str]) -> "IdentitySet":
        """Return only the images of ``people``."""
        keep = set(people)
        rows = [(p, i) for p, i in zip(self.paths, self.identities) if i in keep]
        return IdentitySet(tuple(p for p, _ in rows), tuple(i for _, i in rows))

    def without(self, people: Iterable[str]) -> "IdentitySet":
        """Return the images of every identity except ``people``."""
        drop = set(people)
        return self.subset(i for i in self.people() if i not in drop)


def split_people(people: Sequence[str], holdout: int, seed: int = 1729) -> tuple[list[str], list[str]]:
    """Return (train people, held-out people): ``holdout`` identities drawn with a seeded shuffle."""
    if not 0 <= holdout <= len(people):
        raise DataError(f"cannot hold out {holdout} of {len(people)} identities")
    order = sorted(people)
    random.Random(seed).shuffle(order)
    return sorted(order[holdout:]), sorted(order[:holdout])


def read_identity_folders(root: str | Path, min_images: int = 1) -> IdentitySet:
    """Return the images of ``root/<identity>/<image>`` (one folder per person, e.g. celeba_wild, LFW).

    People with fewer than ``min_images`` images are left out.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such identity folder root (expected one sub-folder per person)")
    paths: list[Path] = []
    idents: list[str] = []
    for person in sorted(p for p in root.iterdir() if p.is_dir()):
        images = sorted(f for f in person.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if len(images) >= min_images:
            paths += images
            idents += [person.name] * len(images)
    if not paths:
        raise DataError(f"{root}: no images found in its sub-folders")
    return IdentitySet(tuple(paths), tuple(idents))


def read_celeba_identities(root: str | Path, images: str = "img_align_celeba",
                           identity_file: str = "identity_CelebA.txt") -> IdentitySet:
    """Return the CelebA images listed in ``identity_CelebA.txt`` that exist under ``root/images``.

    The identity file has lines ``NNNNNN.jpg <identity number>``; rows whose image is absent
    (subsets of CelebA) are skipped.
    """
    root = Path(root)
    ident_path = root / identity_file
    if not ident_path.is_file():
        raise DataError(f"{ident_path}: missing (CelebA identity file, lines 'NNNNNN.jpg <identity>')")
    folder = root / images
    present = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    if not present:
        raise DataError(f"{folder}: no images (expected the CelebA aligned images)")
    paths: list[Path] = []
    idents: list[str] = []
    for n, line in enumerate(ident_path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise DataError(f"{ident_path}:{n}: expected 'NNNNNN.jpg <identity>', got {line.strip()!r}")
        if parts[0] in present:
            paths.append(folder / parts[0])
            idents.append(parts[1])
    return IdentitySet(tuple(paths), tuple(idents))


def read_orl(root: str | Path) -> IdentitySet:
    """Return the ORL / AT&T faces (``s<N>/<k>.pgm``), identities ``s1`` .. ``s40`` in numeric order."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder (expected the ORL layout s1/1.pgm .. s40/10.pgm)")
    paths: list[Path] = []
    idents: list[str] = []
    subjects = sorted((p for p in root.iterdir() if p.is_dir() and p.name.startswith("s")),
                      key=lambda p: int(p.name[1:]) if p.name[1:].isdigit() else 0)
    for subject in subjects:
        images = sorted(subject.glob("*.pgm"), key=lambda p: int(p.stem) if p.stem.isdigit() else 0)
        paths += images
        idents += [subject.name] * len(images)
    if not paths:
        raise DataError(f"{root}: no s<N>/*.pgm images found")
    return IdentitySet(tuple(paths), tuple(idents))


def enroll_split(data: IdentitySet, per_person: int) -> tuple[list[int], list[int]]:
    """Return (enroll indices, probe indices): the first ``per_person`` images of each identity enroll."""
    seen: dict[str, int] = {}
    enroll, probe = [], []
    for i, ident in enumerate(data.identities):
        seen[ident] = seen.get(ident, 0) + 1
        (enroll if seen[ident] <= per_person else probe).append(i)
    return enroll, probe


def celeba_wild_split(data_root: str | Path, holdout: int = 30, val: int = 10,
                      seed: int = 1729) -> tuple[set[str], set[str]]:
    """Return (held-out people, validation people) of shared celeba_wild: the recognition split.

    The same seeded draws as the recogniser always used (``split_people`` with ``seed``, then
    ``seed + 1`` for validation among the rest), so every model holds out the same people.
    """
    root = Path(data_root) / "celeba_wild"
    people = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not people:
        raise DataError(f"{root}: no people folders")
    rest, held = split_people(people, holdout, seed)
    _, val_people = split_people(rest, val, seed + 1)
    return set(held), set(val_people)
