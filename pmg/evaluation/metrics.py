"""Image metrics of the paper's evaluation (section 4.1.2): pure functions over image batches.

* LPIPS (``pmg.evaluation.lpips``), AlexNet or VGG: lower = more similar.
* SSIM with torchmetrics: Gaussian window 11x11, sigma 1.5, data range 1.0 (images in [0, 1]);
  higher = more similar.

The paper leaves out the CLIP metric used for selection, and so do these tables.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

__all__ = ["to_tensor", "ssim", "lpips", "SSIM_SETTINGS"]

SSIM_SETTINGS = {"gaussian_kernel": True, "sigma": 1.5, "kernel_size": 11, "data_range": 1.0}


def to_tensor(images: list[Image.Image], size: int | None = None) -> torch.Tensor:
    """PIL images -> (B, 3, S, S) in [0, 1], resized to ``size`` (default: the first image's)."""
    size = size or images[0].width
    arr = [np.asarray(im.convert("RGB").resize((size, size), Image.LANCZOS), dtype=np.float32) / 255 for im in images]
    return torch.from_numpy(np.stack(arr)).permute(0, 3, 1, 2)


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] pairs -> (B,) SSIM."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    if x.shape != y.shape:
        raise ValueError(f"SSIM needs equal shapes, got {tuple(x.shape)} and {tuple(y.shape)}")
    return structural_similarity_index_measure(x, y, reduction="none", **SSIM_SETTINGS)


def lpips(metric, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] pairs -> (B,) LPIPS with a ``pmg.evaluation.lpips.LPIPS`` module."""
    return metric(x * 2 - 1, y * 2 - 1)
