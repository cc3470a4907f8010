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
# Install only when the dependencies changed: a stamp under $VENV holds a hash of the packaging files
# (and of this checkout's path, which the editable install points at) and the extras installed with it.
# A re-run of demo.sh or test.sh then starts at once instead of re-installing (and printing setuptools'
# editable-install warning) every time.
STAMP=$VENV/.dvs_cluster-install
WANT=${1:-}
HASH=$({ cat setup.py setup.cfg pyproject.toml 2>/dev/null; pwd; } | sha256sum | cut -d' ' -f1)
HAVE_HASH="" HAVE_EXTRAS=""
[[ -f $STAMP ]] && read -r HAVE_HASH HAVE_EXTRAS < "$STAMP" || true
up_to_date() {
  [[ $HAVE_HASH == "$HASH" && -x $VENV/bin/dvs-cluster ]] || return 1
  local e
  for e in ${WANT//,/ }; do [[ ,$HAVE_EXTRAS, == *,$e,* ]] || return 1; done
}
if up_to_date; then
  echo "$VENV: dependencies unchanged since the last install (extras: ${HAVE_EXTRAS:-none}); not reinstalling" >&2
else
  "$VENV/bin/python" -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
  SPEC="."; [[ -n $WANT ]] && SPEC=".[$WANT]"   # pip refuses an empty extras list ".[]"
  if ! "$VENV/bin/python" -m pip install -q -e "$SPEC" 2> >(grep -v '^WARNING: Location' >&2); then
    echo "pip install -e '$SPEC' failed (see above)" >&2
    rm -f "$STAMP"
    exit 1
  fi
  # Fail loudly if the install did not work (importing from the source tree would hide it: check the script).
  [[ -x $VENV/bin/dvs-cluster ]] || { echo "install incomplete: $VENV/bin/dvs-cluster missing" >&2; exit 1; }
  EXTRAS=$WANT
  [[ $HAVE_HASH == "$HASH" && -n $HAVE_EXTRAS ]] && EXTRAS=$(echo "$HAVE_EXTRAS,$WANT" | tr ',' '\n' | sed '/^$/d' | sort -u | paste -sd, -)
  echo "$HASH $EXTRAS" > "$STAMP"
fi
