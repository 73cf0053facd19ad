"""A real Mosquitto broker for tests: started on 127.0.0.1 on a free port, killed, restarted, paused.

    broker = Mosquitto(tmp_path).start()           # skips the test when mosquitto is not installed
    broker.kill(); broker.start()                  # the same port again
    broker.pause(); broker.resume()                # SIGSTOP / SIGCONT: a broker that hangs
    with broker.subscriber("face-edge/#") as sub:  # a paho client collecting messages
        sub.wait_for(lambda msgs: len(msgs) >= 3)

Optional ``users={"name": "password"}`` (a mosquitto_passwd file, anonymous refused) and ``tls=True``
(a throw-away CA and server certificate made with ``cryptography``; ``broker.ca_file``).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_ca_and_server_cert(folder: Path) -> tuple[Path, Path, Path]:
    """Write a throw-away CA and a server certificate for 127.0.0.1 / localhost; return (ca, cert, key) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "face-edge test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


class Subscriber:
    """A paho client subscribed to a topic filter, collecting (topic, payload str, retain) in arrival order."""

    def __init__(self, port: int, topic: str, persistent: bool = False, user: Optional[tuple[str, str]] = None,
                 **tls: Any):
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, str, bool]] = []
        self._cond = threading.Condition()
        # persistent: a fixed client id and a kept session, so a (persisted) broker queues QoS 1 messages
        # for this subscriber while it is disconnected
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-sub-{os.getpid()}-{id(self)}",
                                  clean_session=not persistent)
        self.client.reconnect_delay_set(1, 2)
        if user:
            self.client.username_pw_set(*user)
        if tls:
            self.client.tls_set(**tls)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a, **k: subscribed.set()
        self.client.on_connect = lambda c, *a, **k: c.subscribe(topic, qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10), "the test subscriber could not subscribe"

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self._cond:
            self.messages.append((msg.topic, msg.payload.decode("utf-8"), bool(msg.retain)))
            self._cond.notify_all()

    def wait_for(self, ready: Callable[[list[tuple[str, str, bool]]], bool], timeout: float = 15.0) -> list:
        """Return the messages once ``ready(messages)`` is true; AssertionError after ``timeout`` s."""
        with self._cond:
            if not self._cond.wait_for(lambda: ready(self.messages), timeout):
                raise AssertionError(f"timed out; got {self.messages[-20:]}")
            return list(self.messages)

    def on(self, topic: str) -> list[str]:
        """Return the payloads received on ``topic`` so far."""
        with self._cond:
            return [p for t, p, _ in self.messages if t == topic]

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


class Mosquitto:
    """One mosquitto process on 127.0.0.1 (see the module docstring)."""

    def __init__(self, folder: Path, users: Optional[dict[str, str]] = None, tls: bool = False,
                 persistent: bool = False):
        if MOSQUITTO is None:
            pytest.skip("mosquitto is not installed (apt install mosquitto; scripts/test.sh does)")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: Optional[subprocess.Popen] = None
        self.ca_file: Optional[Path] = None
        lines = [f"listener {self.port} 127.0.0.1", "log_dest stderr", "log_type error", "log_type warning",
                 "log_type notice"]
        if os.geteuid() == 0:   # as root mosquitto would switch to user mosquitto, who cannot read the test's files
            lines.append("user root")
        if persistent:   # saved after every change, so even a SIGKILLed broker comes back with its sessions
            lines += ["persistence true", f"persistence_location {self.folder}/", "autosave_on_changes true",
                      "autosave_interval 1"]
        else:
            lines.append("persistence false")
        if users:
            passwd = self.folder / "passwd"
            passwd.write_text("")
            for user, password in users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True,
                               capture_output=True)
            os.chmod(passwd, 0o600)
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        if tls:
            self.ca_file, cert, key = make_ca_and_server_cert(self.folder / "tls")
            lines += [f"cafile {self.ca_file}", f"certfile {cert}", f"keyfile {key}"]
        self.conf = self.folder / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.log = self.folder / "mosquitto.log"

    def start(self, timeout: float = 10.0) -> "Mosquitto":
        """Start the broker (again) on its port and return once it accepts connections."""
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return self
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

    def kill(self) -> None:
        """SIGKILL the broker (no goodbye to its clients) and wait until it is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def pause(self) -> None:
        """SIGSTOP the broker: connections stay open but nothing is answered."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT a paused broker."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Stop the broker for good (resumed first when paused)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    @contextlib.contextmanager
    def subscriber(self, topic: str = "#", **kwargs: Any) -> Iterator[Subscriber]:
        """Yield a Subscriber on ``topic`` (disconnected afterwards); ``kwargs`` as Subscriber's."""
        sub = Subscriber(self.port, topic, **kwargs)
        try:
            yield sub
        finally:
            sub.close()
