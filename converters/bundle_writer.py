"""Write a bundle folder atomically: stage it in a temp folder beside the output, then rename.

Nothing is ever left half-written in the output folder: a failure removes the staging
folder, and an existing bundle at the output is only replaced once the new one is complete.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import yaml

from edge.bundle import GOLDEN, MANIFEST, MODEL_FILE, SIGNATURE, Manifest, manifest_to_dict, sha256_file
from edge.models import FaceModel

from .errors import ConvertError

PARITY_FILE = "parity.json"


def check_output_folder(out_dir: Path) -> None:
    """Raise ConvertError when ``out_dir`` exists and holds something other than a bundle."""
    if out_dir.exists():
        if not out_dir.is_dir():
            raise ConvertError(f"output {out_dir} exists and is not a folder")
        if any(out_dir.iterdir()) and not (out_dir / MANIFEST).is_file():
            raise ConvertError(f"output {out_dir} exists and is not a bundle; choose an empty or new folder")


@contextmanager
def staging_folder(out_dir: Path) -> Iterator[Path]:
    """Yield a fresh temp folder next to ``out_dir``; it is removed unless published."""
    parent = out_dir.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=parent))
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700; a published bundle is readable like any model file
    except OSError as exc:
        raise ConvertError(f"cannot write beside {out_dir} ({exc.strerror or exc})") from None
    try:
        yield tmp
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def publish(tmp: Path, out_dir: Path) -> Path:
    """Move the complete bundle ``tmp`` to ``out_dir`` (replacing an old bundle there); return out_dir."""
    out_dir = out_dir.resolve()
    check_output_folder(out_dir)
    old = None
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        os.rename(out_dir, old / "bundle")
    try:
        os.rename(tmp, out_dir)
    except OSError:
        if old is not None:
            os.rename(old / "bundle", out_dir)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out_dir


GOLDEN_ATOL = 0.01        # on dequantized outputs; edge.push also allows GOLDEN_MAX_STEPS output quantization steps
# Embeddings by direction: LiteRT's built-in int8 kernels agree with XNNPACK to 0.984 on demo faces and
# tflite_runtime 2.14 to ~0.988, so 0.96 leaves room for a Pi's kernels (edge.push.GOLDEN_MIN_COSINE).
GOLDEN_MIN_COSINE = 0.96


def write_golden(folder: Path, model: FaceModel, faces_rgb: np.ndarray) -> dict[str, Any]:
    """Write golden.npz in edge.push's format; return the manifest's ``golden`` entry.

    ``faces``: uint8 N x H x W x 3 RGB crops; one float32 N x k array per output name: the
    converted model's dequantized outputs, which the device reproduces before switching.
    """
    arrays: dict[str, np.ndarray] = {"faces": np.ascontiguousarray(faces_rgb, dtype=np.uint8)}
    outs = [model.raw_outputs(model.preprocess(np.ascontiguousarray(f[:, :, ::-1]))) for f in faces_rgb]
    for i, spec in enumerate(model.manifest.outputs):
        arrays[spec.name] = np.stack([o[i] for o in outs]).astype(np.float32)
    np.savez_compressed(folder / GOLDEN, **arrays)
    return {"file": GOLDEN, "faces": int(len(faces_rgb)), "atol": GOLDEN_ATOL, "min_cosine": GOLDEN_MIN_COSINE}


def write_json(folder: Path, name: str, data: Mapping[str, Any]) -> None:
    """Write ``data`` as indented JSON to ``folder/name``."""
    (folder / name).write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def write_manifest(folder: Path, manifest: Manifest) -> Manifest:
    """Record the sha256 of every file in ``folder`` (but the manifest and signature) and write manifest.yaml.

    Returns the manifest with its ``files`` filled in.
    """
    files = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and rel not in (MANIFEST, SIGNATURE):
            files[rel] = sha256_file(path)
    if MODEL_FILE not in files:
        raise ConvertError(f"internal: {MODEL_FILE} was not staged")
    from dataclasses import replace

    manifest = replace(manifest, files=files)
    text = yaml.safe_dump(_plain(manifest_to_dict(manifest)), sort_keys=False, allow_unicode=True, width=120)
    (folder / MANIFEST).write_text(text, encoding="utf-8")
    return manifest


def _plain(value: Any) -> Any:
    """Return ``value`` with numpy scalars, tuples and paths turned into YAML-safe builtins."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value
