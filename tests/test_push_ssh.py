"""`face-edge push` against a real OpenSSH server on 127.0.0.1, started by the test.

The "Pi" is this machine: sshd with its own host key and port, a throwaway user key, the
device's models folder in tmp_path, and a real `face-edge run` (headless, image folder) whose
control socket install-bundle talks to. Real: ssh, rsync, sshd, the CLI on both sides, LiteRT,
Ed25519 signatures. A connection cut mid-transfer is a real TCP relay that closes both sockets
after a byte budget; a full disk is a real 256 KiB tmpfs. Nothing is mocked.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.bundle import MANIFEST, MODEL_FILE, sha256_file
from edge.control import ControlClient
from tests.conftest import REPO
from tests.test_service import (NAME, RunningEdge, child_env, copy_bundle, device_config, make_bundle, wait_for,
                                write_frames)

pytestmark = pytest.mark.ssh
SSHD = "/usr/sbin/sshd"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Sshd:
    """An sshd on 127.0.0.1 with its own host key, port and one authorized throwaway key."""

    def __init__(self, base: Path):
        for tool in (SSHD, "ssh", "ssh-keygen", "rsync"):
            if shutil.which(tool) is None:
                pytest.skip(f"{tool} is not installed (apt install openssh-server openssh-client rsync)")
        base.mkdir(parents=True, exist_ok=True)
        self.base = base
        for key in ("host_key", "client_key", "stranger_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(base / key)], check=True)
        shutil.copy(base / "client_key.pub", base / "authorized_keys")
        self.port = _free_port()
        host_pub = (base / "host_key.pub").read_text().split()
        self.host_key_line = f"{host_pub[0]} {host_pub[1]}"
        self.known_hosts = base / "known_hosts"
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {self.host_key_line}\n")
        config = base / "sshd_config"
        config.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {base / 'host_key'}",
            f"AuthorizedKeysFile {base / 'authorized_keys'}", "PermitRootLogin prohibit-password",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
            f"PidFile {base / 'sshd.pid'}", "LogLevel VERBOSE", ""]))
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)   # sshd's privilege-separation folder
        self.log = open(base / "sshd.log", "w")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 10
        while not _port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.skip("sshd could not start here: " + (base / "sshd.log").read_text()[-300:])
            time.sleep(0.05)

    def trust_port(self, port: int) -> None:
        """Accept this server's host key on another port (a relay in front of it)."""
        with open(self.known_hosts, "a") as fh:
            fh.write(f"[127.0.0.1]:{port} {self.host_key_line}\n")

    def ssh_args(self, port: int | None = None, key: str = "client_key") -> list[str]:
        """Return the `face-edge push` options that reach this server."""
        return ["-p", str(port or self.port), "-i", str(self.base / key),
                "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.log.close()


class CuttingRelay:
    """A TCP relay to sshd that kills a connection once the client has sent ``budget`` bytes."""

    def __init__(self, target_port: int, budget: int):
        self.target_port, self.budget = target_port, budget
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            sent = [0]
            pair = (client, upstream)
            threading.Thread(target=self._pump, args=(client, upstream, sent, pair), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, None, pair), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, sent: list[int] | None,
              pair: tuple[socket.socket, socket.socket]) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if sent is not None:
                    sent[0] += len(data)
                    if sent[0] > self.budget:
                        self.cuts += 1
                        break
                dst.sendall(data)
        except OSError:
            pass
        for s in pair:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self.server.close()


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    if os.geteuid() != 0:
        pytest.skip("this test runs sshd, which needs root")
    server = Sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Ed25519PrivateKey, Path]:
    """The signing key of the converter and the public key file configured on the device."""
    private = Ed25519PrivateKey.generate()
    pub = tmp_path_factory.mktemp("keys") / "bundles.pub"
    pub.write_bytes(private.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, pub


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory, keys: tuple[Ed25519PrivateKey, Path]) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("bundles")
    private, _ = keys
    return {"v1": make_bundle(base / "v1", "1", seed=1, sign_with=private),
            "v2": make_bundle(base / "v2", "2", seed=2, sign_with=private),
            "big": make_bundle(base / "big", "5", seed=2, sign_with=private, pad_bytes=2 * 1024 * 1024)}


class Device:
    """The Pi's side: models folder, staging, config with a public key, a running face-edge."""

    def __init__(self, tmp: Path, bundles: dict[str, Path], public_key: Path):
        self.models = tmp / "device" / "models"
        self.models.mkdir(parents=True)
        self.staging = tmp / "device" / "staging"
        copy_bundle(bundles["v1"], self.models / NAME)
        self.socket = tmp / "device" / "control.sock"
        self.config = device_config(tmp / "device", self.models, write_frames(tmp / "frames"), self.socket,
                                    public_key=public_key)
        self.edge = RunningEdge(self.config, child_env(), tmp / "run.log")
        self.client = ControlClient(self.socket)
        wait_for(lambda: self.socket.exists() and self.client.status()["ready"], 40,
                 "face-edge run " + self.edge.output()[-500:])

    def versions(self) -> list[str]:
        folder = self.models / ".versions" / NAME
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    def running(self) -> str:
        return self.client.status()["models"][NAME]


def push(sshd: Sshd, device: Device | None, *args: str, port: int | None = None, key: str = "client_key",
         host: str = "root@127.0.0.1", staging: Path | None = None) -> subprocess.CompletedProcess:
    """Run `face-edge push` (this checkout's CLI) against the test sshd; return the finished process."""
    remote = f"env PYTHONPATH={shlex.quote(str(REPO))} {shlex.quote(sys.executable)} -m edge.cli"
    extra = []
    if device is not None:
        extra = ["--remote-config", str(device.config), "--staging", str(staging or device.staging)]
    cmd = [sys.executable, "-m", "edge.cli", "push", host, *args, *sshd.ssh_args(port, key),
           "--remote-face-edge", remote, "--timeout", "20", *extra]
    return subprocess.run(cmd, env=child_env(), capture_output=True, text=True, timeout=180)


@pytest.mark.slow  # ~20 s: three pushes, each starting face-edge on the "Pi"
def test_push_installs_reloads_the_running_service_and_rolls_back(
        sshd: Sshd, bundles: dict[str, Path], keys: tuple[Ed25519PrivateKey, Path], tmp_path: Path) -> None:
    device = Device(tmp_path, bundles, keys[1])
    try:
        pid = device.edge.proc.pid
        done = push(sshd, device, str(bundles["v2"]))
        assert done.returncode == 0, done.stderr + done.stdout
        assert "installed attributes 2 (was 1)" in done.stdout and "runs attributes 2" in done.stdout
        # the running process itself replayed the golden faces through the model it now answers with
        assert re.search(r"service runs attributes 2, frame \d+, golden 4 faces, max error 0\.0", done.stdout), \
            done.stdout
        assert device.running() == "2" and device.client.status()["pid"] == pid   # hot: same process
        assert os.readlink(device.models / NAME) == ".versions/attributes/2"
        assert not (device.staging / NAME).exists()
        # modes for the service's group, whatever they were on the desktop (there: 0644)
        assert (device.models / NAME / MODEL_FILE).stat().st_mode & 0o777 == 0o660

        # A tampered bundle: the model was swapped and its sha256 updated, but the signature no
        # longer matches -> the device refuses it; v2 keeps running; nothing stays in staging.
        tampered = copy_bundle(bundles["v1"], tmp_path / "tampered")
        shutil.copy(bundles["v2"] / MODEL_FILE, tampered / MODEL_FILE)
        raw = yaml.safe_load((tampered / MANIFEST).read_text())
        raw["files"][MODEL_FILE] = sha256_file(tampered / MODEL_FILE)
        raw["version"] = "9"
        (tampered / MANIFEST).write_text(yaml.safe_dump(raw, sort_keys=False))
        refused = push(sshd, device, str(tampered))
        assert refused.returncode == 2, refused.stderr
        assert "refused attributes" in refused.stderr and "signature" in refused.stderr
        assert device.running() == "2" and device.versions() == ["1", "2", "previous"]
        assert not (device.staging / NAME).exists()

        back = push(sshd, device, "--rollback", NAME)
        assert back.returncode == 0, back.stderr
        assert "rolled back attributes to 1 (from 2)" in back.stdout
        assert device.running() == "1" and device.client.status()["pid"] == pid
        assert device.edge.proc.poll() is None
    finally:
        device.edge.stop()


def test_cut_connection_and_full_disk_leave_the_old_model_and_no_partial_bundle(
        sshd: Sshd, bundles: dict[str, Path], keys: tuple[Ed25519PrivateKey, Path], tmp_path: Path) -> None:
    device = Device(tmp_path, bundles, keys[1])
    relay = CuttingRelay(sshd.port, budget=400 * 1024)
    mounted = None
    try:
        sshd.trust_port(relay.port)
        cut = push(sshd, device, str(bundles["big"]), port=relay.port)
        assert relay.cuts >= 1, "the relay never cut the transfer: " + cut.stderr
        assert cut.returncode == 3, cut.stderr
        assert "copying attributes" in cut.stderr and "nothing was installed" in cut.stderr
        assert device.running() == "1" and device.versions() == []
        assert not (device.staging / NAME).exists(), "a partial bundle was left in staging"
        assert (device.models / NAME).is_dir() and not (device.models / NAME).is_symlink()

        # Full disk: the staging folder on a real 256 KiB tmpfs; the 2 MiB bundle does not fit.
        full = tmp_path / "tiny-disk"
        full.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(full)],
                          capture_output=True).returncode != 0:
            pytest.skip("cannot mount a tmpfs here for the full-disk case")
        mounted = full
        nospace = push(sshd, device, str(bundles["big"]), staging=full)
        assert nospace.returncode == 3, nospace.stderr
        assert "no space left" in nospace.stderr
        assert device.running() == "1" and device.versions() == []
        assert list(full.iterdir()) == []
        assert device.edge.proc.poll() is None
    finally:
        relay.close()
        if mounted is not None:
            subprocess.run(["umount", str(mounted)], check=False)
        device.edge.stop()


def test_unreachable_host_wrong_key_unknown_name_and_no_face_edge_fail_clearly(
        sshd: Sshd, bundles: dict[str, Path], tmp_path: Path) -> None:
    closed = _free_port()
    done = push(sshd, None, str(bundles["v1"]), port=closed)
    assert done.returncode == 3
    assert "cannot reach" in done.stderr and "Connection refused" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr

    wrong = push(sshd, None, str(bundles["v1"]), key="stranger_key")
    assert wrong.returncode == 3
    assert "refused the ssh key" in wrong.stderr and "--identity" in wrong.stderr

    unknown = push(sshd, None, str(bundles["v1"]), host="root@face-edge-no-such-host.invalid")
    assert unknown.returncode == 3 and "cannot resolve" in unknown.stderr

    # a Pi without face-edge: said so, and the copied bundle does not stay in staging
    staging = tmp_path / "staging"
    cmd = [sys.executable, "-m", "edge.cli", "push", "root@127.0.0.1", str(bundles["v1"]), *sshd.ssh_args(),
           "--remote-face-edge", "face-edge-not-installed-here", "--staging", str(staging)]
    missing = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, timeout=120)
    assert missing.returncode == 3, missing.stderr
    assert "is not installed there" in missing.stderr and "install.sh" in missing.stderr
    assert list(staging.iterdir()) == []
