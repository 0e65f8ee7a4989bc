#!/usr/bin/env bash
# One command from a fresh machine to the demo:  bash scripts/demo.sh [OUTPUT_FOLDER]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m napari_wkw.demo "$@"
