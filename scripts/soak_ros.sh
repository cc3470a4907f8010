#!/usr/bin/env bash
# Overload soak through the ROS master (issue 21): `ros2 launch dvs_cluster cluster.launch.py` (master, 2 slaves,
# the stand-in camera) with the camera at 2x what the cluster sustains, for DURATION seconds (default 600).
#
#   bash scripts/soak_ros.sh [DURATION_S]        # ROS_DISTRO_SOAK=jazzy for the other rig; not in the suite
#
# Renders 100 synthetic frames once (out/soak_ros/unique; the camera loops over them: live rendering would
# be slower than the camera), builds the workspace (rig and venv as scripts/ros_test.sh), then runs
# scripts/soak_ros.py: a capacity run, then the soak. Pass: every `stats` message accounts for every frame
# (frames_out + frames_dropped + frames_pending == frames_in) and the master's and slaves' RSS stay within
# 10 % of their value at minute 2. Output: out/soak_ros/summary.json (and run.json, the launch logs).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_ros_env.sh"
DUR=${1:-600}
DISTRO=${ROS_DISTRO_SOAK:-humble}
OUT=$REPO/out/soak_ros
W=${SOAK_WIDTH:-1024}
H=${SOAK_HEIGHT:-512}
ros_rig "$DISTRO"
ros_venv
ros_workspace "$DISTRO" "${DVS_ROS_WS:-$HOME/.cache/dvs_cluster/ros_ws}/soak_$DISTRO"
mkdir -p "$OUT"
python - "$OUT/unique" "$W" "$H" <<'EOF'
import sys
from pathlib import Path

import cv2

from dvs_cluster.io.sources import open_source

out, w, h = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
if not (out / "0099.png").exists() or cv2.imread(str(out / "0099.png")).shape[:2] != (h, w):
    out.mkdir(parents=True, exist_ok=True)
    with open_source("synthetic", w, h, frames=100) as src:
        for f in src:
            cv2.imwrite(str(out / f"{f.index:04d}.png"), cv2.cvtColor(f.image, cv2.COLOR_RGB2BGR))
EOF
cd "$OUT"
exec python "$REPO/scripts/soak_ros.py" --out "$OUT" --frames-dir "$OUT/unique" --duration "$DUR" \
  --width "$W" --height "$H"
