"""face-edge run | check | bench | info: exit codes, one-line errors, outputs."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import pytest

from edge.cli import build_parser, main

from .conftest import REPO
from .helpers.tiny_bundles import build_attributes_bundle, build_multitask_bundle, corrupt_model


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli-models")
    build_attributes_bundle(root / "attributes")
    build_multitask_bundle(root / "multitask", metrics={"age_mae_years": 6.25, "gender": {"accuracy": 0.91}})
    return root


@pytest.fixture
def config(built, tmp_path) -> Path:
    models = tmp_path / "models"
    shutil.copytree(built, models)
    path = tmp_path / "edge.yaml"
    path.write_text(f"source:\n  realtime: false\nmodels:\n  dir: {models}\n  bundles: [attributes, multitask]\n"
                    f"recognition:\n  gallery: {tmp_path / 'gallery.npz'}\n")
    return path


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "FACE_EDGE_CONFIG")}
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("face-edge: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_every_command_is_registered():
    text = build_parser().format_help()
    for command in ("run", "check", "bench", "info"):
        assert command in text


def test_missing_config_file_exits_2_with_one_line(tmp_path):
    done = _cli("run", "--config", str(tmp_path / "nope.yaml"))
    assert done.returncode == 2
    assert "nope.yaml does not exist" in _one_error_line(done.stderr)


@pytest.mark.parametrize("text,key", [("detector:\n  min_sise: 30\n", "detector.min_sise: unknown key"),
                                      ("tracker:\n  iou: high\n", "tracker.iou: expected float"),
                                      ("models: [a, b]\n", "models: expected a mapping")])
def test_bad_config_names_the_key(tmp_path, capsys, text, key, monkeypatch):
    monkeypatch.delenv("FACE_EDGE_CONFIG", raising=False)
    path = tmp_path / "edge.yaml"
    path.write_text(text)
    assert main(["run", "--config", str(path)]) == 2
    assert key in _one_error_line(capsys.readouterr().err)


def test_missing_camera_and_unreadable_video_exit_2(tmp_path, capsys):
    assert main(["run", "--source", "/dev/video9", "--no-display"]) == 2
    assert "/dev/video9 does not exist" in _one_error_line(capsys.readouterr().err)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 4096)
    assert main(["run", "--source", str(junk), "--no-display"]) == 2
    assert "cannot be read" in _one_error_line(capsys.readouterr().err)


def test_run_headless_records_and_writes_events(config, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    out, events = tmp_path / "out.avi", tmp_path / "events.jsonl"
    assert main(["run", "--config", str(config), "--max-frames", "12", "--record", str(out),
                 "--events", str(events), "--log-level", "info"]) == 0
    err = capsys.readouterr().err
    assert "running headless" in err and "stopped after 12 frames" in err
    cap = cv2.VideoCapture(str(out))
    frames = 0
    while cap.read()[0]:
        frames += 1
    assert frames == 12
    kinds = [json.loads(line)["event"] for line in events.read_text().splitlines()]
    assert kinds[0] == "appear" and kinds[-1] == "leave"


def test_sigterm_stops_cleanly(config):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "run", "--config", str(config), "--no-display",
                             "--source", "demo"], cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    started = threading.Event()

    def read() -> None:
        for line in proc.stderr:
            lines.append(line)
            if "running on demo" in line:
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert started.wait(90), "".join(lines)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        reader.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = "".join(lines)
    assert proc.returncode == 0, err
    assert "stopped after" in err and "Traceback" not in err


def test_check_passes_then_fails_on_a_tampered_bundle(config, capsys):
    assert main(["check", "--config", str(config), "--log-level", "error"]) == 0
    out = capsys.readouterr().out
    assert "ok    source    demo: 640x480" in out
    assert "ok    runtime   ai_edge_litert" in out
    assert "ok    model     attributes: attributes v1" in out
    assert "all needed checks passed" in out
    corrupt_model(config.parent / "models" / "attributes", "flip")
    assert main(["check", "--config", str(config), "--log-level", "error"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  model     bundle attributes: model.tflite does not match its sha256" in out
    assert "1 check(s) failed" in out


def test_check_reports_a_missing_camera(capsys, config):
    assert main(["check", "--config", str(config), "--source", "/dev/video9", "--log-level", "error"]) == 1
    assert "FAIL  source    camera /dev/video9 does not exist" in capsys.readouterr().out


def test_info_lists_bundles_and_metrics(config, capsys):
    assert main(["info", "--config", str(config), "--log-level", "error"]) == 0
    out = capsys.readouterr().out
    assert "runtime: ai_edge_litert" in out
    assert "* multitask: multitask v1" in out
    assert "age_mae_years=6.25" in out and "gender.accuracy=0.91" in out


def test_bench_prints_the_table(config, capsys):
    assert main(["bench", "--config", str(config), "--frames", "15", "--log-level", "error"]) == 0
    out = capsys.readouterr().out
    for row in ("source", "runtime", "detect", "model attributes", "model multitask", "end-to-end"):
        assert any(line.startswith(row) for line in out.splitlines()), row
    assert "frames/s" in out and "ms/face" in out


def test_no_command_prints_usage_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage: face-edge" in capsys.readouterr().err


def test_bad_numbers_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--max-frames", "0"])
    assert exit_info.value.code == 2
    assert "--max-frames: must be at least 1" in capsys.readouterr().err


def test_a_video_file_plays_once_unless_looped(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FACE_EDGE_CONFIG", raising=False)
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 15, (160, 120))
    for i in range(7):
        writer.write(cv2.resize(cv2.imread(str(REPO / "assets" / "overlay.jpg")), (160, 120)))
    writer.release()
    config = tmp_path / "edge.yaml"
    config.write_text("models:\n  bundles: []\nsource:\n  realtime: false\n")
    assert main(["run", "--config", str(config), "--source", str(clip), "--no-display", "--log-level", "info"]) == 0
    assert "stopped after 7 frames" in capsys.readouterr().err                   # the end of the file ends the run
    assert main(["run", "--config", str(config), "--source", str(clip), "--no-display", "--loop",
                 "--max-frames", "16", "--log-level", "info"]) == 0
    assert "stopped after 16 frames" in capsys.readouterr().err


@pytest.mark.parametrize("raw,message", [(b"source:\n  uri: caf\xe9.mp4\n", "line 2 is not UTF-8 text"),
                                         (b"tracker:\n  iou: 0.3\n  iou: 0.5\n", "key 'iou' is given twice")])
def test_a_config_that_is_not_utf8_or_repeats_a_key_exits_2_with_one_line(tmp_path, raw, message):
    path = tmp_path / "edge.yaml"
    path.write_bytes(raw)
    done = _cli("run", "--config", str(path))
    assert done.returncode == 2
    assert message in _one_error_line(done.stderr)


def test_a_missing_bundle_is_a_warning_naming_its_path(tmp_path):
    folder = tmp_path / "site"
    folder.mkdir()
    config = folder / "edge.yaml"
    config.write_text("models:\n  dir: models\n  bundles: [attributes]\nsource:\n  realtime: false\n")
    done = _cli("run", "--config", str(config), "--no-display", "--max-frames", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    warning = next(ln for ln in done.stderr.splitlines() if "model skipped" in ln)
    assert "WARNING" in warning and f"no such folder {folder / 'models' / 'attributes'}" in warning


def test_push_and_service_do_not_import_each_other():
    script = ("import sys, edge.push; assert 'edge.service' not in sys.modules, 'push imports service'; "
              "import edge.service, edge.control; assert edge.service.ControlClient is edge.control.ControlClient")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
