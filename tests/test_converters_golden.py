"""Golden faces come from the shipped public-domain demo clip: converters.golden, face-convert regolden.

Real LiteRT on tiny real bundles (tests/helpers/tiny_bundles.py); one real conversion of a tiny
synthetic run (TensorFlow) for the converter's own golden faces.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("ai_edge_litert")

from converters.cli import main as convert_main  # noqa: E402
from converters.golden import CARD_NOTE, RECIPES, demo_golden_faces  # noqa: E402
from converters.regolden import add_card_note, regolden  # noqa: E402
from converters.signing import keygen  # noqa: E402
from edge.bundle import CARD, GOLDEN, MANIFEST, SIGNATURE, InputSpec, load_bundle, load_public_key, read_manifest  # noqa: E402
from edge.crop import CropSpec  # noqa: E402
from edge.errors import BundleError  # noqa: E402
from edge.models import FaceModel  # noqa: E402
from edge.push import compare_golden  # noqa: E402
from edge.runtime import get_runtime  # noqa: E402
from tests.helpers.tiny_bundles import build_attributes_bundle, build_multitask_bundle  # noqa: E402


@pytest.fixture(scope="module")
def base_bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("golden")
    return {"attributes": build_attributes_bundle(root / "attributes"),
            "multitask": build_multitask_bundle(root / "multitask", crop=CropSpec(64, 0.3, -0.05))}


@pytest.fixture
def bundle(base_bundles: dict[str, Path], tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    name = getattr(request, "param", "attributes")
    return Path(shutil.copytree(base_bundles[name], tmp_path / name))


def _model(folder: Path, public_key=None) -> FaceModel:
    return FaceModel(load_bundle(folder, public_key), get_runtime("ai_edge_litert"), num_threads=1)


def test_demo_faces_are_deterministic_distinct_and_follow_the_crop_spec() -> None:
    spec = InputSpec(height=48, width=48)
    faces = demo_golden_faces(CropSpec(48, 0.25, 0.0), spec, 4)
    assert faces.shape == (4, 48, 48, 3) and faces.dtype == np.uint8
    assert np.array_equal(faces, demo_golden_faces(CropSpec(48, 0.25, 0.0), spec, 4))
    assert len({f.tobytes() for f in faces}) == 4                                   # four distinct faces
    wider = demo_golden_faces(CropSpec(48, 0.6, 0.0), spec, 4)
    assert np.abs(wider.astype(int) - faces.astype(int)).mean() > 5                  # the bundle's margin is used
    assert demo_golden_faces(CropSpec(112, 0.2, 0.0), InputSpec(112, 112), 2).shape == (2, 112, 112, 3)
    # The astronaut clip is skin and a grey-blue background: a face crop's centre is warm (R > B).
    centre = faces[:, 16:32, 16:32].reshape(-1, 3).mean(axis=0)
    assert centre[0] > centre[2] + 20
    with pytest.raises(Exception, match="between 1 and"):
        demo_golden_faces(CropSpec(48), spec, len(RECIPES) + 1)


@pytest.mark.parametrize("bundle", ["attributes", "multitask"], indirect=True)
def test_regolden_writes_demo_faces_and_keeps_the_bundle_loadable(bundle: Path) -> None:
    before_text = (bundle / MANIFEST).read_text()
    before = yaml.safe_load(before_text)
    model_bytes = (bundle / "model.tflite").read_bytes()
    golden = regolden(bundle)
    assert golden["faces"] == 4 and "demo.mp4" in golden["source"]

    loaded = load_bundle(bundle)                                         # every sha256 matches
    manifest = loaded.manifest
    with np.load(bundle / GOLDEN) as data:
        arrays = {k: data[k] for k in data.files}
    assert np.array_equal(arrays["faces"], demo_golden_faces(manifest.crop, manifest.input, 4))
    model = _model(bundle)
    for i, face in enumerate(arrays["faces"]):                           # recorded outputs = this model's outputs
        outs = model.raw_outputs(model.preprocess(np.ascontiguousarray(face[:, :, ::-1])))
        for spec, y in zip(manifest.outputs, outs):
            np.testing.assert_allclose(y, arrays[spec.name][i], atol=1e-6)
    assert compare_golden(model).ok
    assert (bundle / "model.tflite").read_bytes() == model_bytes

    after = yaml.safe_load((bundle / MANIFEST).read_text())
    assert after["golden"] == golden and after["golden"]["file"] == GOLDEN
    assert set(after["files"]) == set(before["files"]) | {GOLDEN}
    assert after["files"]["model.tflite"] == before["files"]["model.tflite"]
    strip = lambda raw: {k: v for k, v in raw.items() if k not in ("golden", "files")}  # noqa: E731
    assert strip(after) == strip(before)                                 # nothing else in the manifest changed
    assert CARD_NOTE in (bundle / CARD).read_text()
    assert not list(bundle.parent.glob(f".{bundle.name}.*"))             # no staging folder left behind

    card = (bundle / CARD).read_text()
    regolden(bundle)                                                     # idempotent: same faces, one note
    assert (bundle / CARD).read_text() == card and card.count(CARD_NOTE) == 1
    assert load_bundle(bundle).manifest.files == manifest.files


def test_regolden_refuses_a_signed_bundle_without_the_key(bundle: Path, tmp_path: Path, capsys) -> None:
    from converters.signing import load_private_key, sign_manifest

    private, public = keygen(tmp_path / "keys")
    sign_manifest(bundle, load_private_key(private))
    before = {p.name: p.read_bytes() for p in bundle.iterdir()}

    assert convert_main(["regolden", str(bundle)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is signed" in err and "--sign" in err
    assert {p.name: p.read_bytes() for p in bundle.iterdir()} == before  # nothing touched

    other, _ = keygen(tmp_path / "other")
    with pytest.raises(BundleError, match="signature does not match"):
        regolden(bundle, sign_key=other)
    assert {p.name: p.read_bytes() for p in bundle.iterdir()} == before

    assert convert_main(["regolden", str(bundle), "--sign", str(private)]) == 0
    assert "re-signed" in capsys.readouterr().out
    key = load_public_key(public)
    model = _model(bundle, key)                                          # the new signature verifies
    assert model.bundle.signed and compare_golden(model).ok
    assert (bundle / SIGNATURE).read_bytes() != before[SIGNATURE]


def test_regolden_refuses_a_tampered_bundle(bundle: Path) -> None:
    card = bundle / CARD
    card.write_text(card.read_text() + "edited\n")
    with pytest.raises(BundleError, match="does not match its sha256"):
        regolden(bundle)
    assert not (bundle / GOLDEN).exists()


def test_card_note_goes_after_the_golden_replay_line_or_in_its_own_section() -> None:
    card = "# x\n\nGolden faces replayed after writing: ai_edge_litert ok.\n\n## Limits\n"
    with_note = add_card_note(card)
    assert with_note.index(CARD_NOTE) < with_note.index("## Limits")
    assert add_card_note(with_note) == with_note
    assert add_card_note("# x\n").endswith(f"## Golden faces\n\n{CARD_NOTE}\n")


def test_shipped_bundles_carry_demo_golden_faces() -> None:
    """models/*/golden.npz: the demo faces for each bundle's crop and input (no research images)."""
    from converters.golden import golden_landmarker

    repo = Path(__file__).resolve().parents[1]
    for folder in sorted((repo / "models").glob("*/golden.npz")):
        manifest = read_manifest(folder.parent)
        landmarker = golden_landmarker(manifest.crop, repo / "models" / "landmarks")  # aligned chips need it
        with np.load(folder) as data:
            assert np.array_equal(data["faces"], demo_golden_faces(manifest.crop, manifest.input,
                                                                   len(data["faces"]), landmarker)), folder


@pytest.mark.slow
def test_conversion_writes_demo_golden_faces(tmp_path: Path) -> None:
    pytest.importorskip("keras")
    from converters.convert import convert_run
    from converters.synthetic import make_run

    run = make_run(tmp_path / "run", "attributes", n_train=120, n_heldout=40, epochs=1)
    out = convert_run(run, tmp_path / "bundle", quant="int8", rep_size=50, compare_modes=False, latency_repeats=2)
    manifest = load_bundle(out).manifest
    with np.load(out / GOLDEN) as data:
        faces = data["faces"]
    assert np.array_equal(faces, demo_golden_faces(manifest.crop, manifest.input, 4))
    heldout = np.load(run / "samples" / "heldout_faces.npy")
    assert not any(np.array_equal(f, h) for f in faces for h in heldout[:8])
    assert "demo.mp4" in manifest.extra["golden"]["source"]
    assert CARD_NOTE in (out / CARD).read_text()
    assert compare_golden(_model(out)).ok


def test_golden_faces_and_regolden_need_no_tensorflow() -> None:
    import subprocess
    import sys

    code = ("import sys, converters.golden, converters.regolden, converters.cli; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'tensorflow imported'")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
