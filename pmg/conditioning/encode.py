"""Encode keyword prompts with the generator's own tokenizer and text encoder.

Stable Diffusion's CLIP encoder sees at most 77 tokens. Instead of truncating silently, a prompt is
split into chunks of ``max_length - 2`` tokens, each chunk is wrapped in the encoder's begin/end
tokens, padded, encoded on its own, and the chunk states are concatenated along the sequence axis
(the approach of compel and the A1111 web UI). Every token of the prompt reaches the generator.
"""

from __future__ import annotations

import math
import threading

import torch

from pmg.errors import PMGError

__all__ = ["PromptTooLongError", "count_chunks", "encode_prompts", "model_max_length"]


class PromptTooLongError(PMGError, ValueError):
    """A prompt needs more chunks than ``max_chunks`` allows."""


def model_max_length(tokenizer, text_encoder) -> int:
    """The encoder's context length (77 for CLIP, 32 for pmg-mini's MiniLM)."""
    n = getattr(tokenizer, "model_max_length", None) or 10**9
    pos = getattr(text_encoder.config, "max_position_embeddings", None) or n
    return int(min(n, pos))


def _special_ids(tokenizer) -> tuple[int | None, int | None, int]:
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.cls_token_id
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    return bos, eos, pad


# Fast (Rust) tokenizers are not safe to call from several threads at once ("Already borrowed"
# when their truncation/padding state changes): one lock for every tokenizer call in this module.
_TOKENIZER_LOCK = threading.Lock()


def _token_ids(tokenizer, text: str) -> list[int]:
    # verbose=False: the "longer than the maximum sequence length" warning does not apply to chunking
    with _TOKENIZER_LOCK:
        return tokenizer(text, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]


def count_chunks(tokenizer, text: str, max_length: int) -> int:
    """How many encoder windows ``text`` needs (at least one, even for the empty prompt)."""
    return max(1, math.ceil(len(_token_ids(tokenizer, text)) / (max_length - 2)))


@torch.no_grad()
def encode_prompts(
    tokenizer,
    text_encoder,
    prompts: list[str],
    *,
    max_length: int | None = None,
    num_chunks: int | None = None,
    max_chunks: int = 4,
) -> torch.Tensor:
    """Encode prompts into token states, chunk by chunk.

    Args:
        prompts: B strings.
        max_length: window of the encoder (default: ``model_max_length``).
        num_chunks: pad every prompt to this many chunks (with empty-prompt chunks) so that
            prompts of different lengths stack; default: the most any prompt needs.
        max_chunks: refuse prompts that need more windows than this.

    Returns:
        (B, num_chunks * max_length, D) last hidden states.
    """
    max_length = max_length or model_max_length(tokenizer, text_encoder)
    bos, eos, pad = _special_ids(tokenizer)
    body = max_length - (bos is not None) - (eos is not None)
    per_prompt = [_token_ids(tokenizer, p) for p in prompts]
    need = [max(1, math.ceil(len(ids) / body)) for ids in per_prompt]
    k = num_chunks or max(need)
    for p, n in zip(prompts, need):
        if n > min(k, max_chunks):
            raise PromptTooLongError(
                f"prompt needs {n} windows of {max_length} tokens but at most {min(k, max_chunks)} "
                f"are allowed: {p[:80]!r}..."
            )
    ids, mask = [], []
    for toks in per_prompt:
        for c in range(k):
            piece = toks[c * body : (c + 1) * body]
            row = ([bos] if bos is not None else []) + piece + ([eos] if eos is not None else [])
            mask.append([1] * len(row) + [0] * (max_length - len(row)))
            ids.append(row + [pad] * (max_length - len(row)))
    device = text_encoder.device
    input_ids = torch.tensor(ids, dtype=torch.long, device=device)
    kwargs = {}
    # diffusers' convention: only encoders that were trained with a mask get one (CLIP was not).
    if getattr(text_encoder.config, "use_attention_mask", False):
        kwargs["attention_mask"] = torch.tensor(mask, dtype=torch.long, device=device)
    states = text_encoder(input_ids, **kwargs)[0]  # (B*k, L, D)
    return states.reshape(len(prompts), k * max_length, states.shape[-1])
