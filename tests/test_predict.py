"""face-train predict and trainer.predict: any bundle or RUN on a folder of photos, with real OpenCV and LiteRT.

The shipped attributes and multitask bundles on public face_recognition example photos, tiny
real landmarks and aligned embedding bundles, a tiny RUN against the float bundle of the same
network, and a photo without a face.
"""
from __future__ import annotations

import ast
import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge import api
from edge.bundle import load_bundle, manifest_to_dict
from edge.config import ModelSettings, Settings
from edge.crop import CropSpec
from edge.runtime import native_stderr_filtered

from .conftest import shared_path
from .helpers.tiny_bundles import (BuildSpec, build_bundle, build_embedding_bundle, build_landmarks_bundle, keras_model,
                                   multitask_heads)

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models"
EXAMPLES = ("data", "face_recognition_examples")


def face_train(*argv: str) -> int:
    from trainer.cli import main

    return main(list(argv))


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two public example photos (three faces) and a grey picture without a face."""
    folder = tmp_path_factory.mktemp("photos")
    for name in ("obama_small.jpg", "two_people.jpg"):
        shutil.copy(shared_path(*EXAMPLES, name), folder / name)
    cv2.imwrite(str(folder / "wall.png"), np.full((240, 320, 3), 128, np.uint8))
    return folder


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def probability_columns(row: dict[str, str], head: str) -> dict[str, float]:
    return {k[len(head) + 1:-2]: float(v) for k, v in row.items() if k.startswith(head + "_") and k.endswith("_p")}


def test_shipped_multitask_on_a_folder_gives_every_probability_and_honest_confidences(
        photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out.csv"
    assert face_train("predict", str(SHIPPED / "multitask"), str(photos), "--csv", str(out)) == 0
    summary = capsys.readouterr()
    assert "XNNPACK" not in summary.err
    assert "3 faces in 2 of 3 photos" in summary.out
    assert "1 photo with no face Haar could find: one row each with face_found=0" in summary.out
    rows = read_rows(out)
    wall = [r for r in rows if r["image"].endswith("wall.png")]
    assert len(wall) == 1 and wall[0]["face_found"] == "0" and wall[0]["emotion"] == "" and wall[0]["face"] == ""
    faces = [r for r in rows if r["face_found"] == "1"]
    assert len(faces) == 3
    manifest = load_bundle(SHIPPED / "multitask").manifest
    threshold = manifest.output("gender").threshold("female")
    for row in faces:
        for head in ("emotion", "ethnicity"):
            probs = probability_columns(row, head)
            assert set(probs) == set(manifest.output(head).labels)
            assert abs(sum(probs.values()) - 1.0) < 0.01          # int8 outputs: steps of 1/256
            assert row[head] == max(probs, key=probs.get)
            assert float(row[f"{head}_confidence"]) == probs[row[head]]
        gender = probability_columns(row, "gender")
        assert set(gender) == {"female", "male"} and abs(sum(gender.values()) - 1.0) < 1e-3
        assert float(row["gender_confidence"]) == gender[row["gender"]] >= 0.5
        assert row["gender"] == ("female" if float(row["gender_score"]) >= threshold else "male")   # the device's call
        assert 0 < float(row["age"]) < 100 and row["age_group"]
        assert "age_confidence" not in row
    # The rows are what edge's image API (face-edge recognize) computes for the same faces.
    settings = Settings(models=ModelSettings(dir=str(SHIPPED), bundles=["multitask"]))
    analyzer = api.Analyzer.from_config(settings=settings, gallery=False)
    image = api.load_image(photos / "two_people.jpg")
    device = analyzer.analyze(image)
    csv_faces = [r for r in faces if r["image"].endswith("two_people.jpg")]
    assert [[int(r[k]) for k in "xywh"] for r in csv_faces] == [list(f.box) for f in device]
    for row, face in zip(csv_faces, device):
        emotion = face.predictions[0].heads["emotion"].scores
        assert all(abs(probability_columns(row, "emotion")[k] - v) < 1e-4 for k, v in emotion.items())
        assert row["gender"] == face.summary["gender"] and row["emotion"] == face.summary["emotion"]
        assert row["age_group"] == face.summary["age_group"]


def test_shipped_attributes_bundle_scores_and_decides_every_label(photos: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    from trainer.predict import attributes

    out = tmp_path / "attributes.csv"
    assert face_train("predict", str(SHIPPED / "attributes"), str(photos / "two_people.jpg"), str(photos / "wall.png"),
                      "--csv", str(out), "--largest", "--no-face", "whole") == 0
    assert "1 photo with no face Haar could find: predicted on the whole image" in capsys.readouterr().out
    rows = read_rows(out)
    assert [r["face_found"] for r in rows] == ["1", "0"] and rows[1]["Male_score"] != ""
    spec = load_bundle(SHIPPED / "attributes").manifest.output("attributes")
    for row in rows:
        for label in spec.labels:
            score, threshold = float(row[f"{label}_score"]), spec.threshold(label)
            if abs(score - threshold) > 1e-4:   # the CSV rounds scores to 4 decimals
                assert row[label] == str(int(score >= threshold))
        shown = row["attributes"].split(";") if row["attributes"] else []
        assert shown == [lb for lb in spec.labels if row[lb] == "1" and lb not in spec.unreliable]
    result = attributes.predict(photos / "two_people.jpg")
    assert result["face_found"] and result["box"] == [int(rows[0][k]) for k in "xywh"]
    assert abs(result["attributes"]["scores"]["Male"] - float(rows[0]["Male_score"])) < 1e-4
    assert attributes.predict(photos / "wall.png") == {"face_found": False, "box": None}
    with pytest.raises(Exception, match="its task is attributes, not multitask"):
        from trainer.predict import multitask

        multitask.predict(photos / "wall.png", model=SHIPPED / "attributes")


@pytest.fixture(scope="module")
def aligned_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("aligned")
    build_landmarks_bundle(root / "landmarks")
    build_embedding_bundle(root / "embedding", dim=16, crop=CropSpec(size=32, margin=0.25, kind="aligned"))
    return root


def test_tiny_aligned_embedding_and_landmarks_bundles(photos: Path, aligned_models: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    from trainer.predict import embedding, landmarks

    out = tmp_path / "embedding.csv"
    # The landmarks bundle beside the embedding bundle aligns the faces.
    assert face_train("predict", str(aligned_models / "embedding"), str(photos), "--csv", str(out), "--vectors") == 0
    assert "3 faces in 2 of 3 photos" in capsys.readouterr().out
    faces = [r for r in read_rows(out) if r["face_found"] == "1"]
    vectors = np.array([[float(r[f"embedding_{i:03d}"]) for i in range(16)] for r in faces])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert all(len(r["embedding_digest"]) == 12 and r["landmarks_x4"] for r in faces)
    settings = Settings(models=ModelSettings(dir=str(aligned_models), bundles=["landmarks", "embedding"]))
    analyzer = api.Analyzer.from_config(settings=settings, gallery=False)
    image = api.load_image(photos / "obama_small.jpg")
    device = analyzer.face_encodings(image)[0]
    result = embedding.predict(photos / "obama_small.jpg", model=aligned_models / "embedding")
    np.testing.assert_allclose(result["embedding"]["vector"], device, atol=1e-6)
    np.testing.assert_allclose(vectors[0], device, atol=1e-5)
    points = landmarks.predict(photos / "obama_small.jpg", model=aligned_models / "landmarks")
    np.testing.assert_allclose(points["landmarks"]["points"], analyzer.face_landmarks(image)[0], atol=1e-6)
    x, y, w, h = points["box"]
    assert all(x <= px <= x + w and y <= py <= y + h for px, py in points["landmarks"]["points"])
    out = tmp_path / "landmarks.csv"
    assert face_train("predict", str(aligned_models / "landmarks"), str(photos / "obama_small.jpg"),
                      "--csv", str(out)) == 0
    row = read_rows(out)[0]
    assert [float(row[f"landmarks_{c}{i}"]) for i in range(5) for c in "xy"] == pytest.approx(
        np.ravel(points["landmarks"]["points"]), abs=0.06)
    assert face_train("predict", str(aligned_models / "embedding"), str(photos), "--landmarks", str(tmp_path / "no")) == 2
    assert "--landmarks" in capsys.readouterr().err


def test_a_run_folder_predicts_what_its_bundle_predicts(photos: Path, tmp_path: Path) -> None:
    """A RUN (Keras, 0..255 input) and the float bundle converted from the same network agree on every column."""
    import keras

    from trainer.run import write_run

    spec = BuildSpec(multitask_heads(), quant="float")
    bundle = build_bundle(tmp_path / "bundle", "multitask", "multitask", spec.heads, quant="float")
    net = keras_model(spec)
    pixels = keras.Input((32, 32, 3), name="image")
    run_model = keras.Model(pixels, net(keras.layers.Rescaling(1 / 255.0)(pixels)))
    info = manifest_to_dict(load_bundle(bundle).manifest)
    info.pop("files", None)
    info["input"] = {**info["input"], "value_range": [0.0, 255.0]}
    faces = np.zeros((2, 32, 32, 3), np.uint8)
    write_run(tmp_path / "run", run_model, info, faces, faces, {"age": np.zeros(2)})
    outs = {}
    for name, model in (("bundle", bundle), ("run", tmp_path / "run")):
        outs[name] = tmp_path / f"{name}.csv"
        assert face_train("predict", str(model), str(photos), "--csv", str(outs[name])) == 0
    bundle_rows, run_rows = read_rows(outs["bundle"]), read_rows(outs["run"])
    assert len(bundle_rows) == len(run_rows) == 4
    for a, b in zip(bundle_rows, run_rows):
        assert a.keys() == b.keys()
        for key in a:
            if (key == "age" or key.endswith(("_p", "_confidence"))) and a[key]:
                assert abs(float(a[key]) - float(b[key])) < 2e-3, key
            else:
                assert a[key] == b[key], key


def test_the_xnnpack_notice_is_gone_and_native_errors_stay(tmp_path: Path) -> None:
    code = ("import os\n"
            "from edge.bundle import load_bundle\nfrom edge.models import FaceModel\n"
            "from edge.runtime import dropped_native_lines, native_stderr_filtered\n"
            f"FaceModel(load_bundle({str(SHIPPED / 'attributes')!r}))\n"
            "with native_stderr_filtered():\n"
            "    os.write(2, b'INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\nERROR: a real problem\\n')\n"
            "print(dropped_native_lines())\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "XNNPACK" not in done.stderr and "ERROR: a real problem" in done.stderr
    # kept for whoever asks whether XNNPACK started (scripts/golden_replay.py), never the real error
    assert "XNNPACK delegate" in done.stdout and "real problem" not in done.stdout
    with native_stderr_filtered():
        pass   # also usable where pytest has replaced sys.stderr


# The two modules that used to import each other, and the command on top of them.
PREDICT_MODULES = ("trainer.tasks.multitask", "trainer.predict.multitask", "trainer.commands.predict")


def test_each_predict_module_imports_alone() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    for name in PREDICT_MODULES:   # a fresh interpreter per module: nothing is half-imported by another
        done = subprocess.run([sys.executable, "-c", code, name], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, f"{name}: {done.stderr[-500:]}"


def import_graph(packages: tuple[str, ...]) -> dict[str, set[str]]:
    """Return {module: modules of ``packages`` it imports anywhere, function bodies included}."""
    files = {}
    for package in packages:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        here = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name in files}
            elif isinstance(node, ast.ImportFrom):
                base = here[:len(here) - node.level + 1] if node.level else []
                prefix = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:
                    name = f"{prefix}.{alias.name}"
                    deps.add(name if name in files else prefix)
        graph[module] = (deps & set(files)) - {module}
    return graph


def test_no_import_cycles_in_the_trainer_and_converters() -> None:
    graph = import_graph(("trainer", "converters"))
    assert "trainer.predict.multitask" in graph and "trainer.tasks.multitask" in graph
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(graph[module]):
            assert state.get(dep) != 1, "import cycle: " + " -> ".join(path[path.index(dep):] + [dep])
            if dep not in state:
                visit(dep, path + [dep])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
