"""edge.service and the device side of edge.push against a real running `face-edge run`.

Real: sd_notify datagrams on a unix socket the test listens on (what systemd does for
Type=notify), the watchdog environment, SIGHUP/SIGTERM, the control socket, tiny real
TFLite bundles (tests/helpers/tiny_bundles.py) with golden.npz written by the converter's
own writer, LiteRT, OpenCV on an image folder. Nothing is mocked.
"""
from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

import cv2
import numpy as np
import pytest
import yaml

from edge.bundle import GOLDEN, MANIFEST, SIGNATURE, load_bundle, sha256_file
from edge.config import settings_from_dict
from edge.errors import BundleError
from edge.models import FaceModel
from edge.push import InstallError, ModelStore, compare_golden, install_bundle, rollback
from edge.control import ControlClient
from edge.service import notify, watchdog_interval
from tests.conftest import REPO
from tests.helpers.tiny_bundles import build_attributes_bundle, build_multitask_bundle, corrupt_model

NAME = "attributes"


# --- bundles with golden faces (shared with tests/test_push_ssh.py) ------------------------------
def make_bundle(folder: Path, version: str, seed: int, *, task: str = "attributes", golden: bool = True,
                golden_shift: float = 0.0, sign_with: Any = None, pad_bytes: int = 0) -> Path:
    """Build a tiny real bundle named ``attributes``; golden.npz by the converter's writer; optional signature.

    ``golden_shift`` adds to the recorded outputs (a bundle whose model does not match its golden
    faces); ``pad_bytes`` adds a listed file of that size (to make transfers long enough to cut).
    """
    from converters.bundle_writer import write_golden

    if task == "attributes":
        build_attributes_bundle(folder, name=NAME, version=version, seed=seed)
    else:
        build_multitask_bundle(folder, name=NAME, version=version, seed=seed)
    raw = yaml.safe_load((folder / MANIFEST).read_text())
    if golden:
        model = FaceModel(load_bundle(folder))
        faces = np.random.default_rng(seed).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
        raw["golden"] = write_golden(folder, model, faces)
        if golden_shift:
            with np.load(folder / GOLDEN) as data:
                arrays = {k: data[k] for k in data.files}
            for out in model.manifest.outputs:
                arrays[out.name] = arrays[out.name] + np.float32(golden_shift)
            np.savez_compressed(folder / GOLDEN, **arrays)
        raw["files"][GOLDEN] = sha256_file(folder / GOLDEN)
    if pad_bytes:
        (folder / "padding.bin").write_bytes(np.random.default_rng(seed).bytes(pad_bytes))
        raw["files"]["padding.bin"] = sha256_file(folder / "padding.bin")
    (folder / MANIFEST).write_text(yaml.safe_dump(raw, sort_keys=False))
    if sign_with is not None:
        (folder / SIGNATURE).write_bytes(base64.b64encode(sign_with.sign((folder / MANIFEST).read_bytes())))
    return folder


def write_frames(folder: Path, n: int = 6) -> Path:
    """Write ``n`` small real images (noise with a bright disc) as frames of an image-folder source."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(n):
        img = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
        cv2.circle(img, (40 + 10 * i, 60), 20, (255, 255, 255), -1)
        cv2.imwrite(str(folder / f"frame{i:02d}.png"), img)
    return folder


def device_config(tmp: Path, models: Path, frames: Path, socket_path: Optional[Path],
                  public_key: Optional[Path] = None) -> Path:
    """Write an edge.yaml for a headless run on ``frames`` with the ``attributes`` bundle; return its path."""
    cfg = {"source": {"uri": str(frames), "fps": 20, "loop": True, "realtime": True},
           "models": {"dir": str(models), "bundles": [NAME]},
           "display": {"window": False},
           "service": {"control_socket": str(socket_path) if socket_path else None, "watchdog": True},
           "log_level": "info"}
    if public_key is not None:
        cfg["models"]["public_key"] = str(public_key)
    path = tmp / "edge.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def face_edge_cmd() -> list[str]:
    """Return the argv prefix that runs this checkout's face-edge CLI."""
    return [sys.executable, "-m", "edge.cli"]


def child_env(**extra: str) -> dict[str, str]:
    """Return an environment in which ``python -m edge.cli`` imports this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("NOTIFY_SOCKET", None)
    env.pop("WATCHDOG_USEC", None)
    env.update(extra)
    return env


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout:g} s waiting for {what}")


class NotifyListener:
    """A unix datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, str]] = []

    def drain(self) -> list[str]:
        """Read every pending datagram; return all messages so far."""
        while True:
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, BlockingIOError):
                break
            self.messages.append((time.monotonic(), data.decode()))
        return [m for _, m in self.messages]

    def has(self, needle: str) -> bool:
        """Return True once a message containing ``needle`` arrived."""
        return any(needle in m for m in self.drain())

    def close(self) -> None:
        self.sock.close()


class RunningEdge:
    """`face-edge run` in a child process, headless, on an image folder."""

    def __init__(self, config: Path, env: dict[str, str], log: Path):
        self.log = log
        self.proc = subprocess.Popen(face_edge_cmd() + ["run", "--config", str(config), "--no-display"],
                                     env=env, stdout=subprocess.DEVNULL, stderr=open(log, "w"))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                return self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait(5)
        return self.proc.returncode

    def output(self) -> str:
        return self.log.read_text()


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Build the tiny bundles once per module: v1, v2, bad golden, another task."""
    base = tmp_path_factory.mktemp("bundles")
    return {"v1": make_bundle(base / "v1", "1", seed=1),
            "v2": make_bundle(base / "v2", "2", seed=2),
            "badgolden": make_bundle(base / "badgolden", "3", seed=2, golden_shift=0.5),
            "multitask": make_bundle(base / "multitask", "4", seed=3, task="multitask")}


def copy_bundle(src: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(src, dest)
    return dest


# --- sd_notify -------------------------------------------------------------------------------------
def test_notify_reaches_a_datagram_socket_and_abstract_names(tmp_path: Path) -> None:
    listener = NotifyListener(tmp_path / "notify")
    try:
        assert notify("READY=1\nSTATUS=hi", str(listener.path)) is True
        assert listener.drain() == ["READY=1\nSTATUS=hi"]
    finally:
        listener.close()
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"face-edge-test-{os.getpid()}"
    abstract.bind("\0" + name)
    abstract.settimeout(2)
    try:
        assert notify("WATCHDOG=1", "@" + name) is True
        assert abstract.recv(100) == b"WATCHDOG=1"
    finally:
        abstract.close()
    assert notify("READY=1", str(tmp_path / "nobody-listens")) is False
    assert notify("READY=1", "") is False


def test_watchdog_interval_follows_systemd_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert watchdog_interval() is None   # meant for another process
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == 15.0


def test_a_stuck_frame_loop_stops_the_watchdog_pings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pings come from the loop itself, not a timer: while a frame hangs, systemd hears nothing."""
    import threading

    from edge.pipeline import Pipeline
    from edge.service import Service

    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    settings = settings_from_dict({"source": {"uri": str(write_frames(tmp_path / "frames")), "fps": 30, "loop": True},
                                   "models": {"dir": str(tmp_path / "models"), "bundles": []},
                                   "display": {"window": False}})
    pipeline = Pipeline(settings)
    stuck, release = threading.Event(), threading.Event()
    pipeline.on_frame.append(lambda p, i: release.wait(10) if stuck.is_set() else None)
    listener = NotifyListener(tmp_path / "notify")
    service = Service(pipeline, notify_socket=str(listener.path)).attach()
    loop = threading.Thread(target=pipeline.run, daemon=True)
    loop.start()
    pings = lambda: sum(m == "WATCHDOG=1" for m in listener.drain())  # noqa: E731
    try:
        wait_for(lambda: listener.has("READY=1") and pings() >= 3, 20, "READY=1 and pings")
        stuck.set()
        time.sleep(0.3)                      # the frame in flight finishes, the next one hangs
        before = pings()
        time.sleep(1.0)                      # five ping intervals
        assert pings() == before, "pings went on while the frame loop was stuck"
        stuck.clear()
        release.set()
        wait_for(lambda: pings() >= before + 3, 10, "pings after the loop moved again")
    finally:
        release.set()
        pipeline.stop()
        loop.join(10)
        service.close()
        listener.close()
    assert not loop.is_alive()


# --- golden faces ------------------------------------------------------------------------------------
def test_golden_faces_pass_for_the_right_model_and_fail_for_a_wrong_one(bundles: dict[str, Path]) -> None:
    good = compare_golden(FaceModel(load_bundle(bundles["v1"])))
    assert good.ok and good.faces == 4 and good.max_error <= 0.02
    bad = compare_golden(FaceModel(load_bundle(bundles["badgolden"])))
    assert not bad.ok and "error" in bad.detail


# --- the service in a real `face-edge run` -------------------------------------------------------------
def test_run_notifies_pings_watchdog_reloads_on_sighup_and_stops_on_sigterm(
        tmp_path: Path, bundles: dict[str, Path]) -> None:
    models = tmp_path / "models"
    models.mkdir()
    copy_bundle(bundles["v1"], models / NAME)
    sock = tmp_path / "run" / "control.sock"
    cfg = device_config(tmp_path, models, write_frames(tmp_path / "frames"), sock)
    listener = NotifyListener(tmp_path / "notify")
    edge = RunningEdge(cfg, child_env(NOTIFY_SOCKET=str(listener.path), WATCHDOG_USEC="400000"),
                       tmp_path / "run.log")
    try:
        wait_for(lambda: listener.has("READY=1"), 40, "READY=1 " + edge.output()[-500:])
        first_ready = next(m for m in listener.drain() if "READY=1" in m)
        assert "STATUS=frame" in first_ready and "attributes@1" in first_ready
        t0 = time.monotonic()
        wait_for(lambda: sum("WATCHDOG=1" in m for m in listener.drain()) >= 4, 10, "watchdog pings")
        assert time.monotonic() - t0 < 5   # one ping per 0.2 s is asked for
        client = ControlClient(sock)
        st = client.status()
        assert st["ready"] and st["models"] == {NAME: "1"} and st["pid"] == edge.proc.pid
        assert oct(os.stat(sock).st_mode & 0o777) == "0o660"

        # Swap the folder for v2 and SIGHUP (what `systemctl reload` sends): same process, new model.
        os.rename(models / NAME, tmp_path / "old")
        copy_bundle(bundles["v2"], models / NAME)
        edge.proc.send_signal(signal.SIGHUP)
        st = wait_for(lambda: (lambda st: st if st["reloads"] == 1 else None)(client.status()), 20,
                      "the reload to v2")
        assert st["models"] == {NAME: "2"} and st["last_reload"]["ok"] is True
        assert listener.has("RELOADING=1")
        frame_after = st["frame"]
        wait_for(lambda: client.status()["frame"] > frame_after + 3, 10, "frames after the reload")

        # A corrupt bundle: the reload reports it, v2 keeps answering.
        corrupt_model(models / NAME)
        answer = client.reload([NAME], timeout=20)
        assert answer["ok"] is False and any("sha256" in e for e in answer["errors"])
        assert client.status()["models"] == {NAME: "2"}
        assert edge.proc.poll() is None
    finally:
        code = edge.stop()
        listener.drain()
        listener.close()
    assert code == 0, edge.output()[-2000:]
    assert any("STOPPING=1" in m for _, m in listener.messages)
    assert not sock.exists()


# --- install-bundle on the device, against a running service ------------------------------------------
def test_install_switches_atomically_refuses_bad_bundles_and_rolls_back(
        tmp_path: Path, bundles: dict[str, Path]) -> None:
    models = tmp_path / "models"
    models.mkdir()
    copy_bundle(bundles["v1"], models / NAME)      # a shipped, plain folder: adopted on first install
    sock = tmp_path / "control.sock"
    cfg_path = device_config(tmp_path, models, write_frames(tmp_path / "frames"), sock)
    settings = settings_from_dict(yaml.safe_load(cfg_path.read_text()))
    store = ModelStore(models)
    edge = RunningEdge(cfg_path, child_env(), tmp_path / "run.log")
    try:
        client = ControlClient(sock)
        wait_for(lambda: sock.exists() and client.status()["ready"], 40, "the service " + edge.output()[-500:])

        result = install_bundle(copy_bundle(bundles["v2"], tmp_path / "staged-v2"), settings, timeout=20)
        assert (result.version, result.previous) == ("2", "1")
        assert "runs attributes 2" in result.service and "golden" in result.service
        assert client.status()["models"] == {NAME: "2"}
        assert (models / NAME).is_symlink() and os.readlink(models / NAME) == ".versions/attributes/2"
        assert store.previous(NAME) == (models / ".versions/attributes/1").resolve()
        assert not (tmp_path / "staged-v2").exists()

        # refused: wrong golden outputs, another task, tampered file; the running model stays v2
        for key, exc, words in (("badgolden", BundleError, "golden"), ("multitask", BundleError, "task")):
            with pytest.raises(exc, match=words):
                install_bundle(copy_bundle(bundles[key], tmp_path / f"staged-{key}"), settings, timeout=20)
            assert not (tmp_path / f"staged-{key}").exists()
        tampered = copy_bundle(bundles["v2"], tmp_path / "staged-tampered")
        (tampered / "MODEL_CARD.md").write_text("edited after signing\n")
        with pytest.raises(BundleError, match="sha256"):
            install_bundle(tampered, settings, timeout=20)
        assert client.status()["models"] == {NAME: "2"}
        assert sorted(p.name for p in (models / ".versions" / NAME).iterdir()) == ["1", "2", "previous"]

        # rollback by hand: back to 1; the one rolled back from becomes "previous"
        back = rollback(NAME, settings, timeout=20)
        assert (back.version, back.previous) == ("1", "2")
        assert client.status()["models"] == {NAME: "1"}

        # a service that stops answering (SIGSTOP) is unhealthy: the install rolls itself back
        edge.proc.send_signal(signal.SIGSTOP)
        with pytest.raises(InstallError, match="rolled back"):
            install_bundle(copy_bundle(bundles["v2"], tmp_path / "staged-again"), settings, timeout=2)
        edge.proc.send_signal(signal.SIGCONT)
        assert os.readlink(models / NAME) == ".versions/attributes/1"
        wait_for(lambda: client.status()["models"] == {NAME: "1"}, 20, "the service on v1 after the rollback")
    finally:
        edge.stop()


def test_install_without_a_running_service_and_nothing_to_roll_back(tmp_path: Path,
                                                                     bundles: dict[str, Path]) -> None:
    models = tmp_path / "models"
    settings = settings_from_dict({"models": {"dir": str(models), "bundles": [NAME]},
                                   "service": {"control_socket": str(tmp_path / "none.sock")}})
    with pytest.raises(InstallError, match="no previous version"):
        rollback(NAME, settings)
    result = install_bundle(copy_bundle(bundles["v1"], tmp_path / "s1"), settings)
    assert result.previous is None and "next start" in result.service
    again = install_bundle(copy_bundle(bundles["v1"], tmp_path / "s1b"), settings)
    assert again.service == "already installed and active"


def _mount_tmpfs(where: Path, options: str) -> None:
    where.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")


def test_full_disk_on_the_device_changes_nothing(tmp_path: Path, bundles: dict[str, Path]) -> None:
    """The models folder on real, small tmpfs mounts: out of bytes, then out of inodes mid-copy."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounts = []
    try:
        # 1) 1 MiB filesystem, nearly full: refused before copying anything.
        models = tmp_path / "models"
        _mount_tmpfs(models, "size=1m")
        mounts.append(models)
        settings = settings_from_dict({"models": {"dir": str(models), "bundles": [NAME]}})
        install_bundle(copy_bundle(bundles["v1"], tmp_path / "s1"), settings)
        st = os.statvfs(models)
        (models / "filler.bin").write_bytes(b"\0" * (st.f_bavail * st.f_bsize - 8192))
        with pytest.raises(InstallError, match="no space left"):
            install_bundle(copy_bundle(bundles["v2"], tmp_path / "s2"), settings)
        assert os.readlink(models / NAME) == ".versions/attributes/1"
        assert sorted(p.name for p in (models / ".versions" / NAME).iterdir()) == ["1"]
        load_bundle(models / NAME)

        # 2) Plenty of bytes but only 2 free inodes: the copy itself fails with ENOSPC half-way,
        #    the half-copied version is removed and v1 stays.
        models2 = tmp_path / "models2"
        _mount_tmpfs(models2, "size=8m,nr_inodes=40")
        mounts.append(models2)
        settings2 = settings_from_dict({"models": {"dir": str(models2), "bundles": [NAME]}})
        install_bundle(copy_bundle(bundles["v1"], tmp_path / "s3"), settings2)
        fill = models2 / "inodes"
        fill.mkdir()
        i = 0
        while os.statvfs(models2).f_ffree > 2:
            (fill / str(i)).touch()
            i += 1
        with pytest.raises(InstallError, match="no space left"):
            install_bundle(copy_bundle(bundles["v2"], tmp_path / "s4"), settings2)
        assert os.readlink(models2 / NAME) == ".versions/attributes/1"
        assert sorted(p.name for p in (models2 / ".versions" / NAME).iterdir()) == ["1"]
        assert not (tmp_path / "s4").exists()
    finally:
        for where in reversed(mounts):
            subprocess.run(["umount", str(where)], check=False)
