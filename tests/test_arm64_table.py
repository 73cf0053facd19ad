"""scripts/arm64_table.py: the arm64 check's verdict (the emulated runs themselves take minutes: README)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "arm64_table.py"


def result(names: list, exit_code: int = 0) -> dict:
    bundle = {"ok": True, "version": "1.1.0", "detail": "4 faces, max error 0.0000"}
    golden = {"python": "3.11.2", "runtime": "ai_edge_litert 2.3.0", "kernels": "NEON", "xnnpack": True,
              "frames": 30, "bundles": {"embedding": bundle, "landmarks": bundle}}
    return {"check": 0, "run": 0, "install_s": 200.0, "run_s": 8.0, "golden": {"cortex-a76": golden},
            "recognize": {"exit": exit_code, "names": names, "distances": [0.128] * len(names)}}


def table(*results: dict) -> subprocess.CompletedProcess:
    lines = "".join(f"rel{i}\t250\t{json.dumps(r)}\n" for i, r in enumerate(results))
    return subprocess.run([sys.executable, str(SCRIPT)], input=lines, capture_output=True, text=True, check=False)


def test_a_release_whose_demo_face_is_named_passes_every_step() -> None:
    done = table(result(["astronaut"]))
    assert done.returncode == 0, done.stdout
    assert "ok (astronaut 0.128; exit 0)" in done.stdout
    assert "arm64: 7 passed, 0 failed" in done.stdout      # install, check, run, recognize, frames, 2 bundles


def test_an_unnamed_or_missing_face_or_a_failed_command_fails_the_check() -> None:
    for bad in (result([None]), result([]), result(["astronaut"], exit_code=2), result(["astronaut", None])):
        done = table(bad)
        assert done.returncode == 1 and "arm64: 6 passed, 1 failed" in done.stdout, done.stdout
        assert "FAIL (" in done.stdout
