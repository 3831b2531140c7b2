"""Image prompts for pmg-mini's generator: what each training row's pictures are, and their features.

At inference PMG's conditions carry, beside the keyword windows, *image tokens*: the frozen scorer's
embedding of a picture, projected into the cross-attention context (``pmg.generation.image_prompts``).
The target condition shows an exemplar of the target (from a reference gallery of art sets the
generator does not draw), the preference condition the user's own history pictures. Here each
training row gets the same:

* the **target exemplar**: the row's target concept in another art set than the image to learn; a
  scorer-only set (the gallery's sets) ``p_gallery`` of the time, else another generator style;
* the **history pictures**: up to ``HISTORY_PICTURES`` of the simulated user's history in their style,
  the most used first (``representative``: the rule inference uses too);
* each dropped ``p_drop`` of the time, so that text alone still works.

Features are the scorer's image embeddings of every picture of the data set, computed once and cached
beside it (``features``).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch

from pmg.generation.image_prompts import HISTORY_PICTURES, representative

__all__ = ["features", "PictureIndex"]


def features(data: str | Path, scorer: str | Path, batch: int = 512) -> tuple[np.ndarray, dict[tuple[str, str], int]]:
    """(N, E) float32 scorer image embeddings of every picture in ``data``/images.npy, and (hexcode,
    style) -> row. Cached in ``data``/features-<scorer fingerprint>.npy."""
    from PIL import Image

    from pmg.scoring.scorers import MiniCLIPScorer, weights_fingerprint

    data = Path(data)
    meta = [json.loads(line) for line in open(data / "meta.jsonl")]
    keys = {(m["hexcode"], m["style"]): i for i, m in enumerate(meta)}
    cache = data / f"features-{weights_fingerprint(scorer)}.npy"
    if cache.is_file():
        return np.load(cache), keys
    from tqdm import tqdm

    images = np.load(data / "images.npy", mmap_mode="r")
    sc = MiniCLIPScorer(scorer)
    out = []
    for s in tqdm(range(0, len(images), batch), desc="picture features", unit="batch"):
        out.append(sc.embed_images([Image.fromarray(np.asarray(a)) for a in images[s : s + batch]]).numpy())
    feats = np.concatenate(out).astype(np.float32)
    np.save(cache, feats)
    return feats, keys


class PictureIndex:
    """Which pictures a training row's image prompts show: indices into ``features``' rows, -1 for none."""

    def __init__(self, meta: list[dict], keys: dict[tuple[str, str], int], generator_styles: tuple[str, ...],
                 p_gallery: float = 0.8, p_drop: float = 0.15):
        self.keys, self.p_gallery, self.p_drop = keys, p_gallery, p_drop
        self.gallery: dict[str, list[int]] = {}  # concept -> its pictures in the scorer-only (gallery) sets
        self.drawn: dict[str, list[tuple[str, int]]] = {}  # concept -> (style, row) in the generator's styles
        for i, m in enumerate(meta):
            if m["split"] == "scorer":
                self.gallery.setdefault(m["hexcode"], []).append(i)
            elif m["split"] == "train" and m["style"] in generator_styles:
                self.drawn.setdefault(m["hexcode"], []).append((m["style"], i))

    def exemplar(self, concept: str, image_style: str, rng: random.Random) -> int:
        """The concept in another art set than ``image_style`` (never the picture to learn)."""
        own = self.gallery.get(concept, [])
        other = [i for s, i in self.drawn.get(concept, []) if s != image_style]
        if own and (rng.random() < self.p_gallery or not other):
            return rng.choice(own)
        return rng.choice(other) if other else -1

    def slots(self, seen, rng: random.Random) -> list[int]:
        """[target exemplar, history pictures ...] (``1 + HISTORY_PICTURES`` indices) of one row
        (``compose``'s ``pictures`` entry; None: an unconditional row, no pictures)."""
        out = [-1] * (1 + HISTORY_PICTURES)
        if seen is None:
            return out
        concept, image_style, user_style, history = seen
        if rng.random() >= self.p_drop:
            out[0] = self.exemplar(concept, image_style, rng)
        if history and rng.random() >= self.p_drop:
            picked = representative(list(history), HISTORY_PICTURES)
            for k, h in enumerate(picked):
                out[1 + k] = self.keys.get((h, user_style), -1)
        return out


def image_context(proj, feats: torch.Tensor, slots: torch.Tensor, weights: torch.Tensor):
    """Image tokens of a batch: ``slots`` (B, 1 + K) picture rows (-1: none), ``weights`` (B, 2) the rows'
    (w_p, w_t) -> context (B, (1 + K) * n, D) [w_t * target tokens ; w_p * history tokens] and its mask
    (a missing picture or a zero weight masks its tokens out)."""
    b, k = slots.shape
    tokens = proj(feats[slots.clamp(min=0)].reshape(b * k, -1))  # (B * (1 + K), n, D)
    n, d = tokens.shape[1], tokens.shape[2]
    w = torch.cat([weights[:, 1:2], weights[:, :1].expand(b, k - 1)], 1)  # (B, 1 + K): w_t, then w_p
    tokens = tokens.view(b, k, n, d) * w.view(b, k, 1, 1)
    mask = ((slots >= 0) & (w > 0)).float().repeat_interleave(n, 1)
    return tokens.reshape(b, k * n, d), mask
