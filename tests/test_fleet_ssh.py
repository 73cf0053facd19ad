"""`face-edge push --inventory` and `face-edge fleet status` against three real sshd instances.

Each "Pi" is this machine behind its own OpenSSH server on 127.0.0.1 (own port, host key and
client key), with its own device root (models folder, config, control socket) and a real
`face-edge run` (headless, image folder) as its service. A fourth device root (no service) sits
behind the first sshd as the host a stopped rollout never reaches. Real: ssh, rsync, sshd, the
CLI on both sides, LiteRT, Ed25519 signatures, the service's hot reload. Nothing is mocked.

The failing host: the site has rotated its signing key. door-3 runs version 1 signed with the
old key, and its edge.yaml has been edited to name the new key, but its service was not
restarted, so it still holds the old one. install-bundle reads the file, so version 2 (signed
with the new key) passes its sha256, signature and golden checks and is switched in; the
running service then refuses its signature on reload, and install-bundle switches back:
door-3 is rolled back and the rollout stops.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator, Optional

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.service import ControlClient
from tests.conftest import REPO
from tests.test_push_ssh import Sshd, _free_port
from tests.test_service import (NAME, RunningEdge, child_env, copy_bundle, device_config, make_bundle, wait_for,
                                write_frames)

pytestmark = pytest.mark.ssh
REMOTE = f"env PYTHONPATH={shlex.quote(str(REPO))} {shlex.quote(sys.executable)} -m edge.cli"


def _public_pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


class FleetDevice:
    """One device root: models (bundle v1), config, control socket, and optionally a running service."""

    def __init__(self, root: Path, v1: Path, public_key: Path, service_key: Optional[Path] = None,
                 run: bool = True):
        self.root = root
        self.models = root / "models"
        self.models.mkdir(parents=True)
        copy_bundle(v1, self.models / NAME)
        self.socket = root / "control.sock"
        frames = write_frames(root / "frames")
        # the service starts with service_key; the file then names public_key (edited, not restarted)
        self.config = device_config(root, self.models, frames, self.socket, public_key=service_key or public_key)
        self.edge: Optional[RunningEdge] = None
        self.client = ControlClient(self.socket)
        self.edited = lambda: device_config(root, self.models, frames, self.socket, public_key=public_key)
        self.stale = service_key is not None
        if run:
            self.start()

    def start(self) -> None:
        self.edge = RunningEdge(self.config, child_env(), self.root / "run.log")

    def wait_ready(self) -> None:
        assert self.edge is not None
        wait_for(lambda: self.status().get("ready"), 40, "face-edge run " + self.edge.output()[-500:])
        if self.stale:   # the running service has read the old key: now the file is edited
            self.edited()
            self.stale = False

    def status(self) -> dict:
        """Return the service's status answer, or {} while it is not (yet) listening."""
        try:
            return self.client.status(timeout=2)
        except (OSError, ValueError):
            return {}

    def running(self) -> str:
        return self.client.status()["models"][NAME]

    def link(self) -> str:
        return os.readlink(self.models / NAME) if (self.models / NAME).is_symlink() else "plain folder"

    def stop(self) -> None:
        if self.edge is not None:
            self.edge.stop()


class Fleet:
    """Three sshd instances, four device roots, the signed bundles and a face-edge YAML inventory."""

    def __init__(self, base: Path):
        signer, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
        keys = base / "keys"
        keys.mkdir()
        (keys / "site.pub").write_bytes(_public_pem(signer))
        (keys / "old-site.pub").write_bytes(_public_pem(other))
        self.v1 = make_bundle(base / "bundles" / "v1", "1", seed=1, sign_with=signer)
        v1_old_key = make_bundle(base / "bundles" / "v1-old-key", "1", seed=1, sign_with=other)
        self.v2 = make_bundle(base / "bundles" / "v2", "2", seed=2, sign_with=signer)
        self.v3 = make_bundle(base / "bundles" / "v3", "3", seed=3, sign_with=signer)
        self.bad = make_bundle(base / "bundles" / "bad", "4", seed=4, sign_with=signer, golden_shift=0.5)
        self.sshd = [Sshd(base / f"sshd{i}") for i in (1, 2, 3)]
        site = keys / "site.pub"
        self.devices = {
            "door-1": FleetDevice(base / "door-1", self.v1, site),
            "door-2": FleetDevice(base / "door-2", self.v1, site),
            "door-3": FleetDevice(base / "door-3", v1_old_key, site, service_key=keys / "old-site.pub"),
            "hall": FleetDevice(base / "hall", self.v1, site, run=False),
        }
        for device in self.devices.values():
            if device.edge is not None:
                device.wait_ready()
        servers = {"door-1": self.sshd[0], "door-2": self.sshd[1], "door-3": self.sshd[2], "hall": self.sshd[0]}
        hosts = {}
        for name, server in servers.items():
            hosts[name] = {"address": "127.0.0.1", "port": server.port, "identity": str(server.base / "client_key"),
                           "ssh_options": [f"UserKnownHostsFile={server.known_hosts}", "StrictHostKeyChecking=yes"],
                           "config": str(self.devices[name].config),
                           "staging": str(self.devices[name].root / "staging")}
        self.inventory = base / "fleet.yaml"
        self.inventory.write_text(yaml.safe_dump({
            "defaults": {"user": "root", "command": REMOTE},
            "hosts": hosts,
            "groups": {"doors": ["door-1", "door-2", "door-3"], "site": ["doors", "hall"]}}, sort_keys=False))
        self.servers = servers

    def close(self) -> None:
        for device in self.devices.values():
            device.stop()
        for server in self.sshd:
            server.stop()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    if os.geteuid() != 0:
        pytest.skip("this test runs sshd, which needs root")
    f = Fleet(tmp_path_factory.mktemp("fleet"))
    try:
        yield f
    finally:
        f.close()


def face_edge(*args: str, timeout: float = 240, **env: str) -> subprocess.CompletedProcess:
    """Run this checkout's `face-edge` on the desktop side; return the finished process."""
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], env=child_env(**env), capture_output=True,
                          text=True, timeout=timeout)


def _row(summary: str, host: str) -> list[str]:
    """Return the summary row of ``host``: host, address, stage, old, new, result, seconds."""
    return re.split(r"\s{2,}", _row_text(summary, host).strip())


def _row_text(summary: str, host: str) -> str:
    return next(ln for ln in summary.splitlines() if ln.startswith(host + " "))


def test_rollout_canary_batches_stops_at_the_failing_host_rolls_it_back_and_resumes(
        fleet: Fleet, tmp_path: Path) -> None:
    state = tmp_path / "rollout.json"
    common = ["--inventory", str(fleet.inventory), "--group", "site", "--batch", "2", "--soak", "1",
              "--health-timeout", "20", "--timeout", "15", "--connect-timeout", "5", "--state", str(state)]
    d = fleet.devices

    plan = face_edge("push", *common, "--dry-run", str(fleet.v2))
    assert plan.returncode == 0, plan.stderr + plan.stdout
    assert [_row(plan.stdout, h)[2:6] for h in ("door-1", "door-2", "door-3", "hall")] == \
        [["canary", "1", "1", "planned"], ["batch 1", "1", "1", "planned"], ["batch 1", "1", "1", "planned"],
         ["batch 2", "1", "1", "planned"]]
    assert "dry run: nothing was changed" in plan.stdout and not state.exists()
    assert all(d[h].running() == "1" for h in ("door-1", "door-2", "door-3"))

    started = time.monotonic()
    done = face_edge("push", *common, str(fleet.v2))
    seconds = time.monotonic() - started
    print(f"\n3-host rollout (canary door-1, batch door-2 + door-3, door-3 rolled back, hall skipped): "
          f"{seconds:.1f} s\n{done.stdout}")
    assert done.returncode == 4, done.stderr + done.stdout
    assert "stopped at door-3" in done.stderr and "--resume" in done.stderr
    # summary: host address stage old new result seconds
    assert _row(done.stdout, "door-1")[2:6] == ["canary", "1", "2", "updated"]
    assert _row(done.stdout, "door-2")[2:6] == ["batch 1", "1", "2", "updated"]
    assert _row(done.stdout, "door-3")[2:6] == ["batch 1", "1", "1", "rolled back"]
    assert _row(done.stdout, "hall")[2:6] == ["batch 2", "1", "1", "skipped"]
    assert "door-3: " in done.stdout and "signature" in done.stdout
    # ... and the devices are in exactly that state
    for host in ("door-1", "door-2"):
        assert d[host].running() == "2" and d[host].link() == ".versions/attributes/2"
        assert d[host].edge.proc.poll() is None
    assert d["door-3"].running() == "1" and d["door-3"].link() == ".versions/attributes/1"
    assert d["hall"].link() == "plain folder" and not (d["hall"].models / ".versions").exists()
    saved = json.loads(state.read_text())
    assert saved["finished"] is False
    assert {h: r["result"] for h, r in saved["hosts"].items()} == \
        {"door-1": "updated", "door-2": "updated", "door-3": "rolled back"}

    # fleet status says the same, and door-3's device journal has the error
    status = face_edge("fleet", "status", "--inventory", str(fleet.inventory), "--json")
    assert status.returncode == 0, status.stderr
    rows = {r["host"]: r for r in json.loads(status.stdout)}
    assert rows["door-1"]["running"] == {NAME: "2"} and rows["door-1"]["bundles"][NAME]["previous"] == "1"
    assert rows["door-3"]["running"] == {NAME: "1"} and rows["door-3"]["service"] == "running"
    assert "signature" in rows["door-3"]["last_error"]
    assert rows["hall"]["service"] == "not running" and rows["hall"]["bundles"][NAME]["version"] == "1"
    table = face_edge("fleet", "status", "--inventory", str(fleet.inventory), "--group", "doors")
    assert table.returncode == 0 and "door-3" in table.stdout and "hall" not in table.stdout
    assert "attributes 2 (prev 1)" in table.stdout

    # door-3 is fixed (its service restarted, so it reads the edited config) and hall's service is
    # started; --resume leaves door-1 and door-2 alone and continues with door-3, then hall.
    # hall's service dies once it runs the new version (as a model that crashes the process
    # would): the rollout's own health gate catches it and rolls hall back.
    d["door-3"].stop()
    d["door-3"].start()
    d["hall"].start()
    d["door-3"].wait_ready()
    d["hall"].wait_ready()
    pid1 = d["door-1"].client.status()["pid"]
    crash = CrashAfterInstall(d["hall"], "2")
    started = time.monotonic()
    resumed = face_edge("push", *common, "--resume", "--health-timeout", "4", "--soak", "2", str(fleet.v2))
    print(f"resumed rollout: {time.monotonic() - started:.1f} s\n{resumed.stdout}")
    assert crash.killed, "hall's service was never seen on the new version"
    assert resumed.returncode == 4, resumed.stderr + resumed.stdout
    assert _row(resumed.stdout, "door-1")[3:6] == ["1", "2", "updated (earlier run)"]
    assert _row(resumed.stdout, "door-2")[3:6] == ["1", "2", "updated (earlier run)"]
    assert _row(resumed.stdout, "door-3")[3:6] == ["1", "2", "updated"]
    assert d["door-3"].running() == "2" and d["door-1"].client.status()["pid"] == pid1
    assert _row(resumed.stdout, "hall")[3:6] == ["1", "1", "rolled back"]
    assert "hall: health gate" in resumed.stdout and "attributes rolled back" in resumed.stdout
    assert d["hall"].link() == ".versions/attributes/1"
    d["hall"].start()          # systemd's Restart=on-failure: the service comes back on the old version
    d["hall"].wait_ready()
    assert d["hall"].running() == "1"
    crash.stop.set()

    # once hall is sound again, --resume finishes the rollout: every host on version 2
    final = face_edge("push", *common, "--resume", str(fleet.v2))
    assert final.returncode == 0, final.stderr + final.stdout
    assert "rollout of attributes 2 complete: 4 of 4 hosts on it" in final.stdout
    assert _row(final.stdout, "hall")[3:6] == ["1", "2", "updated"]
    assert all(d[h].running() == "2" for h in d)
    assert json.loads(state.read_text())["finished"] is True


class CrashAfterInstall:
    """Kills a device's service (SIGKILL) once its journal shows a successful install of ``version``."""

    def __init__(self, device: FleetDevice, version: str):
        self.device, self.version, self.killed = device, version, False
        self.stop = threading.Event()
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        journal = self.device.models / ".versions" / "journal.jsonl"
        deadline = time.monotonic() + 200
        while not self.stop.is_set() and time.monotonic() < deadline:
            lines = journal.read_text().splitlines() if journal.is_file() else []
            if any(json.loads(ln).get("ok") and json.loads(ln).get("version") == self.version for ln in lines):
                assert self.device.edge is not None
                self.device.edge.proc.send_signal(signal.SIGKILL)
                self.killed = True
                return
            time.sleep(0.05)


class Blackhole:
    """A TCP port that accepts connections and never says a word (a host that hangs)."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        for c in self.conns:
            c.close()
        self.server.close()


def test_unreachable_hosts_are_reported_within_the_timeout_and_nothing_changes(fleet: Fleet, tmp_path: Path) -> None:
    """An Ansible INI inventory: door-1 answers, ghost refuses the connection, blackhole never answers."""
    hole = Blackhole()
    try:
        s1 = fleet.sshd[0]
        inventory = tmp_path / "hosts.ini"
        inventory.write_text("\n".join([
            "[doors]",
            f"door-1 ansible_host=127.0.0.1 ansible_port={s1.port} face_edge_config={fleet.devices['door-1'].config} "
            f"face_edge_staging={fleet.devices['door-1'].root / 'staging'}",
            f"ghost ansible_host=127.0.0.1 ansible_port={_free_port()}",
            f"blackhole ansible_host=127.0.0.1 ansible_port={hole.port}",
            "", "[doors:vars]", "ansible_user=root", f"ansible_ssh_private_key_file={s1.base / 'client_key'}",
            f"ansible_ssh_common_args='-o UserKnownHostsFile={s1.known_hosts} -o StrictHostKeyChecking=yes'",
            f"face_edge_command='{REMOTE}'", ""]))
        before = fleet.devices["door-1"].running()
        started = time.monotonic()
        status = face_edge("fleet", "status", "--inventory", str(inventory), "--connect-timeout", "3", timeout=60)
        took = time.monotonic() - started
        assert status.returncode == 3, status.stderr + status.stdout
        assert "running" in _row_text(status.stdout, "door-1")
        assert "cannot reach" in _row_text(status.stdout, "ghost") and "Connection refused" in status.stdout
        assert "unreachable" in _row_text(status.stdout, "blackhole")
        assert took < 30, f"fleet status hung for {took:.0f} s on a silent host"

        started = time.monotonic()
        push = face_edge("push", "--inventory", str(inventory), "--connect-timeout", "3",
                         "--state", str(tmp_path / "s.json"), str(fleet.v1), timeout=60)
        took = time.monotonic() - started
        assert push.returncode == 3, push.stderr + push.stdout
        assert "2 host(s) unreachable (ghost, blackhole): nothing was changed" in push.stderr
        assert _row(push.stdout, "ghost")[5] == "unreachable" and _row(push.stdout, "door-1")[5] == "skipped"
        assert _row(push.stdout, "blackhole")[5] == "unreachable"
        assert took < 30 and fleet.devices["door-1"].running() == before
        print(f"\nunreachable hosts reported in {took:.1f} s (connect timeout 3 s)")
    finally:
        hole.close()


def test_ansible_playbook_does_the_same_with_the_device_side_command(fleet: Fleet, tmp_path: Path) -> None:
    """systemd/ansible/push-bundle.yml installs with the device's own command; a bad canary stops the play."""
    if shutil.which("ansible-playbook") is None:
        pytest.skip("ansible-playbook is not installed (pip install ansible-core)")
    lines = ["[doors]"]
    for name in ("door-1", "door-2"):
        server, device = fleet.servers[name], fleet.devices[name]
        lines.append(f"{name} ansible_host=127.0.0.1 ansible_port={server.port} "
                     f"ansible_ssh_private_key_file={server.base / 'client_key'} "
                     f"ansible_ssh_common_args='-o UserKnownHostsFile={server.known_hosts} "
                     "-o StrictHostKeyChecking=yes' "
                     f"face_edge_config={device.config} face_edge_staging={device.root / 'staging'}")
    lines += ["", "[doors:vars]", "ansible_user=root", f"ansible_python_interpreter={sys.executable}",
              "ansible_ssh_transfer_method=piped",  # the test sshd has no sftp subsystem
              f"face_edge_command='{REMOTE}'", "health_timeout=20", ""]
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("\n".join(lines))
    env = child_env(ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-local"),
                    ANSIBLE_SSH_CONTROL_PATH_DIR=str(tmp_path / "cp"), ANSIBLE_RETRY_FILES_ENABLED="0")
    playbook = REPO / "systemd" / "ansible" / "push-bundle.yml"

    def play(bundle: Path, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(["ansible-playbook", "-i", str(inventory), str(playbook), "-e", f"bundle={bundle}",
                               *extra], env=env, capture_output=True, text=True, timeout=300)

    door2 = fleet.devices["door-2"].running()
    started = time.monotonic()
    ok = play(fleet.v3, "--limit", "door-1")
    print(f"\nansible-playbook, 1 host: {time.monotonic() - started:.1f} s")
    assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr
    assert fleet.devices["door-1"].running() == "3"
    assert "door-1                     : ok=" in ok.stdout and "failed=0" in ok.stdout
    # the canary refuses a bundle whose model does not reproduce its golden faces: the play stops
    # there, door-2 is never started
    bad = play(fleet.bad)
    assert bad.returncode != 0
    assert "door-1: attributes 4 failed: face-edge: error:" in bad.stdout and "golden" in bad.stdout, \
        bad.stdout[-3000:]
    assert "door-2" not in bad.stdout
    assert fleet.devices["door-1"].running() == "3" and fleet.devices["door-2"].running() == door2
