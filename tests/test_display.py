"""The display is probed before the first window: a DISPLAY nobody serves means headless, not Qt's abort.
Real processes: face-edge run / check with a DISPLAY that has no X server, and a real Xvfb for the probe."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge.display import probe_display

from .conftest import REPO


def _unserved_display() -> str:
    """Return ':N' with no X server behind it (no socket, no lock file), starting at :99."""
    for n in range(99, 400):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            return f":{n}"
    pytest.skip("no free X display number")


def _cli(display: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "FACE_EDGE_CONFIG")}
    env["DISPLAY"] = display
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)


def test_an_unserved_display_runs_headless_with_one_warning(tmp_path):
    display = _unserved_display()
    config = tmp_path / "edge.yaml"
    config.write_text("models:\n  bundles: []\nsource:\n  realtime: false\n")
    done = _cli(display, "run", "--config", str(config), "--max-frames", "5", "--log-level", "info")
    assert done.returncode == 0, done.stderr[-2000:]                   # not 134 (Qt's abort)
    warning = f"DISPLAY={display} is set but no X server answers there"
    assert done.stderr.count("running headless") == 1 and warning in done.stderr
    assert "stopped after 5 frames" in done.stderr and "could not connect to display" not in done.stderr
    check = _cli(display, "check", "--config", str(config), "--log-level", "error")
    assert check.returncode == 0, check.stdout + check.stderr
    line = next(ln for ln in check.stdout.splitlines() if "display" in ln.split()[:2])
    assert warning in line and "runs headless" in line and "window opens" not in line


def test_the_probe_sees_a_real_x_server():
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt install xvfb)")
    read, write = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "320x240x24", "-nolisten", "tcp"],
                            pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    try:
        with os.fdopen(read) as pipe:
            number = pipe.readline().strip()
        assert number.isdigit()
        assert probe_display({"DISPLAY": f":{number}"}).ok
    finally:
        xvfb.terminate()
        xvfb.wait(10)
    assert not probe_display({"DISPLAY": f":{number}"}).ok          # gone with the server
    assert not probe_display({}).ok
