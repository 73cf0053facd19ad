#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian/Raspberry Pi OS machine, then runs them:
# the tools below with apt (as root, else through sudo), and the app, trainer and test tools with
# pip into the project's .venv (the system Python refuses pip installs: PEP 668).
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/project_venv.sh
apt_install test.sh "the tests need Xvfb for a real window, sshd and rsync for push, systemd-analyze for the unit, mosquitto as the MQTT broker, Chromium for the web page (libatomic for Playwright's driver), libGL/GLib for OpenCV; python3-venv makes the project's .venv" \
  xvfb openssh-server rsync systemd mosquitto chromium libatomic1 libgl1 "$(glib_package)" $(venv_package)
project_venv test.sh edge,trainer,dev,mqtt,web
exec "$VENV_PY" -m pytest -q -ra "$@"
