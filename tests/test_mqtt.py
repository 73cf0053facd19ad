"""MQTT and Home Assistant against a real Mosquitto broker on 127.0.0.1 (started, killed, paused by the tests),
fed by the real loop on the demo clip (tiny real TFLite bundles, a gallery enrolled from the clip)."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edge.config import MqttSettings
from edge.integrations import FaceEvent, ViewState
from edge.outputs import attach_outputs
from edge.pipeline import Pipeline
from edge.sinks import EventSink

from .conftest import REPO
from .helpers.ha_discovery import check_discovery, state_is_valid
from .helpers.live_setup import build_models, enroll_astronaut, make_settings
from .helpers.mosquitto import Mosquitto

pytest.importorskip("paho.mqtt.client")
pytestmark = pytest.mark.mqtt


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    return build_models(tmp_path_factory.mktemp("models"))


def mqtt_settings(broker: Mosquitto, **kw) -> dict:
    return {"enabled": True, "host": "127.0.0.1", "port": broker.port, "device_id": "hall", "reconnect_max_s": 2.0,
            **kw}


def wait_until(check, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def live_run(models, tmp_path_factory):
    """One loop run (150 frames of the demo clip) publishing to a broker; everything the broker passed on."""
    folder = tmp_path_factory.mktemp("live")
    broker = Mosquitto(folder / "broker").start()
    settings = make_settings(models, folder, mqtt=mqtt_settings(broker))
    enroll_astronaut(settings, "Eileen Collins")
    enroll_astronaut(settings, "José")
    try:
        with broker.subscriber("#") as sub:
            pipeline = Pipeline(settings)
            pipeline.events = EventSink(folder / "events.jsonl")
            outputs = attach_outputs(pipeline, settings)
            wait_until(lambda: outputs.mqtt.stats()["connected"], what="the publisher to connect")
            pipeline.run(max_frames=150)
            stats_before_close = outputs.mqtt.stats()
            outputs.close()
            sub.wait_for(lambda m: ("face-edge/hall/availability", "offline", False) in m)
            messages = list(sub.messages)
        with broker.subscriber("#") as late:        # a subscriber that starts afterwards sees the retained state
            late.wait_for(lambda m: any(t == "face-edge/hall/camera" for t, _, _ in m))
            time.sleep(0.3)
            retained = {t: p for t, p, r in late.messages if r}
    finally:
        broker.stop()
    file_events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    return {"messages": messages, "retained": retained, "file_events": file_events, "stats": stats_before_close,
            "hub": outputs.hub}


def test_discovery_payloads_are_what_home_assistant_accepts(live_run):
    retained = live_run["retained"]
    configs = {t: json.loads(p) for t, p in retained.items() if t.startswith("homeassistant/") and p}
    components = {t: check_discovery(t, payload) for t, payload in configs.items()}
    people = {p["name"]: (t, p) for t, p in configs.items() if components[t] == "binary_sensor"}
    assert set(people) == {"Eileen Collins", "José"}
    assert all(p["device_class"] == "presence" for _, p in people.values())
    names = {p["name"] for t, p in configs.items() if components[t] == "sensor"}
    assert names == {"Faces in view", "Last seen", "Camera"}
    assert len({p["unique_id"] for p in configs.values()}) == len(configs)
    assert len({json.dumps(p["device"], sort_keys=True) for p in configs.values()}) == 1   # one device
    for topic, payload in configs.items():
        assert payload["availability_topic"] == "face-edge/hall/availability"
        state = retained.get(payload["state_topic"])
        assert state is not None, f"{payload['name']}: no retained state on {payload['state_topic']}"
        assert state_is_valid(components[topic], payload, state), (payload["name"], state)
        if "json_attributes_topic" in payload and payload["name"] == "Last seen":
            assert json.loads(retained[payload["json_attributes_topic"]])["name"] == state
    assert retained["face-edge/hall/availability"] == "offline"      # a clean stop says so
    assert retained["face-edge/hall/camera"] == "stopped" and retained["face-edge/hall/faces"] == "0"
    assert retained["face-edge/hall/last_seen"] in ("Eileen Collins", "José")


def test_events_arrive_in_order_and_say_what_the_events_file_says(live_run):
    events = [json.loads(p) for t, p, _ in live_run["messages"] if t == "face-edge/hall/events"]
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert [{k: v for k, v in e.items() if k != "id"} for e in events if e["event"] != "recognized"] \
        == live_run["file_events"]
    kinds = [e["event"] for e in events]
    assert kinds.count("appear") == kinds.count("leave") >= 1 and "recognized" in kinds
    presence = [p for t, p, _ in live_run["messages"] if t.startswith("face-edge/hall/person/")]
    assert "ON" in presence and presence[-1] == "OFF"
    assert live_run["stats"]["dropped"] == 0 and live_run["stats"]["queued"] == 0


def test_removed_person_loses_their_entity_and_a_new_one_gets_one(tmp_path):
    broker = Mosquitto(tmp_path).start()
    try:
        with broker.subscriber("homeassistant/binary_sensor/#") as sub:
            from edge.mqtt import MqttPublisher

            pub = MqttPublisher(MqttSettings(**mqtt_settings(broker))).start()
            pub.on_people(["Ann", "Bob"])
            sub.wait_for(lambda m: len(m) >= 2)
            pub.on_people(["Ann", "Cy"])
            sub.wait_for(lambda m: ("homeassistant/binary_sensor/hall/Bob/config", "", False) in m
                         and any(t.endswith("/Cy/config") and p for t, p, _ in m))
            pub.close()
    finally:
        broker.stop()


def test_broker_killed_and_restarted_mid_run_loses_nothing_queued(models, tmp_path):
    broker = Mosquitto(tmp_path / "broker", persistent=True).start()
    settings = make_settings(models, tmp_path, mqtt=mqtt_settings(broker, queue_size=200))
    enroll_astronaut(settings)
    try:
        sub_ctx = broker.subscriber("face-edge/hall/events", persistent=True)
        sub = sub_ctx.__enter__()
        pipeline = Pipeline(settings)
        outputs = attach_outputs(pipeline, settings)
        pipeline.open()
        wait_until(lambda: outputs.mqtt.stats()["connected"], what="the publisher to connect")
        for _ in range(60):
            pipeline.step()
        sub.wait_for(lambda m: len(m) >= 1)
        broker.kill()
        wait_until(lambda: not outputs.mqtt.stats()["connected"], what="the publisher to notice")
        for _ in range(150):                     # the rest of the clip and its start again, the broker away
            pipeline.step()
        queued = outputs.mqtt.stats()["queued"]
        assert queued >= 3                       # the second face's appear / recognized / leave, at least
        broker.start()
        wait_until(lambda: outputs.mqtt.stats()["connected"], what="the publisher to reconnect")
        for _ in range(30):
            pipeline.step()
        pipeline.close()
        outputs.close()
        hub_ids = outputs.hub.count
        received = sub.wait_for(lambda m: len(m) >= hub_ids, timeout=20)
        sub_ctx.__exit__(None, None, None)
    finally:
        broker.stop()
    ids = [json.loads(p)["id"] for _, p, _ in received]
    assert sorted(set(ids)) == list(range(1, hub_ids + 1))                 # nothing lost
    assert [i for k, i in enumerate(ids) if i not in ids[:k]] == sorted(set(ids))   # in order (QoS 1 may repeat)
    st = outputs.mqtt.stats()
    assert st["dropped"] == 0 and st["connects"] == 2


def test_a_full_queue_drops_the_oldest_and_counts_them(tmp_path):
    from edge.mqtt import MqttPublisher

    broker = Mosquitto(tmp_path, persistent=True).start()
    try:
        with broker.subscriber("face-edge/hall/events", persistent=True) as sub:
            pub = MqttPublisher(MqttSettings(**mqtt_settings(broker, queue_size=5))).start()
            wait_until(lambda: pub.stats()["connected"])
            broker.kill()
            wait_until(lambda: not pub.stats()["connected"])
            for i in range(1, 9):
                pub.on_event(FaceEvent(i, {"event": "appear", "id": i}))
            assert pub.stats()["dropped"] == 3 and pub.stats()["queued"] == 5
            broker.start()
            got = sub.wait_for(lambda m: len(m) >= 5)
            pub.close()
    finally:
        broker.stop()
    assert [json.loads(p)["id"] for _, p, _ in got] == [4, 5, 6, 7, 8]


@pytest.mark.parametrize("away", ["killed", "paused"])
def test_the_loop_never_waits_for_a_broker_that_is_away(models, tmp_path, away):
    """Structural (timing is benchmarks/integrations.py's): paho is never called on the loop's thread, so a
    dead broker (connection refused) or a hung one (SIGSTOP: TCP open, nothing read) cannot hold a frame."""
    broker = Mosquitto(tmp_path / "broker").start()
    settings = make_settings(models, tmp_path, mqtt=mqtt_settings(broker, queue_size=50, keepalive=5))
    enroll_astronaut(settings)
    pipeline = Pipeline(settings)
    outputs = attach_outputs(pipeline, settings)
    callers: set[int] = set()
    real_publish = outputs.mqtt.client.publish

    def spy(*args, **kwargs):                    # records the calling thread, then really publishes
        callers.add(threading.get_ident())
        return real_publish(*args, **kwargs)

    outputs.mqtt.client.publish = spy
    try:
        pipeline.open()
        wait_until(lambda: outputs.mqtt.stats()["connected"])
        broker.kill() if away == "killed" else broker.pause()
        frames = 0
        started = time.monotonic()

        def made() -> int:
            st = outputs.mqtt.stats()
            return st["dropped"] + st["queued"]
        # At least 200 frames, and on until the loop has made 3 events (on a loaded machine the model
        # worker names the astronaut later, so 200 frames alone may hold fewer).
        while (frames < 200 or made() < 3) and time.monotonic() - started < 120:
            pipeline.step()
            frames += 1
        loop_thread = threading.get_ident()
        st = outputs.mqtt.stats()
        assert frames >= 200
        assert st["dropped"] + st["queued"] >= 3           # the loop went on making events
        assert loop_thread not in callers
        print(f"\n{away} broker: {frames} frames in {time.monotonic() - started:.2f} s, {st}")
    finally:
        broker.stop()
        pipeline.close()
        outputs.close()


def test_last_will_says_offline_when_face_edge_dies(tmp_path):
    broker = Mosquitto(tmp_path).start()
    code = (f"import time; from edge.config import MqttSettings; from edge.mqtt import MqttPublisher\n"
            f"p = MqttPublisher(MqttSettings(enabled=True, host='127.0.0.1', port={broker.port}, device_id='hall'))\n"
            f"p.start(); time.sleep(60)\n")
    try:
        with broker.subscriber("face-edge/hall/availability") as sub:
            child = subprocess.Popen([sys.executable, "-c", code], cwd=REPO,
                                     env={**os.environ, "PYTHONPATH": str(REPO)})
            try:
                sub.wait_for(lambda m: m and m[-1][1] == "online")
                child.kill()                      # no goodbye: only the broker's last will can say it
            finally:
                child.wait(10)
            sub.wait_for(lambda m: m[-1][1] == "offline", timeout=10)
    finally:
        broker.stop()


def test_tls_and_password_from_a_file_or_the_environment_never_logged(tmp_path, caplog, monkeypatch, capfd):
    from edge.mqtt import MqttPublisher, check_broker

    secret = "pa55-w0rd-Zq8"
    broker = Mosquitto(tmp_path / "broker", users={"cam": secret, "ha": "ha-pass"}, tls=True).start()
    password_file = tmp_path / "mqtt-password"
    password_file.write_text(secret + "\n")
    password_file.chmod(0o600)
    base = mqtt_settings(broker, tls=True, ca_certs=str(broker.ca_file), username="cam")
    caplog.set_level(logging.DEBUG)
    try:
        with broker.subscriber("face-edge/hall/#", user=("ha", "ha-pass"), ca_certs=str(broker.ca_file)) as sub:
            pub = MqttPublisher(MqttSettings(**base, password_file=str(password_file))).start()
            pub.on_state(ViewState(faces=2, camera="ok"))
            sub.wait_for(lambda m: ("face-edge/hall/faces", "2", False) in m)
            pub.close()
            assert check_broker(MqttSettings(**base, password_file=str(password_file)))[0]

            monkeypatch.setenv("FACE_EDGE_MQTT_PASSWORD", secret)
            pub = MqttPublisher(MqttSettings(**base)).start()
            pub.on_state(ViewState(faces=3, camera="ok"))
            sub.wait_for(lambda m: ("face-edge/hall/faces", "3", False) in m)
            pub.close()

            monkeypatch.setenv("FACE_EDGE_MQTT_PASSWORD", "wrong-" + secret)
            pub = MqttPublisher(MqttSettings(**base)).start()
            wait_until(lambda: pub.stats()["last_error"] and "refused" in pub.stats()["last_error"])
            assert not pub.stats()["connected"]
            pub.close(timeout=0.5)
            ok, line = check_broker(MqttSettings(**base))
            assert not ok and "refused" in line
    finally:
        broker.stop()
    out, err = capfd.readouterr()
    logged = "\n".join(r.getMessage() for r in caplog.records) + out + err
    assert "cam" in logged and secret not in logged


def test_a_missing_password_file_or_tls_file_is_one_line(tmp_path):
    from edge.errors import ConfigError
    from edge.mqtt import MqttPublisher

    with pytest.raises(ConfigError, match=r"mqtt.password_file: cannot read .*nope"):
        MqttPublisher(MqttSettings(enabled=True, username="u", password_file=str(tmp_path / "nope")))
    with pytest.raises(ConfigError, match=r"mqtt.ca_certs: .*missing.pem does not exist"):
        MqttPublisher(MqttSettings(enabled=True, tls=True, ca_certs=str(tmp_path / "missing.pem")))
