# Sourced by ros_test.sh and soak_ros.sh: a ROS 2 rig per distro, the test venv, and a colcon workspace of
# this repository built the way docs/ROS2.md says. Functions only; the caller has `set -euo pipefail`.
#
# Environment: per distro D, the rig ROS2_<D>_RIG (default ../shared/ros2-<d>) installed to ROS2_<D>_PREFIX
# (default ~/.cache/ros2-<d>; built once per machine, cached by the rig's stamp, one build at a time under a
# lock); DVS_ROS_VENV (default ~/.cache/dvs_cluster/ros-venv, shared by the distros: both rigs are built for
# Debian's python3). Needs root the first time (the rigs install Debian packages).
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${DVS_ROS_VENV:-$HOME/.cache/dvs_cluster/ros-venv}
log() { printf '[%s %(%H:%M:%S)T] %s\n' "$(basename "$0" .sh)" -1 "$*" >&2; }

ros_prefix() {  # ros_prefix DISTRO: where the rig of DISTRO is installed
  local var=ROS2_${1^^}_PREFIX
  echo "${!var:-$HOME/.cache/ros2-$1}"
}

ros_rig() {  # ros_rig DISTRO: build (or reuse) the rig of DISTRO
  local d=$1 rig_var=ROS2_${1^^}_RIG
  local rig=${!rig_var:-$REPO/../shared/ros2-$d} prefix
  prefix=$(ros_prefix "$d")
  [[ -f $rig/build.sh ]] || { echo "no ROS 2 rig for $d at $rig" >&2; return 2; }
  if [[ ! -f $prefix/setup.bash ]] && ! dpkg -s python3-colcon-notification >/dev/null 2>&1; then
    local sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"   # the rigs' colcon call uses `--event-handlers status-`
    $sudo apt-get update -qq && $sudo apt-get install -y -q python3-colcon-notification >/dev/null
  fi
  log "rig $d: $rig/build.sh -> $prefix (cached after the first build)"
  mkdir -p "$(dirname "$prefix")"
  # One build per machine at a time: two CI jobs (or a job and a developer) must not fill one prefix at once.
  flock "$prefix.lock" bash "$rig/build.sh" "$prefix"
}

ros_venv() {  # the test venv: numpy<2 (the generated code and cv_bridge use Debian's numpy 1.x) + pip-only deps
  local stamp=$VENV/.dvs_cluster_deps_v1
  [[ -f $stamp ]] && return 0
  log "venv $VENV"
  rm -rf "$VENV"
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
  "$VENV/bin/python" -m pip install -q "numpy<2" "onnxruntime>=1.16" "eclipse-zenoh>=1.0" "rosbags>=0.10" \
    "pyyaml>=6" "pytest>=7" onnx 2>&1 | grep -v '^WARNING: Location' || true
  touch "$stamp"
}

ros_workspace() {  # ros_workspace DISTRO WS: source the rig, colcon-build a fresh copy of the repo in WS, activate
  local d=$1 ws=$2 prefix
  prefix=$(ros_prefix "$d")
  # Debian's python3 first on PATH (the rigs are built for it), not a pyenv/venv; nothing of another distro.
  export PATH=/usr/bin:/bin:/usr/sbin:/sbin
  unset PYTHONPATH VIRTUAL_ENV PYTHONHOME AMENT_PREFIX_PATH CMAKE_PREFIX_PATH COLCON_PREFIX_PATH ROS_DISTRO
  set +u; source "$prefix/setup.bash"; set -u
  export RMW_IMPLEMENTATION=rmw_cyclonedds_cpp
  export ROS_DISTRO=$d  # the minimal rigs have no ros_environment package to set it
  # A clean workspace with a copy of the tracked (and not ignored) files, built the way docs/ROS2.md says.
  log "$d: colcon build in $ws"
  rm -rf "$ws"
  mkdir -p "$ws/src/dvs_cluster"
  (cd "$REPO" && { git ls-files -z; git ls-files -z --others --exclude-standard; } | sort -zu \
    | xargs -0 -I{} sh -c 'test -e "{}" && printf "%s\0" "{}"' | tar --null -T - -cf -) | tar -xf - -C "$ws/src/dvs_cluster"
  (cd "$ws" && nice colcon build --base-paths src src/dvs_cluster/ros2 --parallel-workers 1 \
    --event-handlers console_cohesion- \
    --cmake-args -DPython3_EXECUTABLE=/usr/bin/python3 -DBUILD_TESTING=OFF)
  set +u; source "$ws/install/setup.bash"; set -u
  # Activated, so the nodes `ros2 launch` starts (#!/usr/bin/env python3) run in it too.
  export VIRTUAL_ENV=$VENV PATH=$VENV/bin:$PATH
  "$VENV/bin/python" -c 'import numpy, rclpy, cv_bridge, onnxruntime, zenoh, rosbags, dvs_cluster_interfaces.msg
assert numpy.__version__ < "2", numpy.__version__'
}
