"""A llama-architecture GGUF file as a transformers model, in one pass over the file.

transformers' own GGUF path (``from_pretrained(gguf_file=...)``) reads llama files with its legacy
reader three times (config, tokenizer, weights) and maps tensor names module by module: 24 s for
SmolLM2-135M on two shared cores. This module reads the header once with transformers' fast reader
(``transformers.integrations.gguf``), dequantises with its torch kernels, and builds the same config,
tokenizer and weights (``tests/test_gguf_torch.py`` checks them against transformers' path): about 2 s.
Other architectures go through transformers' path (``pmg.llm.transformers_llm.load_causal_lm``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from pmg.errors import ModelLoadError

__all__ = ["FAST_ARCHITECTURES", "gguf_architecture", "llama_config", "llama_state_dict", "load_gguf_llama", "gguf_tokenizer"]

FAST_ARCHITECTURES = ("llama",)

# GGUF tensor name (after "blk.N.") -> transformers LlamaForCausalLM name (after "model.layers.N.")
_LAYER_NAMES = {
    "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
}
_TOP_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}


def _f32(x: float) -> float:
    """A GGUF float32 as transformers reads it (9.999999747378752e-06, not 1e-05)."""
    return float(torch.tensor(x, dtype=torch.float32))


def _metadata(path: Path) -> tuple[dict, tuple[str, ...]]:
    from transformers.integrations.gguf import read_gguf_metadata

    try:
        return read_gguf_metadata(str(path))
    except (OSError, ValueError, KeyError) as e:
        raise ModelLoadError(f"could not read the GGUF file {path}: {e}") from None


def gguf_architecture(path: str | Path) -> str:
    """The file's ``general.architecture`` ('llama' for SmolLM2)."""
    return _metadata(Path(path))[0]["general.architecture"]


def llama_config(metadata: dict, tensor_names: tuple[str, ...]):
    """The ``LlamaConfig`` transformers builds for this metadata (same values, float32-rounded floats)."""
    from transformers import LlamaConfig

    a = metadata["general.architecture"]
    if a not in FAST_ARCHITECTURES:
        raise ModelLoadError(f"GGUF architecture {a!r}: the one-pass loader reads {', '.join(FAST_ARCHITECTURES)} only")
    heads = metadata[f"{a}.attention.head_count"]
    hidden = metadata[f"{a}.embedding_length"]
    vocab = metadata.get(f"{a}.vocab_size", metadata.get("tokenizer.ggml.tokens"))
    token = {k: metadata[f"tokenizer.ggml.{k}_token_id"] for k in ("bos", "eos", "unknown", "padding")
             if f"tokenizer.ggml.{k}_token_id" in metadata}
    return LlamaConfig(
        vocab_size=int(vocab), hidden_size=hidden, intermediate_size=metadata[f"{a}.feed_forward_length"],
        num_hidden_layers=metadata[f"{a}.block_count"], num_attention_heads=heads,
        num_key_value_heads=metadata.get(f"{a}.attention.head_count_kv", heads),
        head_dim=metadata.get(f"{a}.rope.dimension_count", hidden // heads),
        max_position_embeddings=metadata[f"{a}.context_length"],
        rms_norm_eps=_f32(metadata[f"{a}.attention.layer_norm_rms_epsilon"]),
        rope_parameters={"rope_theta": _f32(metadata.get(f"{a}.rope.freq_base", 10000.0)), "rope_type": "default"},
        tie_word_embeddings="output.weight" not in tensor_names,
        bos_token_id=token.get("bos"), eos_token_id=token.get("eos"), pad_token_id=token.get("padding"),
        unk_token_id=token.get("unknown"),
    )


def _hf_name(gguf_name: str) -> str:
    stem, _, suffix = gguf_name.rpartition(".")
    if stem.startswith("blk."):
        _, layer, part = stem.split(".", 2)
        if part not in _LAYER_NAMES:
            raise ModelLoadError(f"GGUF tensor {gguf_name!r} has no llama counterpart")
        return f"model.layers.{layer}.{_LAYER_NAMES[part]}.{suffix}"
    if stem not in _TOP_NAMES:
        raise ModelLoadError(f"GGUF tensor {gguf_name!r} has no llama counterpart")
    return f"{_TOP_NAMES[stem]}.{suffix}"


def _unpermute(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """Undo llama.cpp's rotary interleaving of q/k rows (convert_hf_to_gguf.py's ``permute``)."""
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(2, 1).reshape(w.shape)


def llama_state_dict(path: str | Path, config, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Every tensor of the file, dequantised to ``dtype`` and named as transformers' LlamaForCausalLM."""
    from transformers.integrations.gguf import GgufHeader, load_gguf_state_dict
    from transformers.integrations.gguf.dequant import GGML_BLOCK, dequantize

    header = GgufHeader.from_file(str(path))
    shapes = {info.name: info.shape for info in header.tensors}
    out = {}
    for name, lazy in load_gguf_state_dict(header).items():
        raw = lazy[()]
        w = dequantize(raw.reshape(-1), lazy.ggml_type, torch.float32) if lazy.ggml_type in GGML_BLOCK else raw.float()
        w = w.reshape(shapes[name])
        if ".attn_q." in name:
            w = _unpermute(w, config.num_attention_heads)
        elif ".attn_k." in name:
            w = _unpermute(w, config.num_key_value_heads)
        out[_hf_name(name)] = w.to(dtype).contiguous()
    return out


def gguf_tokenizer(path: str | Path):
    """The fast tokenizer transformers builds from the file's vocabulary, merges and chat template."""
    from transformers import PreTrainedTokenizerFast
    from transformers.integrations.gguf import convert_gguf_tokenizer, get_gguf_tokenizer

    architecture, tokenizer_dict, tokenizer_config = get_gguf_tokenizer(str(path))
    backend, extra = convert_gguf_tokenizer(architecture, tokenizer_dict)
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, **tokenizer_config, **extra)
    return tok


def load_gguf_llama(path: str | Path, dtype: torch.dtype = torch.float32):
    """(LlamaForCausalLM in eval mode, tokenizer) from a llama-architecture GGUF file."""
    from transformers import LlamaForCausalLM

    path = Path(path)
    metadata, names = _metadata(path)
    config = llama_config(metadata, names)
    config.dtype = dtype
    state = llama_state_dict(path, config, dtype)
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    missing = [m for m in missing if not (config.tie_word_embeddings and m == "lm_head.weight")]
    if missing or unexpected:
        raise ModelLoadError(f"{path}: GGUF tensors do not fit LlamaForCausalLM (missing {missing[:3]}, unexpected {unexpected[:3]})")
    if config.tie_word_embeddings:
        model.tie_weights()
    model.model.rotary_emb = type(model.model.rotary_emb)(config=config)  # its buffers were made on meta
    return model.eval(), gguf_tokenizer(path)
