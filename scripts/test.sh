#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian/Raspberry Pi OS machine, then runs them.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
if command -v apt-get >/dev/null 2>&1; then
  missing=""
  command -v xvfb-run >/dev/null 2>&1 || missing="$missing xvfb"
  command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || missing="$missing openssh-server"
  command -v systemd-analyze >/dev/null 2>&1 || missing="$missing systemd"
  command -v rsync >/dev/null 2>&1 || missing="$missing rsync"
  # mosquitto: the real MQTT broker the MQTT tests start on 127.0.0.1; chromium: the browser the web page is tested in
  command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing="$missing mosquitto"
  command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
  if [ -n "$missing" ]; then
    $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  fi
fi
python3 -m pip install -q --disable-pip-version-check -e ".[edge,trainer,dev,mqtt,web]"
exec python3 -m pytest -q -ra "$@"
