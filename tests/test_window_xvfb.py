"""One real OpenCV window, on a virtual X display (xvfb-run)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from .conftest import REPO


@pytest.mark.xvfb
def test_run_opens_a_real_window_under_xvfb(tmp_path):
    if shutil.which("xvfb-run") is None:
        pytest.skip("xvfb-run is not installed (apt install xvfb)")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    config = tmp_path / "edge.yaml"
    config.write_text(f"models:\n  bundles: []\nsource:\n  realtime: false\n")
    done = subprocess.run(["xvfb-run", "-a", sys.executable, "-m", "edge.cli", "run", "--config", str(config),
                           "--max-frames", "20", "--log-level", "info"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "window sink: showing frames in window 'face-edge'" in done.stderr
    assert "stopped after 20 frames" in done.stderr
    assert "running headless" not in done.stderr
