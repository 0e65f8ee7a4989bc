#!/usr/bin/env bash
# One command from a fresh machine to a passing test suite:  bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export QT_API=pyqt6
.venv/bin/npe2 validate napari-wkw --imports
# pytest-xvfb starts a virtual display for the viewer tests; pytest-timeout (see
# pyproject.toml) makes a stuck dialog fail its test instead of hanging the run.
exec .venv/bin/python -m pytest "$@"
