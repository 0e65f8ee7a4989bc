#!/usr/bin/env bash
# Set up a fresh machine (Debian/Ubuntu with Python 3.11): the X/Qt system libraries
# napari needs plus Xvfb for a virtual display, Slurm and munge for the single-node
# Slurm the cluster tests start (tests/jobs/slurm_fixture.py; their daemons are not
# started here), then a virtual environment in .venv with napari-wkw installed
# editable with its test extras. (scripts/test.sh adds .venv-webknossos, the webknossos
# library the interop tests use as an independent judge.)
set -euo pipefail
cd "$(dirname "$0")/.."

SYSTEM_PACKAGES=(
  xvfb xauth x11-utils libgl1 libglx-mesa0 libegl1 libopengl0 libdbus-1-3 libfontconfig1
  libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0
  libxcb-render-util0 libxcb-shape0 libxcb-xfixes0 libxcb-xinerama0 libxcb-xinput0 libxrender1 libxi6
  slurm-wlm munge
)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if command -v apt-get >/dev/null 2>&1; then
  missing=()
  for package in "${SYSTEM_PACKAGES[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing system packages: ${missing[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
else
  echo "setup: no apt-get here; make sure Xvfb, the Qt xcb libraries, Slurm and munge are installed" >&2
fi

PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $PYTHON" >&2
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    # Debian's own Python keeps venv/ensurepip in a separate package
    rm -rf .venv
    version=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    if command -v apt-get >/dev/null 2>&1; then
      $SUDO apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "python${version}-venv" >/dev/null
    fi
    "$PYTHON" -m venv .venv
  fi
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[testing]"
echo "setup: done (.venv)" >&2
