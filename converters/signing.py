"""Ed25519 keys and manifest signatures (the format edge.bundle.verify_signature checks).

``keygen`` writes ``face-edge-signing.pem`` (PKCS#8 private key, mode 0600) and
``face-edge-signing.pub`` (SubjectPublicKeyInfo PEM, the file edge's config points at).
``sign_manifest`` writes manifest.sig: the base64 of the 64-byte signature of manifest.yaml.
"""
from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

from edge.bundle import MANIFEST, SIGNATURE

from .errors import ConvertError

PRIVATE_NAME = "face-edge-signing.pem"
PUBLIC_NAME = "face-edge-signing.pub"


def keygen(key_dir: str | Path, overwrite: bool = False) -> tuple[Path, Path]:
    """Write a new Ed25519 key pair into ``key_dir``; return (private_path, public_path)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key_dir = Path(key_dir)
    private_path, public_path = key_dir / PRIVATE_NAME, key_dir / PUBLIC_NAME
    if not overwrite and (private_path.exists() or public_path.exists()):
        raise ConvertError(f"{private_path} already exists; pass --force to replace the key pair")
    try:
        key_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConvertError(f"cannot create key folder {key_dir} ({exc.strerror})") from None
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    if private_path.exists():
        private_path.unlink()
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_pem)
    os.chmod(private_path, 0o600)
    public_path.write_bytes(public_pem)
    return private_path, public_path


def load_private_key(path: str | Path) -> Any:
    """Return the Ed25519 private key in the PEM file ``path``; ConvertError when missing or not Ed25519."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConvertError(f"signing key {path}: {exc.strerror or exc} (create one with: face-convert keygen --out DIR)") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except Exception as exc:
        raise ConvertError(f"signing key {path}: not an unencrypted PEM private key ({str(exc).splitlines()[0]})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConvertError(f"signing key {path}: not an Ed25519 key")
    return key


def sign_manifest(bundle_dir: str | Path, private_key: Any) -> Path:
    """Write manifest.sig (base64 Ed25519 signature of manifest.yaml) into ``bundle_dir``; return its path."""
    bundle_dir = Path(bundle_dir)
    signature = private_key.sign((bundle_dir / MANIFEST).read_bytes())
    path = bundle_dir / SIGNATURE
    path.write_bytes(base64.b64encode(signature) + b"\n")
    return path
