"""tflite_runtime 2.14 replays bundles from its own interpreter (it cannot share this one's numpy 2).

The venv is real: ``python -m venv`` + ``pip install tflite-runtime==2.14.0 "numpy<2"`` from
PyPI, kept under .cache/ between runs. Skipped with the reason when PyPI or the wheel is out of
reach (tflite-runtime has no wheel past CPython 3.11).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("ai_edge_litert")

from converters.foreign_runtime import check_with_python  # noqa: E402
from converters.regolden import regolden  # noqa: E402
from edge.bundle import load_bundle  # noqa: E402
from edge.models import FaceModel  # noqa: E402
from edge.runtime import get_runtime  # noqa: E402
from tests.conftest import REPO  # noqa: E402
from tests.helpers.tiny_bundles import build_multitask_bundle  # noqa: E402

VENV = REPO / ".cache" / "tflite-runtime-venv"
PYTHON = VENV / "bin" / "python"


@pytest.fixture(scope="module")
def tflite_runtime_python() -> Path:
    if not PYTHON.is_file():
        if sys.version_info >= (3, 12):
            pytest.skip("tflite-runtime 2.14 has no wheel for this Python")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    probe = subprocess.run([str(PYTHON), "-c", "import tflite_runtime.interpreter"], capture_output=True)
    if probe.returncode != 0:
        done = subprocess.run([str(PYTHON), "-m", "pip", "install", "-q", "tflite-runtime==2.14.0", "numpy<2"],
                              capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            pytest.skip(f"cannot install tflite-runtime==2.14.0 into {VENV}: {done.stderr.strip()[-200:]}")
    return PYTHON


@pytest.fixture()
def model(tmp_path: Path) -> FaceModel:
    folder = build_multitask_bundle(tmp_path / "multitask")
    regolden(folder)                               # golden.npz: the demo faces and LiteRT's outputs
    return FaceModel(load_bundle(folder), get_runtime("ai_edge_litert"))


def test_a_bundle_replays_in_tflite_runtime_like_in_litert(model: FaceModel, tflite_runtime_python: Path) -> None:
    label, verdict = check_with_python(model, tflite_runtime_python)
    assert label == "tflite_runtime 2.14.0"
    assert verdict == "ok"


def test_a_different_model_file_is_caught(model: FaceModel, tflite_runtime_python: Path, tmp_path: Path) -> None:
    other = build_multitask_bundle(tmp_path / "other", seed=7)
    swapped = tmp_path / "swapped"
    shutil.copytree(model.bundle.path, swapped)
    shutil.copy(other / "model.tflite", swapped / "model.tflite")
    model.bundle = replace(model.bundle, path=swapped)   # LiteRT keeps the loaded model; the child reads the other
    _, verdict = check_with_python(model, tflite_runtime_python)
    assert verdict != "ok" and "LiteRT" in verdict


def test_an_interpreter_without_tflite_runtime_is_reported(model: FaceModel) -> None:
    _, verdict = check_with_python(model, sys.executable)
    assert verdict.startswith("fails in") and "tflite_runtime" in verdict
