#!/usr/bin/env bash
# The project's test command (README): set up, then run every test, the real-model ones included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PMG_THREADS=${PMG_THREADS:-2}
exec .venv/bin/python -m pytest -q "$@"
