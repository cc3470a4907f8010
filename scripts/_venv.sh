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
SPEC="."; [[ -n ${1:-} ]] && SPEC=".[$1]"   # pip refuses an empty extras list ".[]"
if ! "$VENV/bin/python" -m pip install -q -e "$SPEC" 2> >(grep -v '^WARNING: Location' >&2); then
  echo "pip install -e '$SPEC' failed (see above)" >&2
  exit 1
fi
# Fail loudly if the install did not work (importing from the source tree would hide it: check the script).
[[ -x $VENV/bin/dvs-cluster ]] || { echo "install incomplete: $VENV/bin/dvs-cluster missing" >&2; exit 1; }
