"""Scorers embed images and texts into one space (CLIP-style); selection uses their cosine similarity.

* ``MiniCLIPScorer``: pmg-mini's mini-CLIP (offline default).
* ``CLIPScorer``: transformers ``CLIPModel`` from a local folder (the paper's setup).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from pmg.errors import ModelLoadError
from pmg.quiet import quiet_loading
from pmg.registry import resolve_scorer

__all__ = ["Scorer", "MiniCLIPScorer", "CLIPScorer", "load_scorer", "weights_fingerprint"]

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_WHOLE_FILE_BYTES = 64 << 20


def weights_fingerprint(folder: str | Path) -> str:
    """8 hex digits that change when a model folder's config or weights change.

    Scorer names carry it, so caches keyed by them (item captions, keywords) miss after a weights
    update instead of serving what the old weights said. Files up to 64 MiB are hashed whole; larger
    ones by name, size and their first and last MiB (a CLIP checkpoint loads without a full read).
    """
    import hashlib

    h = hashlib.sha256()
    for f in sorted(Path(folder).iterdir()):
        if not f.is_file() or not (f.name == "config.json" or f.suffix in _WEIGHT_SUFFIXES):
            continue
        size = f.stat().st_size
        h.update(f"{f.name}:{size}:".encode())
        with open(f, "rb") as fh:
            if size <= _WHOLE_FILE_BYTES:
                h.update(fh.read())
            else:
                h.update(fh.read(1 << 20))
                fh.seek(-(1 << 20), 2)
                h.update(fh.read())
    return h.hexdigest()[:8]


@runtime_checkable
class Scorer(Protocol):
    name: str

    def embed_images(self, images: list[Image.Image]) -> torch.Tensor:
        """(N, E) unit vectors."""

    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        """(M, E) unit vectors."""


def _images_to_tensor(images: list[Image.Image], size: int) -> torch.Tensor:
    arr = np.stack([np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.float32) for im in images])
    return torch.from_numpy(arr).permute(0, 3, 1, 2) / 127.5 - 1


class MiniCLIPScorer:
    def __init__(self, folder: str | Path):
        from pmg.generation.text_encoders import load_minilm
        from pmg.scoring.mini_clip import MiniCLIP

        self.model = MiniCLIP.from_pretrained(folder)
        self.tokenizer, self.encoder = load_minilm(self.model.config.text_encoder, max_length=128)
        self.name = f"mini-clip:{Path(folder).resolve().parent.name}/{Path(folder).name}@{weights_fingerprint(folder)}"

    @torch.no_grad()
    def embed_images(self, images: list[Image.Image]) -> torch.Tensor:
        return self.model.encode_image(_images_to_tensor(images, self.model.config.image_size))

    @torch.no_grad()
    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        from pmg.scoring.mini_clip import mean_pool

        tok = self.tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
        states = self.encoder(**tok).last_hidden_state
        return self.model.encode_text_features(mean_pool(states, tok["attention_mask"]))


class CLIPScorer:
    """A keyword list longer than CLIP's 77 tokens is embedded in groups and the unit vectors averaged."""

    def __init__(self, folder: str | Path, device: str = "cpu"):
        from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizer

        folder = Path(folder)
        try:
            self.model = CLIPModel.from_pretrained(folder).eval().to(device)
            self.tokenizer = CLIPTokenizer.from_pretrained(folder)
            self.processor = CLIPImageProcessor.from_pretrained(folder)
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"could not load a CLIP scorer from {folder}: {e}") from None
        self.name, self.device = f"clip:{folder.name}@{weights_fingerprint(folder)}", device
        self.max_len = self.model.config.text_config.max_position_embeddings

    @torch.no_grad()
    def embed_images(self, images: list[Image.Image]) -> torch.Tensor:
        px = self.processor(images=[im.convert("RGB") for im in images], return_tensors="pt")["pixel_values"]
        feats = self.model.get_image_features(pixel_values=px.to(self.device))
        feats = getattr(feats, "pooler_output", feats)
        return F.normalize(feats.float(), dim=-1).cpu()

    def _groups(self, text: str) -> list[str]:
        words = [w.strip() for w in text.split(",") if w.strip()] or [text]
        groups, cur = [], []
        for w in words:
            trial = ", ".join(cur + [w])
            if cur and len(self.tokenizer(trial)["input_ids"]) > self.max_len:
                groups.append(", ".join(cur))
                cur = [w]
            else:
                cur.append(w)
        groups.append(", ".join(cur))
        return groups

    @torch.no_grad()
    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        out = []
        for text in texts:
            groups = self._groups(text)
            tok = self.tokenizer(groups, padding=True, truncation=True, max_length=self.max_len, return_tensors="pt")
            feats = self.model.get_text_features(**{k: v.to(self.device) for k, v in tok.items()})
            feats = F.normalize(getattr(feats, "pooler_output", feats).float(), dim=-1).mean(0)
            out.append(F.normalize(feats, dim=-1))
        return torch.stack(out).cpu()


@quiet_loading()
def load_scorer(spec: str | Path, device: str = "cpu") -> Scorer:
    folder = resolve_scorer(spec)
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise ModelLoadError(f"{folder}: no config.json (expected a CLIP or mini-CLIP folder)")
    try:
        cfg = json.loads(cfg_path.read_text())
        if cfg.get("_class_name") == "MiniCLIP":
            return MiniCLIPScorer(folder)
        if cfg.get("model_type") == "clip" or "CLIPModel" in cfg.get("architectures", []):
            return CLIPScorer(folder, device=device)
    except (OSError, ValueError, KeyError) as e:  # a missing weights file, a broken config: one clear line
        raise ModelLoadError(f"could not load the scorer from {folder}: {e}") from None
    raise ModelLoadError(f"{folder}: unknown scorer type (expected a CLIPModel or MiniCLIP config)")
