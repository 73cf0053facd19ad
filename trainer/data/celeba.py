"""CelebA in its official layout: img_align_celeba/ + list_attr_celeba.txt (+ partition, identities).

Works unchanged on the full 202,599-image release and on subsets in the same layout. A
malformed or missing label file raises DataError naming the file and line; images listed
but absent raise DataError (or are skipped and counted with ``missing="skip"``). Corrupt
images are found, skipped and counted when crops are made (:mod:`trainer.faces`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..errors import DataError

ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
IDENTITY_FILE = "identity_CelebA.txt"
IMAGE_DIRS = ("img_align_celeba", "img_align_celeba_png", "img_celeba")
HEADLINE = ("Male", "Smiling", "Eyeglasses", "Blond_Hair", "Young")
PARTITIONS = {"train": 0, "val": 1, "test": 2}


@dataclass
class CelebA:
    """Labels of a CelebA folder: one row per image present, 0/1 attributes, identity, partition.

    ``identities`` and ``partition`` are -1 where the optional files are absent.
    """

    root: Path
    image_dir: Path
    files: list[str]
    attributes: list[str]
    labels: np.ndarray          # N x L int8, 0/1
    identities: np.ndarray      # N int64, -1 = unknown
    partition: np.ndarray       # N int8, 0 train / 1 val / 2 test, -1 = not listed
    missing: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def paths(self) -> list[Path]:
        """Return the image paths, aligned with ``labels``."""
        return [self.image_dir / f for f in self.files]

    def columns(self, names: Sequence[str]) -> list[int]:
        """Return the column index of each attribute name; DataError lists the valid names otherwise."""
        unknown = [n for n in names if n not in self.attributes]
        if unknown:
            raise DataError(f"{self.root / ATTR_FILE}: no attribute named {', '.join(unknown)}; "
                            f"valid: {' '.join(self.attributes)}")
        return [self.attributes.index(n) for n in names]

    def subset(self, index: np.ndarray | Sequence[int]) -> "CelebA":
        """Return a CelebA with only the rows in ``index``."""
        index = np.asarray(index)
        return CelebA(self.root, self.image_dir, [self.files[i] for i in index], self.attributes,
                      self.labels[index], self.identities[index], self.partition[index], self.missing)


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="strict").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: label file is missing") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a text file ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None


def parse_attr_file(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """Return (file names, attribute names, N x L int8 0/1 labels) of a list_attr_celeba.txt.

    Format: line 1 = row count, line 2 = attribute names, then 'NNNNNN.jpg v1 .. vL' with
    values -1/1 (0 is read as negative too). DataError names the file and line of any fault.
    """
    lines = _lines(path)
    if len(lines) < 2:
        raise DataError(f"{path}: expected a row count on line 1 and attribute names on line 2")
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise DataError(f"{path}:1: expected the number of rows, got {lines[0].strip()[:40]!r}") from None
    names = lines[1].split()
    if not names:
        raise DataError(f"{path}:2: no attribute names")
    if len(set(names)) != len(names):
        raise DataError(f"{path}:2: repeated attribute names")
    files: list[str] = []
    rows = np.zeros((max(count, 0), len(names)), np.int8)
    seen: set[str] = set()
    for lineno, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(names) + 1:
            raise DataError(f"{path}:{lineno}: expected an image name and {len(names)} values, "
                            f"got {len(parts)} fields")
        if len(files) >= count:
            raise DataError(f"{path}:{lineno}: more rows than the {count} announced on line 1")
        try:
            values = [int(v) for v in parts[1:]]
        except ValueError:
            raise DataError(f"{path}:{lineno}: attribute values must be -1 or 1") from None
        if any(v not in (-1, 0, 1) for v in values):
            raise DataError(f"{path}:{lineno}: attribute values must be -1 or 1")
        if parts[0] in seen:
            raise DataError(f"{path}:{lineno}: image {parts[0]} is listed twice")
        seen.add(parts[0])
        rows[len(files)] = np.asarray(values) > 0
        files.append(parts[0])
    if len(files) != count:
        raise DataError(f"{path}: line 1 announces {count} rows but {len(files)} follow")
    if not files:
        raise DataError(f"{path}: no image rows")
    return files, names, rows


def parse_two_column(path: Path, what: str) -> dict[str, int]:
    """Return {image name: integer} from a 'NNNNNN.jpg value' file; DataError names file and line."""
    out: dict[str, int] = {}
    for lineno, line in enumerate(_lines(path), start=1):
        parts = line.split()
        if not parts:
            continue
        if lineno == 1 and len(parts) == 2 and not parts[1].lstrip("-").isdigit():
            continue  # some copies carry a header line such as "image identity"
        if len(parts) != 2:
            raise DataError(f"{path}:{lineno}: expected 'image {what}', got {len(parts)} fields")
        try:
            out[parts[0]] = int(parts[1])
        except ValueError:
            raise DataError(f"{path}:{lineno}: {what} must be an integer, got {parts[1]!r}") from None
    return out


def read_celeba(root: str | Path, missing: str = "error") -> CelebA:
    """Return the CelebA labels of ``root`` (official layout), rows limited to images on disk.

    ``missing``: "error" raises DataError naming the first listed-but-absent image and its
    line; "skip" drops such rows and records them in ``CelebA.missing``.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: CelebA folder does not exist")
    image_dir = next((root / d for d in IMAGE_DIRS if (root / d).is_dir()), None)
    if image_dir is None:
        raise DataError(f"{root}: no image folder ({' or '.join(IMAGE_DIRS)})")
    attr_path = root / ATTR_FILE
    files, names, labels = parse_attr_file(attr_path)
    present = {p.name for p in image_dir.iterdir()}
    absent = [i for i, f in enumerate(files) if f not in present]
    if absent and missing == "error":
        i = absent[0]
        raise DataError(f"{attr_path}:{i + 3}: image {files[i]} is listed but not in {image_dir} "
                        f"({len(absent)} of {len(files)} listed images are absent; use --skip-missing to skip them)")
    if len(absent) == len(files):
        raise DataError(f"{image_dir}: none of the {len(files)} images listed in {attr_path.name} exist")
    keep = np.setdiff1d(np.arange(len(files)), absent)
    missing_files = [files[i] for i in absent]
    files = [files[i] for i in keep]
    labels = labels[keep]
    identities = np.full(len(files), -1, np.int64)
    partition = np.full(len(files), -1, np.int8)
    if (root / IDENTITY_FILE).is_file():
        ids = parse_two_column(root / IDENTITY_FILE, "identity")
        identities = np.array([ids.get(f, -1) for f in files], np.int64)
    if (root / PARTITION_FILE).is_file():
        parts = parse_two_column(root / PARTITION_FILE, "partition")
        bad = next((v for v in parts.values() if v not in (0, 1, 2)), None)
        if bad is not None:
            raise DataError(f"{root / PARTITION_FILE}: partition values must be 0, 1 or 2 (found {bad})")
        partition = np.array([parts.get(f, -1) for f in files], np.int8)
    return CelebA(root, image_dir, files, names, labels, identities, partition, missing_files)


def select_attributes(data: CelebA, spec: Optional[str | Sequence[str]]) -> list[str]:
    """Return attribute names from 'all', 'headline', a comma list or a sequence; unknown names raise."""
    if spec is None or spec == "all":
        return list(data.attributes)
    if spec == "headline":
        names = list(HEADLINE)
    elif isinstance(spec, str):
        names = [s.strip() for s in spec.split(",") if s.strip()]
    else:
        names = list(spec)
    data.columns(names)
    return names
