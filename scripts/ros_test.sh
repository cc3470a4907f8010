#!/usr/bin/env bash
# The `ros` test group against real ROS 2 Humble and Jazzy. Per distro: build (or reuse) its rig, colcon-build
# this repository's two packages into a fresh workspace, run `pytest -m ros` there; then one line per distro.
#
#   scripts/ros_test.sh [pytest args]          e.g. scripts/ros_test.sh -k cdr
#   ROS_DISTROS=jazzy scripts/ros_test.sh      one distro
#
# Environment: ROS_DISTROS (default "humble jazzy"); DVS_ROS_WS (workspaces, default ~/.cache/dvs_cluster/ros_ws,
# one folder per distro); the rigs and the venv as in scripts/_ros_env.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_ros_env.sh"
DISTROS=${ROS_DISTROS:-humble jazzy}
WS_ROOT=${DVS_ROS_WS:-$HOME/.cache/dvs_cluster/ros_ws}

# The rigs first (the slow part, cached): a failed build stops everything before any test runs.
for d in $DISTROS; do ros_rig "$d"; done
ros_venv

run_distro() {  # in a subshell: nothing of one distro's environment reaches the next
  local d=$1; shift
  ros_workspace "$d" "$WS_ROOT/$d"
  # The tests, run from the workspace so the installed dvs_cluster (not the source tree) is imported.
  cd "$WS_ROOT/$d"
  export DVS_ROS_WS=$WS_ROOT/$d
  log "$d: pytest -m ros $*"
  "$VENV/bin/python" -m pytest -p no:cacheprovider -m ros -v --durations=0 \
    "$REPO/test/ros" "$REPO/test/test_ros_static.py" "$REPO/test/test_transport_contract.py" "$@"
}

status=0
summary=()
for d in $DISTROS; do
  t0=$SECONDS
  set +e  # not `if (...)`: errexit must stay on inside the subshell, so a failed build stops that distro
  (set -e; run_distro "$d" "$@")
  rc=$?
  set -e
  if [[ $rc -eq 0 ]]; then r=passed; else r="FAILED (exit $rc)"; status=1; fi
  summary+=("$d: ros group $r in $((SECONDS - t0)) s")
done
for line in "${summary[@]}"; do log "$line"; done
exit $status
