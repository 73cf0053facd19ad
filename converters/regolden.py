"""regolden: rewrite an existing bundle's golden.npz from the project's own demo faces.

The bundle is verified first (schema, every sha256, the signature when re-signing), its
golden faces are replaced by :func:`converters.golden.demo_golden_faces` run through the
bundle's own model.tflite, MODEL_CARD.md gets the golden-faces note, and the manifest's
``golden`` entry and the sha256 of the rewritten files are updated; every other manifest
field is left as it was. The new bundle is staged beside the old one and swapped in with
a rename, like a conversion. No TensorFlow needed.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Optional

import yaml

from edge.bundle import CARD, GOLDEN, MANIFEST, SIGNATURE, load_bundle, sha256_file
from edge.models import FaceModel
from edge.runtime import get_runtime

from .bundle_writer import publish, staging_folder
from .errors import ConvertError
from .golden import CARD_NOTE, write_demo_golden

CARD_HEADING = "## Golden faces"


def add_card_note(text: str) -> str:
    """Return the model card ``text`` with CARD_NOTE after its golden-replay line, or in a short section at the end.

    A card that already carries the note is returned unchanged.
    """
    if CARD_NOTE in text:
        return text
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Golden faces replayed after writing"):
            lines[i + 1:i + 1] = ["", CARD_NOTE]
            return "\n".join(lines) + "\n"
    return text.rstrip("\n") + f"\n\n{CARD_HEADING}\n\n{CARD_NOTE}\n"


def top_level_block(lines: list[str], key: str) -> Optional[tuple[int, int]]:
    """Return the [start, end) line range of top-level ``key:`` and its indented body, or None."""
    for i, line in enumerate(lines):
        if line.startswith(f"{key}:"):
            end = i + 1
            while end < len(lines) and (lines[end].startswith((" ", "-")) or not lines[end].strip()):
                end += 1
            return i, end
    return None


def set_file_hashes(lines: list[str], hashes: dict[str, str]) -> None:
    """Set each ``name: sha256`` of ``hashes`` under the manifest ``lines``' top-level ``files`` block, in place
    (an entry replaced where it is, a new one added at the block's end, the block added when absent)."""
    start, end = top_level_block(lines, "files") or (len(lines), len(lines))
    if start == len(lines):
        lines.append("files:")
        end = start + 1
    for name, digest in hashes.items():
        entry = f"  {name}: {digest}"
        at = next((j for j in range(start + 1, end) if lines[j].split(":")[0].strip() == name), None)
        if at is None:
            lines.insert(end, entry)
            end += 1
        else:
            lines[at] = entry


def edit_manifest_blocks(text: str, blocks: dict[str, Any], hashes: dict[str, str]) -> str:
    """Return manifest ``text`` with each top-level entry of ``blocks`` set (replaced where it stands, else added
    before ``files``) and ``hashes`` set under ``files``.

    Edited as text so every other line stays byte for byte; the result is checked to parse to the old
    manifest with just these changes (ConvertError otherwise, nothing written).
    """
    lines = text.splitlines()
    for key, value in blocks.items():
        dumped = yaml.safe_dump({key: value}, sort_keys=False, allow_unicode=True, width=120).splitlines()
        where = top_level_block(lines, key)
        if where is None:
            files_at = top_level_block(lines, "files")
            where = (files_at[0], files_at[0]) if files_at else (len(lines), len(lines))
        lines[where[0]:where[1]] = dumped
    set_file_hashes(lines, hashes)
    new_text = "\n".join(lines) + "\n"
    expected = yaml.safe_load(text)
    expected.update(blocks)
    expected.setdefault("files", {}).update(hashes)
    if yaml.safe_load(new_text) != expected:
        changed = " and ".join([*blocks, "files"])
        raise ConvertError(f"internal: the manifest edit changed more than {changed}; nothing was written")
    return new_text


def regolden(bundle_dir: str | Path, sign_key: Optional[str | Path] = None, faces: int = 4) -> dict[str, Any]:
    """Rewrite golden.npz (and the card note) of the bundle in ``bundle_dir``; return the new ``golden`` entry.

    A signed bundle (manifest.sig) is refused unless ``sign_key`` (the Ed25519 private key
    that signed it) is given; it is then re-signed. Raises ConvertError / BundleError with
    one line when the bundle does not verify or the rewritten one does not replay its golden faces.
    """
    from edge.push import compare_golden

    from .signing import load_private_key, sign_manifest

    folder = Path(bundle_dir)
    private_key = load_private_key(sign_key) if sign_key is not None else None
    if (folder / SIGNATURE).is_file() and private_key is None:
        raise ConvertError(f"bundle {folder} is signed: rewriting golden.npz would break {SIGNATURE}; "
                           "pass --sign KEY (the key that signed it) to re-sign it")
    public_key = private_key.public_key() if private_key is not None and (folder / SIGNATURE).is_file() else None
    bundle = load_bundle(folder, public_key)  # refuses a tampered bundle or one signed by another key
    runtime = get_runtime("ai_edge_litert")
    model = FaceModel(bundle, runtime, num_threads=1)
    text = (folder / MANIFEST).read_text(encoding="utf-8")
    raw = yaml.safe_load(text)

    with staging_folder(folder) as tmp:
        shutil.copytree(folder, tmp, dirs_exist_ok=True)
        (tmp / SIGNATURE).unlink(missing_ok=True)
        golden = write_demo_golden(tmp, model, faces, folder.parent / "landmarks")
        card = tmp / CARD
        if card.is_file():
            card.write_text(add_card_note(card.read_text(encoding="utf-8")), encoding="utf-8")
        previous = raw.get("golden") if isinstance(raw.get("golden"), dict) else {}
        golden = {**previous, **golden}
        hashes = {GOLDEN: sha256_file(tmp / GOLDEN)}
        if CARD in (raw.get("files") or {}):
            hashes[CARD] = sha256_file(card)
        (tmp / MANIFEST).write_text(edit_manifest_blocks(text, {"golden": golden}, hashes), encoding="utf-8")
        if private_key is not None:
            sign_manifest(tmp, private_key)
        new_public = private_key.public_key() if private_key is not None else None
        check = FaceModel(load_bundle(tmp, new_public), runtime, num_threads=1)
        report = compare_golden(check)
        if not report.ok:
            raise ConvertError(f"bundle {folder}: the rewritten golden faces do not replay ({report.detail})")
        publish(tmp, folder)
    return golden
