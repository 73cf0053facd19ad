"""recard: record an edited MODEL_CARD.md in its bundle's manifest (its sha256), and nothing else.

A model card is documentation: a user who adds a note to it should not have to convert the
model again. Every other file the manifest lists must still match its sha256 (a changed model
or golden face is refused, never re-hashed); the manifest is edited as text (every other line
stays as it was) and a signed bundle is re-signed with the key given. No TensorFlow needed.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

from edge.bundle import CARD, MANIFEST, SIGNATURE, load_bundle, read_manifest, sha256_file, verify_files
from edge.errors import BundleError

from .bundle_writer import publish, staging_folder
from .errors import ConvertError
from .regolden import edit_manifest_blocks


def recard(bundle_dir: str | Path, sign_key: Optional[str | Path] = None) -> str:
    """Record the bundle's current MODEL_CARD.md sha256 in its manifest; return the new digest.

    ConvertError when the card is missing, when any other listed file does not match its sha256,
    or when the bundle is signed and ``sign_key`` is not given.
    """
    from .signing import load_private_key, sign_manifest

    folder = Path(bundle_dir)
    if not (folder / CARD).is_file():
        raise ConvertError(f"bundle {folder}: no {CARD} to record")
    private_key = load_private_key(sign_key) if sign_key is not None else None
    if (folder / SIGNATURE).is_file() and private_key is None:
        raise ConvertError(f"bundle {folder} is signed: recording the card would break {SIGNATURE}; "
                           "pass --sign KEY (the key that signed it) to re-sign it")
    try:
        verify_files(folder, read_manifest(folder), skip=(CARD,))
    except BundleError as exc:
        raise ConvertError(f"{exc}; only {CARD} may have changed (convert the model again instead)") from None
    digest = sha256_file(folder / CARD)
    text = (folder / MANIFEST).read_text(encoding="utf-8")
    with staging_folder(folder) as tmp:
        shutil.copytree(folder, tmp, dirs_exist_ok=True)
        (tmp / SIGNATURE).unlink(missing_ok=True)
        (tmp / MANIFEST).write_text(edit_manifest_blocks(text, {}, {CARD: digest}), encoding="utf-8")
        if private_key is not None:
            sign_manifest(tmp, private_key)
        load_bundle(tmp, private_key.public_key() if private_key is not None else None)
        publish(tmp, folder)
    return digest
