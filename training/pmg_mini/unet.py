"""pmg-mini's U-Net: built fresh or from a trained one (widened to a finer space-to-depth layout, or
placed inside a deeper U-Net), its EMA, and its export in diffusers' layout."""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path

import torch

__all__ = ["build_unet", "subpixel_map", "widen_space_to_depth", "deepen_map", "deepen_unet", "ema_update", "export"]


def build_unet(config_path: str, init_from: str | None = None, factor: int = 2, deepen: bool = False):
    """A fresh U-Net from ``config_path``, or ``init_from``'s: widened to ``factor`` (``widen_space_to_depth``)
    or, with ``deepen``, placed inside the config's deeper U-Net (``deepen_unet``)."""
    from diffusers import UNet2DConditionModel

    if not init_from or deepen:
        cfg = json.loads(Path(config_path).read_text())
        cfg["in_channels"] = cfg["out_channels"] = 3 * factor**2
        new = UNet2DConditionModel.from_config(cfg).float()
        if not init_from:
            return new
    unet = UNet2DConditionModel.from_pretrained(init_from, subfolder="unet", torch_dtype=torch.float32).float()
    if deepen:
        copied, fresh = deepen_unet(unet, new)
        print(f"deepened {init_from}: {copied / 1e6:.1f}M parameters copied, {fresh / 1e6:.1f}M new")
        return new
    if unet.config.in_channels != 3 * factor**2:
        unet = widen_space_to_depth(unet, factor)
    return unet


def subpixel_map(old_factor: int, new_factor: int) -> list[int]:
    """For each channel (c, i, j) of a new_factor space-to-depth layout, the channel (c, i', j') of
    the old_factor layout whose pixel covers it (``F.pixel_unshuffle`` order: c * f^2 + i * f + j)."""
    q = new_factor // old_factor
    return [c * old_factor**2 + (i // q) * old_factor + (j // q)
            for c in range(3) for i in range(new_factor) for j in range(new_factor)]


def widen_space_to_depth(unet, factor: int):
    """A U-Net trained on 2x2 space-to-depth at half the resolution, converted to ``factor`` x
    ``factor`` at full resolution: each new input channel reads its covering old channel (divided by
    the number of sub-pixels sharing it, so an image's block mean feeds the old weight), each output
    channel copies its covering old one. It starts as v1 upsampled and learns the detail."""
    from diffusers import UNet2DConditionModel

    old = unet.config.in_channels // 3
    old_factor = int(round(old**0.5))
    if old_factor**2 * 3 != unet.config.in_channels or factor % old_factor:
        raise ValueError(f"cannot convert {unet.config.in_channels} channels to a {factor}x{factor} layout")
    idx = torch.tensor(subpixel_map(old_factor, factor))
    share = (factor // old_factor) ** 2
    cfg = dict(unet.config)
    cfg["in_channels"] = cfg["out_channels"] = 3 * factor**2
    new = UNet2DConditionModel.from_config(cfg).float()
    sd = unet.state_dict()
    sd["conv_in.weight"] = sd["conv_in.weight"][:, idx] / share
    sd["conv_out.weight"] = sd["conv_out.weight"][idx]
    sd["conv_out.bias"] = sd["conv_out.bias"][idx]
    new.load_state_dict(sd)
    return new


def deepen_map(name: str, offset: int) -> str:
    """Where a parameter of the shallower U-Net goes in one with ``offset`` more outer levels: down
    blocks shift inward (down_blocks.i -> down_blocks.i+offset); up blocks, the mid block and the
    time embedding keep their names (up_blocks.0 is the innermost in both)."""
    m = re.match(r"down_blocks\.(\d+)\.(.*)", name)
    return f"down_blocks.{int(m.group(1)) + offset}.{m.group(2)}" if m else name


@torch.no_grad()
def deepen_unet(old, new) -> tuple[int, int]:
    """Copies ``old``'s weights into ``new``, a U-Net with more (outer, finer) levels around the same
    inner ones, wherever the shapes agree after ``deepen_map``; the rest keep their fresh init. The
    sinusoidal time features of the narrower first level are every other frequency of the old ones,
    so the time MLP's first layer keeps those columns. Returns (parameters copied, parameters new)."""
    offset = len(new.config.block_out_channels) - len(old.config.block_out_channels)
    if offset < 1 or list(new.config.block_out_channels[offset:]) != list(old.config.block_out_channels):
        raise ValueError(f"cannot deepen {list(old.config.block_out_channels)} into {list(new.config.block_out_channels)}: "
                         "the new U-Net's inner levels must have the old one's channels")
    target = new.state_dict()
    src = {deepen_map(k, offset): v for k, v in old.state_dict().items()}
    w_old, w_new = src["time_embedding.linear_1.weight"], target["time_embedding.linear_1.weight"]
    if w_old.shape[0] == w_new.shape[0] and w_old.shape[1] == 2 * w_new.shape[1]:  # dims halve: keep frequencies 0, 2, 4, ...
        h = w_new.shape[1] // 2
        cols = torch.cat([torch.arange(0, 2 * h, 2), 2 * h + torch.arange(0, 2 * h, 2)])
        src["time_embedding.linear_1.weight"] = w_old[:, cols]
    copied = {k: v for k, v in src.items() if k in target and target[k].shape == v.shape}
    new.load_state_dict(copied, strict=False)
    n_copied = sum(v.numel() for v in copied.values())
    return n_copied, sum(v.numel() for v in target.values()) - n_copied


@torch.no_grad()
def ema_update(ema, model, decay: float) -> None:
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm, 1 - decay)


def export(ema, run: Path, step: int) -> None:
    """EMA weights in diffusers layout, fp16, ready to copy into models/pmg-mini/unet."""
    out = run / "export" / "unet"
    tmp = run / "export" / "unet.tmp"
    half = copy.deepcopy(ema).half()
    half.save_pretrained(tmp, safe_serialization=True)
    (tmp / "train_step.json").write_text(json.dumps({"step": step}))
    if out.exists():
        import shutil

        shutil.rmtree(out)
    os.replace(tmp, out)
