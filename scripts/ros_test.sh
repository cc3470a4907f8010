#!/usr/bin/env bash
# The `ros` test group against a real ROS 2 Humble: build (or reuse) the rig, colcon-build this repository's
# two packages into a fresh workspace, make (or reuse) a venv that sees rclpy, run `pytest -m ros test/ros`.
#
#   scripts/ros_test.sh [pytest args]        e.g. scripts/ros_test.sh -k cdr
#
# Environment: ROS2_RIG (default ../shared/ros2-humble), ROS2_HUMBLE_PREFIX (default ~/.cache/ros2-humble),
# DVS_ROS_WS (workspace, default ~/.cache/dvs_cluster/ros_ws), DVS_ROS_VENV (default ~/.cache/dvs_cluster/ros-venv).
# Needs root the first time (the rig's build.sh installs Debian packages with apt-get).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RIG=${ROS2_RIG:-$REPO/../shared/ros2-humble}
PREFIX=${ROS2_HUMBLE_PREFIX:-$HOME/.cache/ros2-humble}
WS=${DVS_ROS_WS:-$HOME/.cache/dvs_cluster/ros_ws}
VENV=${DVS_ROS_VENV:-$HOME/.cache/dvs_cluster/ros-venv}
log() { printf '[ros_test %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# 1. The rig (cached by its own stamp). Its colcon call uses `--event-handlers status-` (colcon-notification).
if [[ ! -f $PREFIX/setup.bash ]]; then
  if ! dpkg -s python3-colcon-notification >/dev/null 2>&1; then
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -q python3-colcon-notification >/dev/null
  fi
fi
log "rig: $RIG/build.sh (cached after the first build)"
ROS2_HUMBLE_PREFIX=$PREFIX bash "$RIG/build.sh"

# Everything below runs with Debian's python3 first on PATH (the rig is built for it), not a pyenv/venv.
export PATH=/usr/bin:/bin:/usr/sbin:/sbin
unset PYTHONPATH VIRTUAL_ENV PYTHONHOME
set +u; source "$PREFIX/setup.bash"; set -u
export RMW_IMPLEMENTATION=rmw_cyclonedds_cpp

# 2. A clean workspace with a copy of the tracked (and not ignored) files, built the way docs/ROS2.md says.
log "colcon build in $WS"
rm -rf "$WS"
mkdir -p "$WS/src/dvs_cluster"
(cd "$REPO" && { git ls-files -z; git ls-files -z --others --exclude-standard; } | sort -zu \
  | xargs -0 -I{} sh -c 'test -e "{}" && printf "%s\0" "{}"' | tar --null -T - -cf -) | tar -xf - -C "$WS/src/dvs_cluster"
(cd "$WS" && nice colcon build --base-paths src src/dvs_cluster/ros2 --parallel-workers 1 \
  --event-handlers console_cohesion- \
  --cmake-args -DPython3_EXECUTABLE=/usr/bin/python3 -DBUILD_TESTING=OFF)
set +u; source "$WS/install/setup.bash"; set -u

# 3. The test venv: Debian's python with the rig's site packages, numpy<2 (the generated code and cv_bridge
#    are built against Debian's numpy 1.x), and the runtime deps that have no Debian/rosdep package.
STAMP=$VENV/.dvs_cluster_deps_v1
if [[ ! -f $STAMP ]]; then
  log "venv $VENV"
  rm -rf "$VENV"
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
  "$VENV/bin/python" -m pip install -q "numpy<2" "onnxruntime>=1.16" "eclipse-zenoh>=1.0" "rosbags>=0.10" \
    "pyyaml>=6" "pytest>=7" onnx 2>&1 | grep -v '^WARNING: Location' || true
  touch "$STAMP"
fi
# Activated, so the nodes `ros2 launch` starts (#!/usr/bin/env python3) run in it too.
export VIRTUAL_ENV=$VENV PATH=$VENV/bin:$PATH
"$VENV/bin/python" -c 'import numpy, rclpy, cv_bridge, onnxruntime, zenoh, rosbags, dvs_cluster_interfaces.msg
assert numpy.__version__ < "2", numpy.__version__'

# 4. The tests, run from the workspace so the installed dvs_cluster (not the source tree) is imported.
cd "$WS"
export DVS_ROS_WS=$WS
log "pytest -m ros test/ros $*"
exec "$VENV/bin/python" -m pytest -p no:cacheprovider -m ros -v --durations=0 \
  "$REPO/test/ros" "$REPO/test/test_ros_static.py" "$@"
