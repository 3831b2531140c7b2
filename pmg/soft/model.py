"""The bias-correction LLM (paper section 3.3, Figure 3).

[E_prompt, E_m] = LLM_f(t, prompt, m): the behaviour prompt, followed by L learnable multimodal
tokens m, runs through the LLM with S P-Tuning v2 prefixes t (peft ``PrefixTuningConfig``); the last
hidden states of the L tokens, mapped by a linear layer into the generator's text-embedding space,
are the soft preference embeddings E_m (B, L, D).

Only the prefixes, the L token embeddings and the mapper train; the LLM stays frozen.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from pmg.errors import ModelLoadError

__all__ = ["SoftConfig", "SoftPreferenceModel", "behaviour_prompt", "SOFT_CONFIG_NAME"]

SOFT_CONFIG_NAME = "soft_config.json"
SOFT_WEIGHTS_NAME = "soft_tokens_mapper.safetensors"
PREFIX_FOLDER = "prefix"


@dataclass
class SoftConfig:
    """
    Args:
        num_virtual_tokens: S, P-Tuning v2 prefix length per layer (paper: 4).
        num_mm_tokens: L, learnable multimodal tokens appended to the prompt (paper: 4).
        use_prefix: P-Tuning v2 on (paper) or off (Table 3 ablation).
        embed_dim: the generator's text-embedding width (cross_attention_dim).
        llm, generator: names of the models the adapter was trained with (checked on load).
        generator_revision: the generator's weights revision (pmg-mini: its training step); a different
            revision on load gives a warning (the adapter still runs, but was fitted to other weights).
        max_prompt_tokens: the behaviour prompt is refused beyond this (no silent truncation).
    """

    num_virtual_tokens: int = 4
    num_mm_tokens: int = 4
    use_prefix: bool = True
    embed_dim: int = 384
    llm: str = "smollm2"
    generator: str = "pmg-mini"
    generator_revision: str | None = None
    max_prompt_tokens: int = 1024
    init_scale: float = 0.01

    def __post_init__(self):
        if self.num_mm_tokens < 1:
            raise ValueError(f"num_mm_tokens (L) must be >= 1, got {self.num_mm_tokens}")
        if self.use_prefix and self.num_virtual_tokens < 1:
            raise ValueError(f"num_virtual_tokens (S) must be >= 1 with P-Tuning, got {self.num_virtual_tokens}")
        if self.embed_dim < 1:
            raise ValueError(f"embed_dim must be >= 1, got {self.embed_dim}")


def behaviour_prompt(behaviour_text: list[str], conversations: list[str], principle: str = "") -> str:
    """prompt = (p, x, y): principle, described history, conversations. No attributes or examples:
    the prefixes learn those (paper 3.3.1)."""
    hist = "\n".join(f"{i + 1}. {h}" for i, h in enumerate(behaviour_text)) or "(none)"
    conv = " / ".join(f'"{c}"' for c in conversations) or "none"
    head = f"{principle}\n" if principle else ""
    return f"{head}The user's historical conversations are: {conv}. The items the user interacted with are:\n{hist}\n"


class SoftPreferenceModel(nn.Module):
    def __init__(self, llm: nn.Module, tokenizer, config: SoftConfig):
        super().__init__()
        self.config, self.tokenizer = config, tokenizer
        llm.requires_grad_(False).eval()
        if config.use_prefix:
            from peft import PrefixTuningConfig, TaskType, get_peft_model

            llm = get_peft_model(llm, PrefixTuningConfig(task_type=TaskType.CAUSAL_LM,
                                                         num_virtual_tokens=config.num_virtual_tokens))
        self.llm = llm
        hidden = self._embeddings().embedding_dim
        table = self._embeddings().weight.detach()
        # new rows of the embedding table: start near the vocabulary's mean so the LLM sees familiar inputs
        init = table.mean(0, keepdim=True) + table.std(0, keepdim=True) * torch.randn(config.num_mm_tokens, hidden) * 0.1
        self.mm_tokens = nn.Parameter(init.float())
        self.mapper = nn.Linear(hidden, config.embed_dim)
        # small mapper: at initialisation E_m is close to zero and the generator sees the keywords alone
        nn.init.normal_(self.mapper.weight, std=config.init_scale / hidden**0.5)
        nn.init.zeros_(self.mapper.bias)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token

    def _embeddings(self) -> nn.Embedding:
        return self.llm.get_input_embeddings()

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def forward(self, prompts: list[str]) -> torch.Tensor:
        """B behaviour prompts -> E_m (B, L, embed_dim)."""
        ids = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        for p, t in zip(prompts, ids):
            if len(t) > self.config.max_prompt_tokens:
                raise ValueError(f"behaviour prompt has {len(t)} tokens, more than max_prompt_tokens "
                                 f"{self.config.max_prompt_tokens}: {p[:60]!r}...")
        n = max(len(t) for t in ids)
        pad = self.tokenizer.pad_token_id
        device = self.mm_tokens.device
        # left padding: the L tokens come right after each prompt
        input_ids = torch.tensor([[pad] * (n - len(t)) + t for t in ids], device=device)
        mask = torch.tensor([[0] * (n - len(t)) + [1] * len(t) for t in ids], device=device)
        b, L = len(prompts), self.config.num_mm_tokens
        emb = self._embeddings()(input_ids)
        x = torch.cat([emb, self.mm_tokens.to(emb.dtype).expand(b, -1, -1)], dim=1)  # (B, n + L, H)
        mask = torch.cat([mask, torch.ones(b, L, dtype=mask.dtype, device=device)], dim=1)
        # positions count real tokens only, so E_m does not depend on how much padding a batch needs
        offset = self.config.num_virtual_tokens if self.config.use_prefix else 0
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0) + offset
        out = self.llm(inputs_embeds=x, attention_mask=mask, position_ids=position_ids, output_hidden_states=True)
        h = out.hidden_states[-1][:, -L:]  # (B, L, H), after the final norm
        return self.mapper(h.float())

    # ----------------------------------------------------------------------------------- saving
    def save_pretrained(self, folder: str | Path) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / SOFT_CONFIG_NAME).write_text(json.dumps(dataclasses.asdict(self.config), indent=2))
        save_file({"mm_tokens": self.mm_tokens.detach().contiguous(),
                   "mapper.weight": self.mapper.weight.detach().contiguous(),
                   "mapper.bias": self.mapper.bias.detach().contiguous()}, folder / SOFT_WEIGHTS_NAME)
        if self.config.use_prefix:
            self.llm.save_pretrained(folder / PREFIX_FOLDER)  # peft: only the prefix encoder

    @classmethod
    def from_pretrained(cls, folder: str | Path, llm: nn.Module, tokenizer, *, generator: str | None = None,
                        embed_dim: int | None = None, generator_revision: str | None = None) -> "SoftPreferenceModel":
        """Load an adapter onto ``llm``; refuses one trained for another generator."""
        from safetensors.torch import load_file

        folder = Path(folder)
        if not (folder / SOFT_CONFIG_NAME).is_file():
            raise ModelLoadError(f"{folder}: not a soft-embedding adapter (no {SOFT_CONFIG_NAME})")
        config = SoftConfig(**json.loads((folder / SOFT_CONFIG_NAME).read_text()))
        if generator is not None and generator != config.generator:
            raise ModelLoadError(f"adapter {folder} was trained for generator {config.generator!r}, not {generator!r}")
        if generator_revision and config.generator_revision and generator_revision != config.generator_revision:
            import warnings

            warnings.warn(f"adapter {folder} was trained against {config.generator} {config.generator_revision}, "
                          f"the generator loaded is {generator_revision}: retrain it (pmg train-soft) for best results",
                          stacklevel=2)
        if embed_dim is not None and embed_dim != config.embed_dim:
            raise ModelLoadError(f"adapter {folder} maps to {config.embed_dim}-d embeddings; the generator uses {embed_dim}")
        model = cls(llm, tokenizer, config)
        state = load_file(folder / SOFT_WEIGHTS_NAME)
        if state["mm_tokens"].shape[1] != model.mm_tokens.shape[1]:
            raise ModelLoadError(f"adapter {folder} was trained on an LLM of width {state['mm_tokens'].shape[1]}, "
                                 f"not {model.mm_tokens.shape[1]} (it names {config.llm!r})")
        with torch.no_grad():
            model.mm_tokens.copy_(state["mm_tokens"])
            model.mapper.weight.copy_(state["mapper.weight"])
            model.mapper.bias.copy_(state["mapper.bias"])
        if config.use_prefix:
            from peft import set_peft_model_state_dict
            from safetensors.torch import load_file as lf

            set_peft_model_state_dict(model.llm, lf(folder / PREFIX_FOLDER / "adapter_model.safetensors"))
        return model.eval()
