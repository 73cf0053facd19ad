"""face-convert recard: an edited model card is recorded in the manifest; nothing else may have changed."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("ai_edge_litert")

from converters.cli import main as convert_main  # noqa: E402
from converters.recard import recard  # noqa: E402
from converters.signing import keygen, load_private_key, sign_manifest  # noqa: E402
from edge.bundle import CARD, MANIFEST, load_bundle, load_public_key  # noqa: E402
from edge.errors import BundleError  # noqa: E402
from tests.helpers.tiny_bundles import build_attributes_bundle  # noqa: E402


@pytest.fixture(scope="module")
def base_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_attributes_bundle(tmp_path_factory.mktemp("recard") / "attributes")


@pytest.fixture
def bundle(base_bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(base_bundle, tmp_path / "attributes"))


def test_an_edited_card_is_recorded_and_every_other_manifest_line_kept(bundle: Path, capsys) -> None:
    before = (bundle / MANIFEST).read_text().splitlines()
    (bundle / CARD).write_text((bundle / CARD).read_text() + "\nMeasured again on our door camera.\n")
    with pytest.raises(BundleError, match=CARD):
        load_bundle(bundle)
    assert convert_main(["recard", str(bundle)]) == 0
    assert "recorded" in capsys.readouterr().out
    assert load_bundle(bundle).manifest.files[CARD]
    after = (bundle / MANIFEST).read_text().splitlines()
    assert [a for a, b in zip(before, after) if a != b] == [line for line in before if line.startswith(f"  {CARD}:")]


def test_a_changed_model_is_refused_not_rehashed(bundle: Path, capsys) -> None:
    manifest = (bundle / MANIFEST).read_text()
    model = bundle / "model.tflite"
    model.write_bytes(model.read_bytes()[:-1] + b"\0")
    assert convert_main(["recard", str(bundle)]) != 0
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "model.tflite does not match" in err
    assert (bundle / MANIFEST).read_text() == manifest


def test_a_signed_bundle_needs_its_key_and_is_signed_again(bundle: Path, tmp_path: Path, capsys) -> None:
    private, public = keygen(tmp_path / "keys")
    sign_manifest(bundle, load_private_key(private))
    (bundle / CARD).write_text((bundle / CARD).read_text() + "\nA note.\n")
    assert convert_main(["recard", str(bundle)]) != 0
    assert "is signed" in capsys.readouterr().err
    recard(bundle, sign_key=private)
    assert load_bundle(bundle, load_public_key(public)).signed
