"""Print `systemd-analyze security` exposure of systemd/face-edge.service (target <= 3.0).

Runs offline on the unit files in this checkout, for the headless unit and with the
attached-screen drop-in, beside a naive baseline (the same ExecStart/User with no
hardening) measured in the same run. Prints figures; never fails on them.

    python benchmarks/systemd_security.py [--details]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "systemd" / "face-edge.service"
DROPIN = REPO / "systemd" / "face-edge.service.d" / "display.conf"
TARGET = 3.0
NAIVE = """[Unit]
Description=face-edge without hardening (baseline)
[Service]
Type=notify
ExecStart=/opt/face-edge/venv/bin/face-edge run --config /etc/face-edge/edge.yaml
User=face-edge
SupplementaryGroups=video
Restart=on-failure
[Install]
WantedBy=multi-user.target
"""


def exposure(unit_text: str, dropin: str | None = None, details: bool = False) -> tuple[float, str]:
    """Return (exposure, label) of ``unit_text`` (+ optional drop-in) from systemd-analyze security."""
    with tempfile.TemporaryDirectory() as tmp:
        unit_dir = Path(tmp)
        (unit_dir / UNIT.name).write_text(unit_text)
        if dropin is not None:
            (unit_dir / f"{UNIT.name}.d").mkdir()
            (unit_dir / f"{UNIT.name}.d" / "display.conf").write_text(dropin)
        env = dict(os.environ, SYSTEMD_UNIT_PATH=f"{unit_dir}:")
        done = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", UNIT.name],
                              env=env, capture_output=True, text=True)
    if details:
        print("\n".join(ln.rstrip() for ln in done.stdout.splitlines() if ln.startswith("✗")))
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\S+)", done.stdout)
    if not match:
        raise SystemExit(f"systemd-analyze security gave no exposure: {done.stderr.strip()}")
    return float(match.group(1)), match.group(2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--details", action="store_true", help="list the settings that still add exposure")
    args = parser.parse_args()
    if shutil.which("systemd-analyze") is None:
        print("systemd-analyze is not installed (apt install systemd); nothing measured")
        return 0
    version = subprocess.run(["systemd-analyze", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    print(f"systemd-analyze security --offline ({version})")
    naive, naive_label = exposure(NAIVE)
    headless, label = exposure(UNIT.read_text(), details=args.details)
    display, dlabel = exposure(UNIT.read_text(), DROPIN.read_text())
    print(f"  baseline (no hardening)        {naive:4.1f} {naive_label}")
    print(f"  face-edge.service (headless)   {headless:4.1f} {label}   target <= {TARGET}   "
          f"{'met' if headless <= TARGET else 'NOT met'}")
    print(f"  + display.conf (DISPLAY=:0)    {display:4.1f} {dlabel}   target <= {TARGET}   "
          f"{'met' if display <= TARGET else 'NOT met'}")
    print(f"  exposure vs baseline: {headless / naive:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
