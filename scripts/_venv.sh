# Sourced by demo.sh and test.sh: make (or reuse) ./.venv and install the package with the given extras.
# Works on a fresh Debian/Ubuntu with Python >= 3.10: installs python3-venv with apt when it is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${DVS_VENV:-.venv}
PY=${PYTHON:-python3}
"$PY" -c 'import sys; assert sys.version_info >= (3, 10), "Python >= 3.10 is needed"'
if [[ ! -x $VENV/bin/python ]]; then
  if ! "$PY" -m venv "$VENV" 2>/dev/null; then
    echo "python3 -m venv failed; installing python3-venv with apt-get" >&2
    rm -rf "$VENV"
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -q python3-venv >/dev/null
    "$PY" -m venv "$VENV"
  fi
fi
"$VENV/bin/python" -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
"$VENV/bin/python" -m pip install -q -e ".[${1:-}]" 2>&1 | grep -v '^WARNING: Location' || true
"$VENV/bin/python" -c 'import dvs_cluster' # fail loudly if the install did not work
