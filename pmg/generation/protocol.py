"""What the rest of PMG may rely on in a generator (``PMG``, soft-embedding training, evaluation).

``PMGPipeline`` implements it for pmg-mini and Stable Diffusion 1.x; another generator (another
diffusers pipeline, a remote one) joins by providing these members. Generation (``PMG``) uses the
defaults, ``prepare_grid`` and ``denoise_grids``; soft-embedding training (``pmg.soft.train``) also
reaches into the text side (``tokenizer``, ``text_encoder``, ``window``) and the denoiser (``unet``,
``scheduler``, ``codec``, ``device``, ``dtype``) to compute the denoising loss.
"""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

import torch

__all__ = ["Generator"]


@runtime_checkable
class Generator(Protocol):
    name: str  # identifies the generator in manifests and soft-embedding adapters
    revision: str | None  # which weights ("step-13000"): adapters record what they were fitted to
    default_steps: int  # denoising steps when a call gives none
    default_alpha: float  # the selection's a (z = a log d_p + (1 - a) log d_t) when a config gives none
    default_grid: tuple  # the (w_p, w_t) weight grid when a config gives none (the paper's 0:4 ... 4:0 by default)
    default_noises: int  # initial noises per weighting when a config gives none (1: the paper's one image per weighting)
    unet: torch.nn.Module  # the denoiser, for the denoising loss of soft-embedding training
    scheduler: object  # a diffusers scheduler (its config decides the loss's parametrisation)
    codec: object  # images <-> the space the U-Net denoises (``encode``, ``decode``, ``image_size``, ``latent_size``,
    #                ``latent_channels``)
    tokenizer: object  # the text side soft training encodes keyword prompts with (frozen)
    text_encoder: torch.nn.Module

    @property
    def window(self) -> int:
        """Tokens per text-encoder window (longer keyword lists take several windows)."""
        ...

    @property
    def device(self) -> torch.device: ...

    @property
    def dtype(self) -> torch.dtype: ...

    @property
    def embed_dim(self) -> int:
        """Width of the text states the U-Net cross-attends to."""
        ...

    def encode_keywords(self, keywords: list[str] | str | None) -> torch.Tensor | None:
        """Keywords -> (1, T, D) states with the generator's own text encoder, or None."""
        ...

    def prepare_grid(self, target_keywords=None, preference_keywords=None, *, weights=..., soft_embeds=None,
                     target_embeds=None, preference_embeds=None, negative_prompt: str = "", generator=None, latents=None,
                     weighting: str = "embedding", noises: int = 1):
        """One user's weighted conditions and initial latents (``noises``: that many per weighting;
        ``weighting``: 'embedding', the paper's, or 'guidance', see ``pmg.conditioning.weighting``)."""
        ...

    def denoise_grids(self, grids: list, *, num_inference_steps: int | None = None, guidance_scale: float = 4.0,
                      output_type: str = "pil", callback: Callable[[int, int], None] | None = None) -> list:
        """Several users' grids in one batched pass; one output (``images``, ``weights``) per grid."""
        ...

    def __call__(self, target_keywords=None, preference_keywords=None, **kwargs):
        """One user's grid: ``denoise_grids([prepare_grid(...)])[0]``."""
        ...
