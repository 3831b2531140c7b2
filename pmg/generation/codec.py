"""Image codecs: map images in [-1, 1] to the space the U-Net denoises, and back.

* ``PixelShuffleCodec`` (pmg-mini): a lossless space-to-depth rearrangement, so a small U-Net works
  on 16x16x12 tensors instead of 32x32x3 images. No weights.
* ``VAECodec`` (Stable Diffusion): wraps diffusers' ``AutoencoderKL``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

__all__ = ["PixelShuffleCodec", "VAECodec"]


class PixelShuffleCodec:
    """Space-to-depth by ``factor``: (B, 3, H, W) -> (B, 3 f^2, H/f, W/f)."""

    config_name = "codec_config.json"

    def __init__(self, factor: int = 2, image_size: int = 32):
        if factor < 1 or image_size % factor:
            raise ValueError(f"image_size {image_size} must be a multiple of factor {factor}")
        self.factor, self.image_size = factor, image_size

    @property
    def latent_channels(self) -> int:
        return 3 * self.factor**2

    @property
    def latent_size(self) -> int:
        return self.image_size // self.factor

    def encode(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return F.pixel_unshuffle(images, self.factor)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(latents, self.factor).clamp(-1, 1)

    def save_pretrained(self, folder: str | Path) -> None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        cfg = {"_class_name": "PixelShuffleCodec", "factor": self.factor, "image_size": self.image_size}
        (Path(folder) / self.config_name).write_text(json.dumps(cfg, indent=2))

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> "PixelShuffleCodec":
        cfg = json.loads((Path(folder) / cls.config_name).read_text())
        return cls(factor=cfg["factor"], image_size=cfg["image_size"])


class VAECodec:
    """diffusers ``AutoencoderKL`` with its scaling factor applied."""

    def __init__(self, vae, image_size: int | None = None):
        self.vae = vae
        self.scale = 2 ** (len(vae.config.block_out_channels) - 1)
        self.image_size = image_size or vae.config.sample_size

    @property
    def latent_channels(self) -> int:
        return self.vae.config.latent_channels

    @property
    def latent_size(self) -> int:
        return self.image_size // self.scale

    def encode(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        dist = self.vae.encode(images.to(self.vae.dtype)).latent_dist
        return dist.sample(generator) * self.vae.config.scaling_factor

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        out = self.vae.decode(latents.to(self.vae.dtype) / self.vae.config.scaling_factor).sample
        return out.float().clamp(-1, 1)
