"""Signing: keygen, --sign, and edge's loader refusing tampered, unsigned or wrongly signed bundles."""
from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

pytest.importorskip("keras")
pytest.importorskip("ai_edge_litert")

from converters.cli import main  # noqa: E402
from converters.synthetic import make_run  # noqa: E402
from edge.bundle import SIGNATURE, load_bundle, load_public_key  # noqa: E402
from edge.errors import BundleError  # noqa: E402


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Return (signed bundle, public key, another key pair's public key)."""
    root = tmp_path_factory.mktemp("signed")
    run = make_run(root / "run", "distortion", n_train=200, n_heldout=60, epochs=3)
    assert main(["keygen", "--out", str(root / "keys")]) == 0
    assert main(["keygen", "--out", str(root / "other")]) == 0
    bundle = root / "bundle"
    assert main([str(run), "--out", str(bundle), "-q", "--no-compare",
                 "--sign", str(root / "keys" / "face-edge-signing.pem")]) == 0
    return bundle, root / "keys" / "face-edge-signing.pub", root / "other" / "face-edge-signing.pub"


def _tampered(bundle: Path, tmp_path: Path, name: str, offset_of: bytes, xor: int = 0x01) -> Path:
    copy = Path(shutil.copytree(bundle, tmp_path / "copy"))
    data = bytearray((copy / name).read_bytes())
    data[data.index(offset_of) if offset_of else len(data) // 2] ^= xor
    (copy / name).write_bytes(bytes(data))
    return copy


def test_keygen_writes_private_key_0600_and_refuses_to_overwrite(tmp_path, capsys):
    assert main(["keygen", "--out", str(tmp_path)]) == 0
    mode = stat.S_IMODE((tmp_path / "face-edge-signing.pem").stat().st_mode)
    assert mode == 0o600
    assert b"BEGIN PRIVATE KEY" in (tmp_path / "face-edge-signing.pem").read_bytes()
    load_public_key(tmp_path / "face-edge-signing.pub")
    assert main(["keygen", "--out", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_signed_bundle_verifies_with_its_key(signed):
    bundle, public, _ = signed
    loaded = load_bundle(bundle, load_public_key(public))
    assert loaded.signed


def test_wrong_key_and_unsigned_bundle_are_refused(signed, tmp_path):
    bundle, public, other = signed
    with pytest.raises(BundleError, match="signature does not match"):
        load_bundle(bundle, load_public_key(other))
    unsigned = Path(shutil.copytree(bundle, tmp_path / "unsigned"))
    (unsigned / SIGNATURE).unlink()
    load_bundle(unsigned)  # no key configured: accepted on its sha256 alone
    with pytest.raises(BundleError, match="unsigned"):
        load_bundle(unsigned, load_public_key(public))


def test_flipped_byte_in_model_is_refused(signed, tmp_path):
    bundle, _, _ = signed
    copy = _tampered(bundle, tmp_path, "model.tflite", b"")
    with pytest.raises(BundleError, match="model.tflite does not match its sha256"):
        load_bundle(copy)


def test_flipped_byte_in_manifest_is_refused(signed, tmp_path):
    bundle, public, _ = signed
    # A changed decision threshold still parses: only the signature can catch it.
    copy = _tampered(bundle, tmp_path, "manifest.yaml", b"tensor: distortion")
    with pytest.raises(BundleError):
        load_bundle(copy, load_public_key(public))
    # A byte that breaks UTF-8 is caught even without a key.
    shutil.rmtree(copy)
    copy = _tampered(bundle, tmp_path, "manifest.yaml", b"name:", xor=0x80)
    with pytest.raises(BundleError, match="not UTF-8"):
        load_bundle(copy)
    shutil.rmtree(copy)
    # A flipped recorded hash no longer matches its file.
    text = (bundle / "manifest.yaml").read_text()
    digest = text.split("model.tflite: ")[1][10:64].encode()  # flip a byte inside the hex digest
    copy = _tampered(bundle, tmp_path, "manifest.yaml", digest)
    with pytest.raises(BundleError, match="sha256"):
        load_bundle(copy)


def test_bad_signature_bytes_are_refused(signed, tmp_path):
    bundle, public, _ = signed
    copy = _tampered(bundle, tmp_path, SIGNATURE, b"", xor=0x02)
    with pytest.raises(BundleError, match="signature"):
        load_bundle(copy, load_public_key(public))
