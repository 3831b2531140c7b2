"""Balancing accuracy and preference (paper section 3.4): pure functions.

d_p = cos(e_M, e_p), d_t = cos(e_M, e_t), z = a * log d_p + (1 - a) * log d_t; keep argmax z.
Similarities are clamped above zero (``eps``) before the log: a candidate unrelated to a condition
gets a very low z instead of NaN.
"""

from __future__ import annotations

import torch

__all__ = ["similarity_scores", "picture_similarity", "mix_pictures", "with_pictures", "z_scores", "select_best"]


def similarity_scores(image_embeds: torch.Tensor, pref_embed: torch.Tensor | None, target_embed: torch.Tensor):
    """(K, E) images, (E,) or (1, E) texts, all unit vectors -> (d_p or None, d_t), each (K,)."""
    d_t = image_embeds @ target_embed.reshape(-1)
    d_p = None if pref_embed is None else image_embeds @ pref_embed.reshape(-1)
    return d_p, d_t


def picture_similarity(image_embeds: torch.Tensor, pictures: torch.Tensor | None) -> torch.Tensor | None:
    """(K,) mean cosine of each candidate to the pictures (unit rows), or None without pictures."""
    if pictures is None or len(pictures) == 0:
        return None
    return (image_embeds @ pictures.T).mean(dim=1)


def mix_pictures(d: torch.Tensor | None, sim: torch.Tensor | None, weight: float) -> torch.Tensor | None:
    """d = (1 - w) d_text + w sim: a side without pictures keeps its text term; without text (no preference
    keywords) the pictures alone."""
    if sim is None or weight == 0:
        return d
    return sim if d is None else (1 - weight) * d + weight * sim


def with_pictures(image_embeds: torch.Tensor, d_p: torch.Tensor | None, d_t: torch.Tensor, history: torch.Tensor | None,
                  target: torch.Tensor | None, weight: float) -> tuple[torch.Tensor | None, torch.Tensor]:
    """d_p and d_t with the image prompts' pictures (``mix_pictures``): the cosine averaged over the history's
    pictures (d_p) or the target's (d_t)."""
    return (mix_pictures(d_p, picture_similarity(image_embeds, history), weight),
            mix_pictures(d_t, picture_similarity(image_embeds, target), weight))


def z_scores(d_p: torch.Tensor | None, d_t: torch.Tensor, alpha: float = 0.5, eps: float = 1e-4) -> torch.Tensor:
    """z = a log d_p + (1 - a) log d_t. Without preference keywords (d_p None), z = log d_t."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    log_t = torch.log(d_t.clamp(min=eps))
    if d_p is None:
        return log_t
    return alpha * torch.log(d_p.clamp(min=eps)) + (1 - alpha) * log_t


def select_best(z: torch.Tensor) -> int:
    """Index of the highest z (the first one on ties)."""
    return int(torch.argmax(z).item())
