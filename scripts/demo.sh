#!/usr/bin/env bash
# Sets up .venv (runtime dependencies only) and runs the main job: one master and two slave processes
# over Zenoh on the embedded synthetic driving sample. Outputs land in out/demo/.
# Extra arguments pass through to `dvs-cluster run`, e.g. scripts/demo.sh --slaves 3 --frames 200.
source "$(dirname "$0")/_venv.sh" ""
mkdir -p out/demo
.venv/bin/dvs-cluster run --slaves 2 --frames 60 \
  --json out/demo/report.json --save-labels out/demo/labels --save-gt out/demo/gt \
  --save-overlay out/demo/overlay.mp4 "$@"
echo "outputs: out/demo/report.json, out/demo/overlay.mp4, out/demo/labels/" >&2
