"""mqtt:/web: seen from the outside: the service's status (control socket, systemd status line) and face-edge check
say how many MQTT messages are queued and dropped; face-edge serve runs the page."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from edge.cli import main
from edge.mqtt import MAX_UNACKED
from edge.outputs import attach_outputs
from edge.pipeline import Pipeline
from edge.service import ControlClient, Service

from .conftest import REPO
from .helpers.http import call
from .helpers.live_setup import BUNDLES, build_models, make_settings
from .helpers.mosquitto import Mosquitto


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    return build_models(tmp_path_factory.mktemp("models"))


@pytest.mark.mqtt
def test_service_status_and_check_report_queued_and_dropped_messages(models, tmp_path, capsys):
    pytest.importorskip("paho.mqtt.client")
    broker = Mosquitto(tmp_path / "broker").start()
    socket_path = tmp_path / "control.sock"
    mqtt = {"enabled": True, "host": "127.0.0.1", "port": broker.port, "device_id": "hall", "queue_size": 1}
    settings = make_settings(models, tmp_path, mqtt=mqtt, service={"control_socket": str(socket_path)})
    pipeline = Pipeline(settings)
    outputs = attach_outputs(pipeline, settings)
    service = Service(pipeline, control_socket=str(socket_path), watchdog=False).attach()
    service.reporters.append(outputs)
    thread = threading.Thread(target=pipeline.run, daemon=True)
    thread.start()
    config = tmp_path / "edge.yaml"
    config.write_text(yaml.safe_dump({"models": {"dir": str(models), "bundles": BUNDLES},
                                      "recognition": {"gallery": settings.recognition.gallery},
                                      "mqtt": mqtt, "service": {"control_socket": str(socket_path)}}))
    try:
        client = ControlClient(socket_path)
        deadline = time.monotonic() + 30
        while not (client.status().get("integrations", {}).get("mqtt", {}).get("connected")):
            assert time.monotonic() < deadline, "the service never reported a connected broker"
            time.sleep(0.2)
        assert main(["check", "--config", str(config)]) in (0, 1)
        out = capsys.readouterr().out
        assert re.search(r"ok\s+mqtt\s+127\.0\.0\.1:\d+: connected; topics under face-edge/hall", out), out
        assert re.search(r"ok\s+mqtt\s+running service: connected, \d+ queued, 0 dropped", out), out
        broker.kill()
        while client.status()["integrations"]["mqtt"]["dropped"] == 0:   # the loop goes on making events
            assert time.monotonic() < deadline + 60, "no event was dropped with a queue of 1"
            time.sleep(0.2)
        st = client.status()["integrations"]["mqtt"]
        # the queue of 1, plus any event that was in flight (QoS 1, unacknowledged) when the broker died
        queued = st["queued"]
        assert not st["connected"] and 1 <= queued <= 1 + MAX_UNACKED
        assert re.search(rf"; mqtt offline, {queued} queued, \d+ dropped", service.status_line())
        main(["check", "--config", str(config)])
        out = capsys.readouterr().out
        assert re.search(r"FAIL\s+mqtt\s+127\.0\.0\.1:\d+: cannot connect", out), out
        assert re.search(rf"FAIL\s+mqtt\s+running service: not connected, {queued} queued, [1-9]\d* dropped", out), out
    finally:
        pipeline.stop()
        thread.join(10)
        service.close()
        outputs.close()
        broker.stop()


def test_face_edge_serve_runs_the_loop_and_the_page_until_sigterm(models, tmp_path):
    config = tmp_path / "edge.yaml"
    config.write_text(yaml.safe_dump({"models": {"dir": str(models), "bundles": BUNDLES},
                                      "recognition": {"gallery": str(tmp_path / "gallery" / "gallery.npz")}}))
    proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "serve", "--config", str(config), "--port", "0"],
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.PIPE, text=True)
    try:
        url = None
        lines = []
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            m = re.search(r"web: page and API on (http://127\.0\.0\.1:\d+/) \(this machine only\)", line)
            url = m.group(1) if m else None
        assert url, "".join(lines)
        while True:
            status = call("GET", url + "api/status").json()
            if status["loop"]["frames"] > 5:
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        assert status["loop"]["source"] == "demo" and not status["web"]["photo_models_loaded"]
        assert call("GET", url).body.startswith(b"<!doctype html>")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    rest = proc.stderr.read()
    assert "stopped after" in rest and "Traceback" not in rest


def test_serve_without_a_camera_serves_people_and_recognition_only(models, tmp_path):
    config = tmp_path / "edge.yaml"
    config.write_text(yaml.safe_dump({"models": {"dir": str(models), "bundles": BUNDLES},
                                      "recognition": {"gallery": str(tmp_path / "gallery" / "gallery.npz")}}))
    proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "serve", "--no-camera", "--config", str(config),
                             "--port", "0"], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                            stderr=subprocess.PIPE, text=True)
    try:
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            m = re.search(r"page and API on (http://127\.0\.0\.1:\d+/)", proc.stderr.readline())
            url = m.group(1) if m else None
        assert url
        assert call("GET", url + "api/status").json()["loop"] is None
        assert call("GET", url + "api/people").json()["people"] == []
        reply = call("GET", url + "api/live.jpg")
        assert reply.status == 404 and "no live view" in reply.json()["error"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
