#!/usr/bin/env bash
# Installs the edge app into the project's .venv and starts the live demo on the shipped clip and
# shipped models. With a screen that answers it opens a window (q or Esc quits); without one (or
# with a DISPLAY nobody serves) it runs headless and writes the annotated video to out/demo.mp4
# and person events to out/events.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/project_venv.sh
# OpenCV's wheel loads libGL and GLib, which a minimal system (Raspberry Pi OS Lite) lacks.
apt_install demo.sh "OpenCV's wheel needs libGL and GLib; python3-venv makes the project's .venv" \
  libgl1 "$(glib_package)" $(venv_package)
project_venv demo.sh edge
mkdir -p out
if python3 -c "import sys; from edge.display import probe_display; sys.exit(0 if probe_display().ok else 1)"; then
  exec face-edge run --config edge.yaml "$@"
fi
exec face-edge run --config edge.yaml --no-display --record out/demo.mp4 --events out/events.jsonl --max-frames 300 "$@"
