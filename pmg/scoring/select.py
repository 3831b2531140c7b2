"""Balancing accuracy and preference (paper section 3.4): pure functions.

d_p = cos(e_M, e_p), d_t = cos(e_M, e_t), z = a * log d_p + (1 - a) * log d_t; keep argmax z.
Similarities are clamped above zero (``eps``) before the log: a candidate unrelated to a condition
gets a very low z instead of NaN.
"""

from __future__ import annotations

import torch

__all__ = ["similarity_scores", "with_pictures", "z_scores", "select_best"]


def similarity_scores(image_embeds: torch.Tensor, pref_embed: torch.Tensor | None, target_embed: torch.Tensor):
    """(K, E) images, (E,) or (1, E) texts, all unit vectors -> (d_p or None, d_t), each (K,)."""
    d_t = image_embeds @ target_embed.reshape(-1)
    d_p = None if pref_embed is None else image_embeds @ pref_embed.reshape(-1)
    return d_p, d_t


def with_pictures(image_embeds: torch.Tensor, d_p: torch.Tensor | None, d_t: torch.Tensor, history: torch.Tensor | None,
                  target: torch.Tensor | None, weight: float) -> tuple[torch.Tensor | None, torch.Tensor]:
    """d_p and d_t with the image prompts' pictures: d = (1 - w) d_text + w cos(candidate, pictures), the
    cosine averaged over the history's pictures (d_p) or the target's (d_t); a side without pictures
    keeps its text term. Without preference keywords the history's pictures alone give d_p."""
    def mix(d, pics):
        if pics is None or len(pics) == 0 or weight == 0:
            return d
        sim = (image_embeds @ pics.T).mean(dim=1)
        return sim if d is None else (1 - weight) * d + weight * sim

    return mix(d_p, history), mix(d_t, target)


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
