"""Image prompts: pictures in PMG's conditions (pure functions and the small projection module).

A picture enters a condition as *image tokens*: an image encoder's embedding of it (pmg-mini: its
frozen scorer's image tower; Stable Diffusion: IP-Adapter's CLIP vision model) projected into the
generator's cross-attention space (diffusers' ``ImageProjection``: a linear map to ``n`` tokens and
a LayerNorm). The target condition carries the target's own picture or exemplars retrieved for the
target keywords; the preference condition carries the ``k`` most representative history pictures.
PMG's weighting after the encoder applies to them as to the keyword windows (``w_t`` on the target's
tokens, ``w_p`` on the history's), times an image scale of their own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Hashable, Sequence

import torch

__all__ = ["HISTORY_PICTURES", "IMAGE_PROJ_FOLDER", "ImagePromptConfig", "representative", "load_image_projection",
           "save_image_projection", "image_tokens"]

HISTORY_PICTURES = 3  # history pictures in the preference condition (k)
IMAGE_PROJ_FOLDER = "image_proj"  # in a generator folder: the projection and which image encoder it reads


@dataclass(frozen=True)
class ImagePromptConfig:
    """A generator folder's ``image_proj/config.json``."""

    image_embed_dim: int = 256
    cross_attention_dim: int = 384
    num_tokens: int = 4  # image tokens per picture
    image_encoder: str = "scorer"  # the generator folder's subfolder whose image tower embeds pictures


def representative(items: Sequence[Hashable], k: int = HISTORY_PICTURES) -> list:
    """The ``k`` most representative of a history's items: the most used first, ties broken by the most
    recent use; each once. ``["a", "b", "a", "c"]`` -> ``["a", "c", "b"]``."""
    last = {x: i for i, x in enumerate(items)}
    counts: dict = {}
    for x in items:
        counts[x] = counts.get(x, 0) + 1
    return sorted(counts, key=lambda x: (-counts[x], -last[x]))[:k]


def load_image_projection(folder: str | Path):
    """(config, ``ImageProjection`` in float32) from a generator folder's ``image_proj/``, or None when it has none."""
    from diffusers.models.embeddings import ImageProjection
    from safetensors.torch import load_file

    sub = Path(folder) / IMAGE_PROJ_FOLDER
    if not (sub / "config.json").is_file():
        return None
    cfg = ImagePromptConfig(**json.loads((sub / "config.json").read_text()))
    proj = ImageProjection(cfg.image_embed_dim, cfg.cross_attention_dim, cfg.num_tokens)
    proj.load_state_dict({k: v.float() for k, v in load_file(sub / "model.safetensors").items()})
    return cfg, proj.eval().requires_grad_(False)


def save_image_projection(proj, cfg: ImagePromptConfig, folder: str | Path) -> None:
    """``proj``'s weights (fp16) and ``cfg`` into ``folder``/image_proj/."""
    import dataclasses

    from safetensors.torch import save_file

    sub = Path(folder) / IMAGE_PROJ_FOLDER
    sub.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().half().contiguous() for k, v in proj.state_dict().items()}, sub / "model.safetensors")
    (sub / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))


def image_tokens(proj, embeds: torch.Tensor | None) -> torch.Tensor | None:
    """(n_pictures, E) image embeddings -> (1, n_pictures * num_tokens, D) tokens, or None for no pictures."""
    if embeds is None or len(embeds) == 0:
        return None
    with torch.no_grad():
        tok = proj(embeds.float())
    return tok.reshape(1, -1, tok.shape[-1])
