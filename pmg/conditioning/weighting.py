"""Condition weighting after the text encoder (paper section 3.4): pure functions.

M = Generator(w_p * E^P, w_t * E^t), E^P = [E_k (preference keywords); E_m (soft embeddings)].
The context the U-Net cross-attends to is [w_t * E_t ; w_p * E_k ; w_p * E_m].

Weights are given as a ratio grid (the paper's Figure 7: 0:4, 1:3, 2:2, 3:1, 4:0) and normalised
by the larger one: the dominant condition stays exactly as encoded and the other is attenuated
(1:3 -> 0.33 x preference, 1 x target; 0:4 drops the preference). Scaling states above the encoder's
own range would feed the U-Net inputs it never saw. ``normalize_weights`` is the one place that
convention lives.
"""

from __future__ import annotations

import math

import torch

__all__ = ["DEFAULT_GRID", "WEIGHTINGS", "parse_grid", "format_grid", "normalize_weights", "weighted_parts", "weighted_context",
           "context_mask", "pad_uncond", "guidance_rows"]

# "embedding": the paper's weighting of the encoded conditions (one context per candidate);
# "guidance": per-condition classifier-free guidance (composable diffusion, Liu et al. 2022),
#   eps = eps_u + g * (w_t (eps_t - eps_u) + w_p (eps_p - eps_u)), weights normalised to sum to 1
WEIGHTINGS = ("embedding", "guidance")

DEFAULT_GRID: tuple[tuple[float, float], ...] = ((0, 4), (1, 3), (2, 2), (3, 1), (4, 0))


def parse_grid(text: str) -> tuple[tuple[float, float], ...]:
    """'0:4,1:3,2:2' -> ((0, 4), (1, 3), (2, 2)), as (w_p, w_t) pairs."""
    pairs = []
    for part in text.split(","):
        try:
            wp, wt = (float(v) for v in part.split(":"))
        except ValueError:
            raise ValueError(f"weight {part.strip()!r} is not of the form W_P:W_T (e.g. 1:3)") from None
        check_pair(wp, wt, part.strip())
        pairs.append((wp, wt))
    if not pairs:
        raise ValueError("the weight grid is empty")
    return tuple(pairs)


def format_grid(pairs) -> str:
    """((0, 4), (2, 2)) -> '0:4,2:2' (``parse_grid``'s inverse)."""
    return ",".join(f"{wp:g}:{wt:g}" for wp, wt in pairs)


def check_pair(w_p: float, w_t: float, shown: str | None = None) -> None:
    """Finite, >= 0, not both zero; the error shows the pair as given."""
    shown = shown or f"{w_p}:{w_t}"
    if not (math.isfinite(w_p) and math.isfinite(w_t)):
        raise ValueError(f"weight {shown!r}: both must be finite numbers")
    if w_p < 0 or w_t < 0 or w_p + w_t == 0:
        raise ValueError(f"weight {shown!r}: both must be >= 0 and not both 0")


def normalize_weights(w_p: float, w_t: float) -> tuple[float, float]:
    """Scale a ratio so that max(w_p, w_t) == 1."""
    check_pair(w_p, w_t)
    m = max(w_p, w_t)
    return w_p / m, w_t / m


def weighted_parts(parts, weights) -> tuple[torch.Tensor, torch.Tensor]:
    """The contexts and attention masks of a grid from its condition parts.

    Args:
        parts: ``(states (1, T_i, D), side, scale)`` per part, ``side`` "target" or "preference"
            (keyword windows, soft embeddings, image tokens); a part of None states is left out.
        weights: K (w_p, w_t) ratios, normalised here.

    Returns:
        (K, sum T_i, D) contexts, each part times its side's weight and its scale, and the (K, sum T_i)
        mask: 0 for the tokens of a part whose weight (or scale) is zero (removed, not zeroed: a zero key
        would still take a share of the attention, so 0:4 would not be the target-only image).
    """
    parts = [(x, side, scale) for x, side, scale in parts if x is not None]
    for _, side, _ in parts:
        if side not in ("target", "preference"):
            raise ValueError(f"a condition part's side must be 'target' or 'preference', got {side!r}")
    ctx, mask = [], []
    for w_p, w_t in weights:
        wp, wt = normalize_weights(w_p, w_t)
        w = {"target": wt, "preference": wp}
        ctx.append(torch.cat([w[side] * scale * x for x, side, scale in parts], dim=1))
        mask.append(torch.cat([torch.full((x.shape[1],), float(w[side] * scale > 0)) for x, side, scale in parts]))
    return torch.cat(ctx, dim=0), torch.stack(mask)


def weighted_context(
    target: torch.Tensor,
    preference: torch.Tensor | None,
    weights: list[tuple[float, float]] | tuple[tuple[float, float], ...],
    soft: torch.Tensor | None = None,
) -> torch.Tensor:
    """One context per weight pair, stacked on the batch axis (``weighted_parts`` with the text parts).

    Args:
        target: (1, T_t, D) encoded target keywords.
        preference: (1, T_p, D) encoded preference keywords, or None (no keywords).
        weights: K (w_p, w_t) ratios, normalised here.
        soft: (1, L, D) soft preference embeddings, or None.

    Returns:
        (K, T_t + T_p + L, D): [w_t * target ; w_p * preference ; w_p * soft] for each pair.
    """
    return weighted_parts([(target, "target", 1.0), (preference, "preference", 1.0), (soft, "preference", 1.0)], weights)[0]


def context_mask(target_len: int, preference_len: int, soft_len: int,
                 weights: list[tuple[float, float]] | tuple[tuple[float, float], ...]) -> torch.Tensor:
    """(K, T) attention mask for ``weighted_context``'s layout: 0 where a condition's weight is zero
    (``weighted_parts``)."""
    parts = [(torch.zeros(1, n, 1), side, 1.0) for n, side in
             ((target_len, "target"), (preference_len, "preference"), (soft_len, "preference")) if n]
    return weighted_parts(parts, weights)[1]


def pad_uncond(empty: torch.Tensor, length: int) -> torch.Tensor:
    """Tile the empty-prompt window (1, L, D) to ``length`` tokens, so the unconditional context of
    classifier-free guidance has the same length as the conditional one."""
    reps = -(-length // empty.shape[1])
    return empty.repeat(1, reps, 1)[:, :length]


def guidance_rows(weights: list[tuple[float, float]] | tuple[tuple[float, float], ...]
                  ) -> tuple[list[tuple[float, float]], list[int], list[float]]:
    """Per-condition guidance as U-Net rows: for each candidate k with weights (w_p, w_t), a target-only
    row with coefficient w_t / (w_p + w_t) and a preference-only row with w_p / (w_p + w_t), each
    left out when its coefficient is 0 (0:4 is then exactly the target-only candidate).

    Returns (row weight pairs for ``weighted_context``/``context_mask``: (0, 1) target-only, (1, 0)
    preference-only; the candidate of each row; each row's coefficient). A candidate's coefficients
    sum to 1, so without guidance (g = 1) the prediction is their weighted mean."""
    pairs, cand, coef = [], [], []
    for k, (w_p, w_t) in enumerate(weights):
        check_pair(w_p, w_t)
        total = w_p + w_t
        for row, c in (((0.0, 1.0), w_t / total), ((1.0, 0.0), w_p / total)):
            if c > 0:
                pairs.append(row), cand.append(k), coef.append(c)
    return pairs, cand, coef
