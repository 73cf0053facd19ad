"""Events and presence over MQTT, with Home Assistant discovery (``mqtt:`` in edge.yaml; paho-mqtt).

Topics, under ``<mqtt.topic_prefix>/<device_id>`` (retained ones keep their last value on the broker,
so a subscriber that starts later, such as Home Assistant after a restart, sees the state at once):

===========================  ========  ===================================================================
topic                        retained  payload
===========================  ========  ===================================================================
``availability``             yes       ``online``; ``offline`` on a clean stop and, as the last will, when
                                       face-edge dies or loses the network
``events``                   no        one JSON object per event, in order: ``appear`` / ``leave`` (as the
                                       events file), ``recognized`` (a name became known); ``id`` counts up
``faces``                    yes       faces in view (a number)
``people``                   yes       JSON list of the enrolled people in view
``person/<slug>``            yes       ``ON`` / ``OFF``: is this enrolled person in view
``last_seen``                yes       the last person recognised; ``last_seen/attributes``: JSON time, distance
``camera``                   yes       ``starting`` | ``ok`` | ``lost`` | ``stopped``; ``camera/attributes``:
                                       JSON fps, frames, source, models, dropped messages
===========================  ========  ===================================================================

Home Assistant discovery (``<discovery_prefix>/<component>/<device_id>/<object>/config``, retained):
a ``binary_sensor`` of device class ``presence`` per enrolled person, and the sensors "Faces in view",
"Last seen" and "Camera" (device class ``enum``), all on one device whose availability is the
``availability`` topic. Discovery is sent again when Home Assistant announces itself
(``<discovery_prefix>/status`` = ``online``) and whenever the gallery changes (a removed person's
entity is deleted with an empty config).

The frame loop never waits for the network: :class:`MqttPublisher` only queues. Events wait in a
bounded queue (``mqtt.queue_size``; when it is full the oldest is dropped and counted); states are
coalesced (only the newest value of a topic is sent). A sender thread hands them to paho while
connected, keeping at most :data:`MAX_UNACKED` unacknowledged, so a broker that dies mid-stream
loses nothing: paho resends the unacknowledged ones (QoS 1/2) on reconnect, in order, and the rest
are still queued. paho reconnects by itself with a back-off doubling from 1 s to
``mqtt.reconnect_max_s``. The password (from ``mqtt.password_file`` or ``$mqtt.password_env``) is
handed to paho only; it is never logged.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import ssl
import threading
import time
import unicodedata
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from . import __version__
from .config import MqttSettings
from .errors import ConfigError
from .integrations import FaceEvent, ViewState

log = logging.getLogger("face-edge.mqtt")

MAX_UNACKED = 20              # messages handed to paho and not yet acknowledged
ATTRIBUTES_EVERY_S = 60.0     # camera attributes (fps, frames, dropped) are refreshed this often
ONLINE, OFFLINE = "online", "offline"


def need_paho() -> Any:
    """Return the paho.mqtt.client module; ConfigError saying what to install when it is missing."""
    try:
        import paho.mqtt.client as mqtt_client
    except ImportError:
        raise ConfigError("mqtt.enabled needs paho-mqtt: pip install 'face-edge[mqtt]' (or apt install "
                          "python3-paho-mqtt)") from None
    return mqtt_client


def default_device_id() -> str:
    """Return this machine's hostname as a topic level and Home Assistant id ([A-Za-z0-9_-])."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname().split(".")[0]) or "face-edge"


def person_slug(name: str) -> str:
    """Return the topic level and object id of an enrolled person: the name with spaces as ``_`` when it is
    plain ASCII letters, digits, spaces and ``-``; otherwise an ASCII form plus 6 hex of its hash (unique)."""
    if re.fullmatch(r"[A-Za-z0-9 -]+", name):
        return name.replace(" ", "_")
    ascii_form = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    base = re.sub(r"[^A-Za-z0-9-]+", "_", ascii_form).strip("_") or "person"
    return f"{base}_{hashlib.sha1(name.encode('utf-8')).hexdigest()[:6]}"


def read_password(settings: MqttSettings) -> Optional[str]:
    """Return the broker password from ``password_file`` or the ``password_env`` variable (None: no password).

    ConfigError (naming the file, never the password) when the file cannot be read.
    """
    if settings.password_file:
        try:
            return Path(settings.password_file).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"mqtt.password_file: cannot read {settings.password_file} "
                              f"({exc.strerror or exc})") from None
    value = os.environ.get(settings.password_env) if settings.password_env else None
    return value or None


@dataclass(frozen=True)
class Topics:
    """Every topic face-edge publishes to, for one device."""

    base: str
    device: str
    discovery_prefix: str

    @classmethod
    def of(cls, settings: MqttSettings) -> "Topics":
        """Return the topics of ``settings`` (device id defaulting to the hostname)."""
        device = settings.device_id or default_device_id()
        return cls(f"{settings.topic_prefix}/{device}", device, settings.discovery_prefix)

    @property
    def availability(self) -> str:
        """Return the availability topic (``online`` / ``offline``, also the last will)."""
        return f"{self.base}/availability"

    @property
    def events(self) -> str:
        """Return the events topic (one JSON object per event)."""
        return f"{self.base}/events"

    @property
    def faces(self) -> str:
        """Return the faces-in-view topic."""
        return f"{self.base}/faces"

    @property
    def people(self) -> str:
        """Return the topic of the JSON list of enrolled people in view."""
        return f"{self.base}/people"

    @property
    def last_seen(self) -> str:
        """Return the topic of the last person recognised."""
        return f"{self.base}/last_seen"

    @property
    def camera(self) -> str:
        """Return the camera-state topic."""
        return f"{self.base}/camera"

    @property
    def last_seen_attributes(self) -> str:
        """Return the topic of the last-seen sensor's JSON attributes."""
        return f"{self.base}/last_seen/attributes"

    @property
    def camera_attributes(self) -> str:
        """Return the topic of the camera sensor's JSON attributes."""
        return f"{self.base}/camera/attributes"

    def person(self, name: str) -> str:
        """Return the ON/OFF presence topic of an enrolled person."""
        return f"{self.base}/person/{person_slug(name)}"

    def config(self, component: str, object_id: str) -> str:
        """Return a Home Assistant discovery config topic."""
        return f"{self.discovery_prefix}/{component}/{self.device}/{object_id}/config"

    @property
    def ha_status(self) -> str:
        """Return the topic Home Assistant announces itself on (birth message ``online``)."""
        return f"{self.discovery_prefix}/status"


def device_info(topics: Topics) -> dict[str, Any]:
    """Return the Home Assistant device block shared by every entity of this camera."""
    return {"identifiers": [f"face-edge-{topics.device}"], "name": f"face-edge {topics.device}",
            "manufacturer": "face-edge", "model": "face-edge camera", "sw_version": __version__}


def discovery_configs(topics: Topics, people: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Return {config topic: payload} of every Home Assistant entity for the enrolled ``people``."""
    common = {"availability_topic": topics.availability, "payload_available": ONLINE,
              "payload_not_available": OFFLINE, "device": device_info(topics),
              "origin": {"name": "face-edge", "sw_version": __version__}}
    node = topics.device
    configs = {
        topics.config("sensor", "faces"): {
            **common, "name": "Faces in view", "unique_id": f"face-edge-{node}-faces",
            "state_topic": topics.faces, "state_class": "measurement", "icon": "mdi:face-recognition"},
        topics.config("sensor", "last_seen"): {
            **common, "name": "Last seen", "unique_id": f"face-edge-{node}-last-seen",
            "state_topic": topics.last_seen, "json_attributes_topic": topics.last_seen_attributes,
            "icon": "mdi:account-eye"},
        topics.config("sensor", "camera"): {
            **common, "name": "Camera", "unique_id": f"face-edge-{node}-camera", "state_topic": topics.camera,
            "device_class": "enum", "options": ["starting", "ok", "lost", "stopped"],
            "json_attributes_topic": topics.camera_attributes, "entity_category": "diagnostic",
            "icon": "mdi:cctv"},
    }
    for name in people:
        slug = person_slug(name)
        configs[topics.config("binary_sensor", slug)] = {
            **common, "name": name, "unique_id": f"face-edge-{node}-person-{slug}",
            "state_topic": topics.person(name), "payload_on": "ON", "payload_off": "OFF",
            "device_class": "presence"}
    return configs


class MqttPublisher:
    """The MQTT integration: queues on the loop's thread, publishes on its own (see the module docstring)."""

    name = "mqtt"

    def __init__(self, settings: MqttSettings, status: Optional[Callable[[], dict[str, Any]]] = None,
                 client_id: Optional[str] = None):
        mqtt_client = need_paho()
        self.settings = settings
        self.topics = Topics.of(settings)
        self.status_fn = status
        self.broker = f"{settings.host}:{settings.port}"
        self._cond = threading.Condition()
        self._events: deque[str] = deque()
        self._retained: dict[str, str] = {}     # topic -> newest value
        self._dirty: list[str] = []             # topics whose newest value is not sent yet, in order
        self._people: list[str] = []
        self._in_view: tuple[str, ...] = ()
        self._unacked: set[int] = set()
        self._connected = False
        self._full = False                      # (re)send availability, discovery and every state
        self._stopping = False
        self._deadline = float("inf")
        self.dropped = 0
        self.sent = 0
        self.connects = 0
        self.last_error: Optional[str] = None
        self._last_attributes = 0.0
        self._thread: Optional[threading.Thread] = None

        cid = client_id or f"face-edge-{self.topics.device}"
        self.client = mqtt_client.Client(mqtt_client.CallbackAPIVersion.VERSION2, client_id=cid,
                                         protocol=mqtt_client.MQTTv311)
        if settings.username:
            self.client.username_pw_set(settings.username, read_password(settings))
        if settings.tls:
            for key in ("ca_certs", "certfile", "keyfile"):
                path = getattr(settings, key)
                if path and not Path(path).is_file():
                    raise ConfigError(f"mqtt.{key}: {path} does not exist")
            try:
                self.client.tls_set(ca_certs=settings.ca_certs, certfile=settings.certfile, keyfile=settings.keyfile,
                                    cert_reqs=ssl.CERT_REQUIRED)
            except (ssl.SSLError, OSError, ValueError) as exc:
                raise ConfigError(f"mqtt: TLS files cannot be used ({exc})") from None
        self.client.will_set(self.topics.availability, OFFLINE, qos=1, retain=True)
        self.client.reconnect_delay_set(1, max(1, int(settings.reconnect_max_s)))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self._set(self.topics.camera, "starting")
        self._set(self.topics.faces, "0")
        self._set(self.topics.people, "[]")

    # ---- lifecycle ----------------------------------------------------------------------------
    def start(self) -> "MqttPublisher":
        """Connect in the background (retrying with back-off while the broker is away) and start sending; return self."""
        self.client.connect_async(self.settings.host, self.settings.port, self.settings.keepalive)
        self.client.loop_start()
        self._thread = threading.Thread(target=self._send_loop, name="face-edge-mqtt", daemon=True)
        self._thread.start()
        log.info("mqtt: publishing to %s under %s (%s%s)", self.broker, self.topics.base,
                 "TLS" if self.settings.tls else "no TLS",
                 f", user {self.settings.username}" if self.settings.username else "")
        return self

    def close(self, timeout: float = 3.0) -> None:
        """Send what is queued (for at most ``timeout`` s), publish ``offline`` and disconnect."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._deadline = deadline
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._connected:
            info = self.client.publish(self.topics.availability, OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()
        if self._events:
            log.warning("mqtt: %d event(s) not sent at stop (broker %s unreachable)", len(self._events), self.broker)

    # ---- the Integration side (loop thread: queue only) ---------------------------------------
    def on_event(self, event: FaceEvent) -> None:
        """Queue one event for ``events``; when the queue is full the oldest is dropped (and counted)."""
        payload = json.dumps(event.record)
        with self._cond:
            if len(self._events) >= self.settings.queue_size:
                self._events.popleft()
                self.dropped += 1
            self._events.append(payload)
            self._cond.notify()

    def on_state(self, state: ViewState) -> None:
        """Queue the changed state topics (faces, people, each person, last seen, camera)."""
        with self._cond:
            self._in_view = state.people
            self._set(self.topics.faces, str(state.faces))
            self._set(self.topics.people, json.dumps(list(state.people)))
            for name in self._people:
                self._set(self.topics.person(name), "ON" if name in state.people else "OFF")
            if state.last_seen is not None:
                self._set(self.topics.last_seen, str(state.last_seen["name"]))
                self._set(self.topics.last_seen_attributes, json.dumps(state.last_seen))
            self._set(self.topics.camera, state.camera)
            self._cond.notify()

    def on_people(self, names: list[str]) -> None:
        """Queue discovery for the enrolled ``names`` (a removed person's entity and state are deleted)."""
        with self._cond:
            gone = [n for n in self._people if n not in names]
            self._people = list(names)
            for name in gone:
                self._set(self.topics.config("binary_sensor", person_slug(name)), "")
                self._set(self.topics.person(name), "")
            for name in names:
                self._set(self.topics.person(name), "ON" if name in self._in_view else "OFF")
            if self.settings.discovery:
                for topic, payload in discovery_configs(self.topics, names).items():
                    self._set(topic, json.dumps(payload))
            self._cond.notify()

    def stats(self) -> dict[str, Any]:
        """Return broker, connected, queued, dropped, sent, connects and the last connection error."""
        with self._cond:
            queued = len(self._events) + len(self._unacked)
        return {"broker": self.broker, "connected": self._connected, "queued": queued, "dropped": self.dropped,
                "sent": self.sent, "connects": self.connects, "last_error": self.last_error}

    # ---- inside --------------------------------------------------------------------------------
    def _set(self, topic: str, value: str) -> None:
        """Record the newest retained value of ``topic`` (caller holds the lock or is the constructor)."""
        if self._retained.get(topic) == value:
            return
        self._retained[topic] = value
        if topic not in self._dirty:
            self._dirty.append(topic)

    def _work(self) -> bool:
        return self._full or bool(self._dirty) or (bool(self._events) and len(self._unacked) < MAX_UNACKED)

    def _send_loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stopping or (self._connected and self._work()), timeout=1.0)
                if self._stopping and (not (self._connected and self._work()) or time.monotonic() > self._deadline):
                    return
                if not self._connected:
                    continue
                if self._full:
                    self._full = False
                    states = [(self.topics.availability, ONLINE)] + list(self._retained.items())
                    self._dirty.clear()
                else:
                    states = [(t, self._retained[t]) for t in self._dirty]
                    self._dirty.clear()
                event = self._events.popleft() if not states and self._events and \
                    len(self._unacked) < MAX_UNACKED else None
                for topic, value in states:
                    if value == "":        # a deleted entity or person: sent once, then forgotten
                        self._retained.pop(topic, None)
            try:
                for topic, value in states:
                    self.client.publish(topic, value, qos=self.settings.qos, retain=True)
                if event is not None:
                    info = self.client.publish(self.topics.events, event, qos=self.settings.qos, retain=False)
                    if self.settings.qos > 0:
                        with self._cond:
                            if not info.is_published():
                                self._unacked.add(info.mid)
                            else:
                                self.sent += 1
                    else:
                        self.sent += 1
                self._maybe_attributes()
            except Exception as exc:  # never let the sender die: the queue would grow silently
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error("mqtt: publish failed: %s", self.last_error)
                time.sleep(0.5)

    def _maybe_attributes(self) -> None:
        now = time.monotonic()
        if self.status_fn is None or now - self._last_attributes < ATTRIBUTES_EVERY_S:
            return
        self._last_attributes = now
        try:
            attributes = {**self.status_fn(), "dropped_messages": self.dropped}
        except Exception as exc:
            attributes = {"error": str(exc)}
        self.client.publish(self.topics.camera_attributes, json.dumps(attributes, default=str),
                            qos=self.settings.qos, retain=True)

    # ---- paho callbacks (paho's network thread) --------------------------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any = None) -> None:
        if getattr(reason_code, "is_failure", False):
            error = f"broker refused the connection: {reason_code}"
            if error != self.last_error:
                log.error("mqtt: %s (%s); retrying", error, self.broker)
            self.last_error = error
            return
        client.subscribe(self.topics.ha_status, qos=1)
        with self._cond:
            self._connected = True
            self._full = True
            self._last_attributes = 0.0
            self.connects += 1
            self.last_error = None
            self._cond.notify_all()
        log.info("mqtt: connected to %s%s", self.broker, " (again)" if self.connects > 1 else "")

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any = None) -> None:
        with self._cond:
            was = self._connected
            self._connected = False
            if was and not self._stopping:    # (a refused connection keeps its own, clearer error)
                self.last_error = f"disconnected: {reason_code}"
        if was and not self._stopping:
            log.warning("mqtt: lost the broker %s (%s); queueing up to %d events and reconnecting",
                        self.broker, reason_code, self.settings.queue_size)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason_code: Any = None, properties: Any = None) -> None:
        with self._cond:
            if mid in self._unacked:
                self._unacked.discard(mid)
                self.sent += 1
                self._cond.notify()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        if message.topic == self.topics.ha_status and message.payload == b"online":
            with self._cond:   # Home Assistant (re)started: tell it about us again
                self._full = True
                self._cond.notify()


def check_broker(settings: MqttSettings, timeout: float = 5.0) -> tuple[bool, str]:
    """Return (ok, one line) after connecting to the configured broker once (as ``face-edge check`` does)."""
    mqtt_client = need_paho()
    topics = Topics.of(settings)
    client = mqtt_client.Client(mqtt_client.CallbackAPIVersion.VERSION2,
                                client_id=f"face-edge-{topics.device}-check-{os.getpid()}",
                                protocol=mqtt_client.MQTTv311)
    if settings.username:
        client.username_pw_set(settings.username, read_password(settings))
    if settings.tls:
        try:
            client.tls_set(ca_certs=settings.ca_certs, certfile=settings.certfile, keyfile=settings.keyfile)
        except (ssl.SSLError, OSError, ValueError) as exc:
            return False, f"TLS files cannot be used ({exc})"
    result: dict[str, Any] = {}
    done = threading.Event()

    def on_connect(c: Any, u: Any, f: Any, reason_code: Any, p: Any = None) -> None:
        result["rc"] = reason_code
        done.set()

    client.on_connect = on_connect
    where = f"{settings.host}:{settings.port}"
    try:
        client.connect(settings.host, settings.port, keepalive=10)
    except (OSError, ssl.SSLError) as exc:
        return False, f"{where}: cannot connect ({getattr(exc, 'strerror', None) or exc})"
    client.loop_start()
    try:
        if not done.wait(timeout):
            return False, f"{where}: no answer within {timeout:g} s"
        rc = result["rc"]
        if getattr(rc, "is_failure", False):
            return False, f"{where}: broker refused the connection ({rc})"
        return True, (f"{where}: connected{' with TLS' if settings.tls else ''}"
                      f"{f' as {settings.username}' if settings.username else ''}; topics under {topics.base}")
    finally:
        client.disconnect()
        client.loop_stop()


__all__ = ["MqttPublisher", "Topics", "check_broker", "default_device_id", "discovery_configs", "person_slug",
           "read_password"]
