"""systemd/face-edge.service and its display drop-in, checked by the real systemd-analyze.

`systemd-analyze verify` needs the ExecStart binary to exist: the unit is copied to a temporary
unit path with ExecStart pointed at this machine's python running the same CLI module; every
other line is the shipped unit byte for byte.
"""
from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

UNIT = REPO / "systemd" / "face-edge.service"
DROPIN = REPO / "systemd" / "face-edge.service.d" / "display.conf"
NETWORK = REPO / "systemd" / "face-edge.service.d" / "network.conf"
VARIANTS = {"headless": (), "display": (DROPIN,), "network": (NETWORK,), "display+network": (DROPIN, NETWORK)}
EXPOSURE_TARGET = 3.0


def _analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.skip("systemd-analyze is not installed (apt install systemd)")
    return path


def _unit_dir(tmp_path: Path, variant: str) -> Path:
    unit_dir = tmp_path / "units"
    unit_dir.mkdir()
    text = UNIT.read_text()
    assert text.count("ExecStart=/opt/face-edge/venv/bin/face-edge ") == 1
    text = text.replace("ExecStart=/opt/face-edge/venv/bin/face-edge ", f"ExecStart={sys.executable} -m edge.cli ")
    (unit_dir / UNIT.name).write_text(text)
    for dropin in VARIANTS[variant]:
        (unit_dir / f"{UNIT.name}.d").mkdir(exist_ok=True)
        shutil.copy(dropin, unit_dir / f"{UNIT.name}.d" / dropin.name)
    return unit_dir


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_unit_verifies_without_any_warning(tmp_path: Path, variant: str) -> None:
    analyze = _analyze()
    unit_dir = _unit_dir(tmp_path, variant)
    env = dict(os.environ, SYSTEMD_UNIT_PATH=f"{unit_dir}:", SYSTEMD_LOG_LEVEL="info")
    done = subprocess.run([analyze, "verify", "--man=no", UNIT.name], env=env, cwd=unit_dir,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    own = [ln for ln in done.stderr.splitlines() if str(unit_dir) in ln or UNIT.name in ln]
    assert own == [], "\n".join(own)


def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: a missing ExecStart binary and an unknown key are reported."""
    analyze = _analyze()
    unit_dir = tmp_path / "units"
    unit_dir.mkdir()
    (unit_dir / UNIT.name).write_text(UNIT.read_text().replace("NoNewPrivileges=yes", "NoNewPrivilegez=yes"))
    env = dict(os.environ, SYSTEMD_UNIT_PATH=f"{unit_dir}:")
    done = subprocess.run([analyze, "verify", "--man=no", UNIT.name], env=env, cwd=unit_dir,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "is not executable" in done.stderr
    assert "NoNewPrivilegez" in done.stderr


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_security_exposure_is_at_most_3(tmp_path: Path, variant: str) -> None:
    analyze = _analyze()
    unit_dir = _unit_dir(tmp_path, variant)
    env = dict(os.environ, SYSTEMD_UNIT_PATH=f"{unit_dir}:")
    done = subprocess.run([analyze, "security", "--offline=yes", "--no-pager", UNIT.name], env=env,
                          capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for face-edge\.service: ([0-9.]+)", done.stdout)
    assert match, done.stdout[-500:] + done.stderr
    assert float(match.group(1)) <= EXPOSURE_TARGET


def test_unit_runs_unprivileged_with_camera_access_and_systemd_supervision() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment]
    text = UNIT.read_text()
    repeated = re.compile(r"^(DeviceAllow|SystemCallFilter)=.*\n", re.M)  # keys systemd allows many times
    parser.read_string(repeated.sub("", text))
    svc, unit = parser["Service"], parser["Unit"]
    assert svc["User"] == "face-edge" and "video" in svc["SupplementaryGroups"].split()
    assert svc["Type"] == "notify" and svc["NotifyAccess"] == "main"
    assert int(svc["WatchdogSec"]) > 0 and svc["Restart"] == "on-failure"
    assert int(unit["StartLimitBurst"]) > 0 and int(unit["StartLimitIntervalSec"]) > 0
    assert svc["ExecReload"].endswith("-HUP $MAINPID")
    assert svc["ProtectSystem"] == "strict" and svc["ReadWritePaths"] == "/var/lib/face-edge"
    assert svc["NoNewPrivileges"] == "yes" and svc["ProtectHome"] == "yes" and svc["PrivateTmp"] == "yes"
    assert svc["DevicePolicy"] == "closed"
    allowed = set(re.findall(r"^DeviceAllow=(\S+) rw$", text, re.M))
    assert {"char-video4linux", "char-media", "char-dma_heap", "/dev/vchiq"} <= allowed
    assert "--config /etc/face-edge/edge.yaml" in svc["ExecStart"]
    drop = DROPIN.read_text()
    assert "Environment=DISPLAY=:0" in drop and "/tmp/.X11-unix" in drop
    net = NETWORK.read_text()
    assert "PrivateNetwork=no" in net and "AF_INET AF_INET6" in net and "\nIPAddressDeny=\n" in net
