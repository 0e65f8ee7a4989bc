#!/usr/bin/env bash
# One command from a fresh machine to a passing test suite:  bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The webknossos library judges interop in tests/interop (our annotations load there, its
# annotations load here). It is never a dependency of ours: it gets a venv of its own.
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if [ ! -x .venv-webknossos/bin/python ]; then
  echo "test: creating .venv-webknossos (the webknossos library, for the interop tests)" >&2
  "$PYTHON" -m venv .venv-webknossos
fi
.venv-webknossos/bin/python -m pip install -q --upgrade pip
.venv-webknossos/bin/python -m pip install -q "webknossos==4.3.3"
export QT_API=pyqt6
.venv/bin/npe2 validate napari-wkw --imports
# pytest-xvfb starts a virtual display for the viewer tests; pytest-timeout (see
# pyproject.toml) makes a stuck dialog fail its test instead of hanging the run.
exec .venv/bin/python -m pytest "$@"
