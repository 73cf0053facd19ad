#!/usr/bin/env bash
# Installs the edge app and starts the live demo on the shipped clip and shipped models.
# With a screen that answers it opens a window (q or Esc quits); without one (or with a DISPLAY
# nobody serves) it runs headless and writes the annotated video to out/demo.mp4 and person
# events to out/events.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --disable-pip-version-check -e ".[edge]"
mkdir -p out
if python3 -c "import sys; from edge.display import probe_display; sys.exit(0 if probe_display().ok else 1)"; then
  exec face-edge run --config edge.yaml "$@"
fi
exec face-edge run --config edge.yaml --no-display --record out/demo.mp4 --events out/events.jsonl --max-frames 300 "$@"
