"""face-convert refuses bad input with one line and exit code 2, and never leaves a partial bundle."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("ai_edge_litert")

from converters.cli import main  # noqa: E402
from converters.synthetic import make_run  # noqa: E402
from edge.bundle import load_bundle  # noqa: E402


@keras.saving.register_keras_serializable(package="face_edge_tests")
class RunningSum(keras.layers.Layer):
    """A cumulative sum: TFLite has only a float CUMSUM kernel, so it cannot be int8-quantized."""

    def call(self, x):  # noqa: D102
        return keras.ops.cumsum(x, axis=-1)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("run") / "attributes", "attributes", n_train=300, n_heldout=100)


def _copy(run_dir: Path, tmp_path: Path, name: str = "run") -> Path:
    return Path(shutil.copytree(run_dir, tmp_path / name))


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert err and err[-1].startswith("face-convert: error: ")
    return err[-1]


def _no_leftovers(parent: Path, name: str) -> None:
    assert not (parent / name).exists()
    assert not [p for p in parent.iterdir() if p.name.startswith(f".{name}.")]


def test_not_a_run(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    line = _error(capsys, [str(tmp_path / "empty"), "--out", str(tmp_path / "b"), "-q"])
    assert "is not a run folder" in line and "run.yaml" in line
    _no_leftovers(tmp_path, "b")


def test_empty_representative_set(run_dir, tmp_path, capsys):
    run = _copy(run_dir, tmp_path)
    np.save(run / "samples" / "train_faces.npy", np.zeros((0, 32, 32, 3), np.uint8))
    line = _error(capsys, [str(run), "--out", str(tmp_path / "b"), "-q"])
    assert "representative set is empty" in line
    _no_leftovers(tmp_path, "b")


def test_op_that_cannot_be_int8_quantized(tmp_path, capsys):
    run = make_run(tmp_path / "run", "attributes", n_train=100, n_heldout=40, epochs=1)
    base = keras.models.load_model(run / "model.keras")
    feat = base.get_layer("attributes").input
    head = keras.layers.Dense(3, activation="sigmoid", name="attributes")(RunningSum()(feat))
    keras.Model(base.input, {"attributes": head}).save(run / "model.keras")
    line = _error(capsys, [str(run), "--out", str(tmp_path / "b"), "-q", "--no-compare"])
    assert "cannot be fully int8-quantized" in line and "CUMSUM" in line
    _no_leftovers(tmp_path, "b")
    assert main([str(run), "--out", str(tmp_path / "b"), "-q", "--no-compare", "--quant", "dynamic"]) == 0


def test_missing_signing_key(run_dir, tmp_path, capsys):
    line = _error(capsys, [str(run_dir), "--out", str(tmp_path / "b"), "-q", "--sign", str(tmp_path / "nokey.pem")])
    assert "nokey.pem" in line and "keygen" in line
    _no_leftovers(tmp_path, "b")


def test_output_folder_that_is_not_a_bundle(run_dir, tmp_path, capsys):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("mine")
    line = _error(capsys, [str(run_dir), "--out", str(tmp_path / "b"), "-q"])
    assert "not a bundle" in line
    assert (tmp_path / "b" / "notes.txt").read_text() == "mine"


def test_agreement_floor_refuses_and_force_writes(run_dir, tmp_path, capsys):
    # An all-black representative set calibrates every activation range to almost nothing.
    run = _copy(run_dir, tmp_path)
    np.save(run / "samples" / "train_faces.npy", np.zeros((50, 32, 32, 3), np.uint8))
    line = _error(capsys, [str(run), "--out", str(tmp_path / "b"), "-q", "--no-compare"])
    assert "below the floor 0.97" in line and "attributes" in line and "--force" in line
    _no_leftovers(tmp_path, "b")
    assert main([str(run), "--out", str(tmp_path / "b"), "-q", "--no-compare", "--force"]) == 0
    parity = json.loads((tmp_path / "b" / "parity.json").read_text())
    assert not parity["floor_met"] and parity["forced"] and parity["min_agreement"] < 0.97
    assert "NOT met" in (tmp_path / "b" / "MODEL_CARD.md").read_text()


def test_floor_above_reach_names_the_head_and_keeps_the_old_bundle(run_dir, tmp_path, capsys):
    out = tmp_path / "b"
    assert main([str(run_dir), "--out", str(out), "-q", "--no-compare"]) == 0
    before = (out / "manifest.yaml").read_bytes()
    line = _error(capsys, [str(run_dir), "--out", str(out), "-q", "--no-compare", "--floor", "1.01"])
    assert "head(s) attributes" in line
    assert (out / "manifest.yaml").read_bytes() == before
    load_bundle(out)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".b.")]
