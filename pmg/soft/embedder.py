"""Soft preference embeddings at inference: a trained adapter on its LLM, fed the same behaviour
text the keyword stage produced."""

from __future__ import annotations

from pathlib import Path

import torch

from pmg.soft.model import SOFT_CONFIG_NAME, SoftConfig, SoftPreferenceModel, behaviour_prompt

__all__ = ["SoftEmbedder", "load_soft"]


class SoftEmbedder:
    def __init__(self, model: SoftPreferenceModel, name: str = "soft", principle: str = "", cache_size: int = 1024):
        self.model, self.name, self.principle = model.eval(), name, principle
        self._cache: dict[str, torch.Tensor] = {}  # prompt -> E_m: a returning user costs no LLM pass
        self.cache_size = cache_size

    @torch.no_grad()
    def embed(self, keywords) -> torch.Tensor:
        """A ``KeywordResult`` (its behaviour text and conversations) -> E_m (1, L, D)."""
        prompt = behaviour_prompt(keywords.behaviour_text, keywords.conversations, self.principle)
        if prompt not in self._cache:
            if len(self._cache) >= self.cache_size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[prompt] = self.model([prompt])
        return self._cache[prompt].clone()


def load_soft(adapter: str | Path, *, llm: str | None = None, generator: str | None = None,
              embed_dim: int | None = None, generator_revision: str | None = None, cache_dir: str | Path | None = None) -> SoftEmbedder:
    """Load an adapter folder onto its LLM (``llm`` overrides the name it records)."""
    import json

    from pmg.errors import ModelLoadError
    from pmg.llm.transformers_llm import load_causal_lm
    from pmg.registry import resolve_llm

    adapter = Path(adapter)
    if not (adapter / SOFT_CONFIG_NAME).is_file():
        raise ModelLoadError(f"{adapter}: not a soft-embedding adapter (no {SOFT_CONFIG_NAME})")
    cfg = SoftConfig(**json.loads((adapter / SOFT_CONFIG_NAME).read_text()))
    target = resolve_llm(llm or cfg.llm)
    if isinstance(target, str):
        raise ModelLoadError("soft embeddings need the LLM's weights (a folder or .gguf file), not an HTTP endpoint")
    model, tok = load_causal_lm(target, cache_dir=cache_dir)
    soft = SoftPreferenceModel.from_pretrained(adapter, model, tok, generator=generator, embed_dim=embed_dim,
                                               generator_revision=generator_revision)
    return SoftEmbedder(soft, name=f"soft:{adapter.name}")
