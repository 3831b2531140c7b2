"""PMGPipeline: keywords (and soft embeddings) -> a grid of weighted candidates, in one batched pass.

Written in diffusers' style: components go into ``__init__``, ``__call__`` is numbered steps, the
result is an output dataclass. The candidates of one initial noise start from the same seeded latents,
so they differ only by their condition weights.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from PIL import Image

from pmg.conditioning.encode import encode_prompts, model_max_length
from pmg.conditioning.weighting import DEFAULT_GRID, WEIGHTINGS, guidance_rows, normalize_weights, pad_uncond, parse_grid, weighted_parts
from pmg.generation.image_prompts import image_tokens

__all__ = ["PMGPipeline", "PMGGenerationOutput", "GridRequest", "to_pil"]


@dataclass
class PMGGenerationOutput:
    images: list[Image.Image]  # K x N candidates: one per weight pair and initial noise, noise-major
    weights: list[tuple[float, float]]  # each candidate's (w_p, w_t) ratio, as given
    latents: torch.Tensor  # (1, C, h, w) initial latents shared by all candidates, or (K x N, C, h, w) one each
    context_tokens: int  # length of the conditioning sequence


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """(B, 3, H, W) in [-1, 1] -> PIL images."""
    arr = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(np.ascontiguousarray(a)) for a in arr]


def check_defaults(steps, alpha, grid, noises) -> tuple[int, float, tuple[tuple[float, float], ...], int]:
    """A generator's own defaults, checked: steps (an integer >= 1), the selection's a (0 to 1), the weight
    grid (pairs, or ratios like '0:4,2:2,4:0') and the initial noises per weighting (an integer >= 1)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"default_steps must be a positive integer, got {steps!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ValueError(f"default_alpha must be a number from 0 to 1, got {alpha!r}")
    try:
        pairs = tuple((float(wp), float(wt)) for wp, wt in (parse_grid(grid) if isinstance(grid, str) else grid))
        for wp, wt in pairs:
            normalize_weights(wp, wt)
    except (ValueError, TypeError, AttributeError) as e:
        raise ValueError(f"default_grid must be ratios like '0:4,2:2,4:0', got {grid!r} ({e})") from None
    if isinstance(noises, bool) or not isinstance(noises, int) or noises < 1:
        raise ValueError(f"default_noises must be an integer >= 1, got {noises!r}")
    return steps, float(alpha), pairs, noises


class PMGPipeline:
    """
    Args:
        unet: diffusers ``UNet2DConditionModel``.
        scheduler: any diffusers scheduler (flow matching for pmg-mini; DDIM/PNDM/Euler for SD 1.x).
        codec: ``PixelShuffleCodec`` or ``VAECodec``: images <-> the space the U-Net denoises.
        tokenizer, text_encoder: the generator's own text side (MiniLM for pmg-mini, CLIP for SD).
        name: identifies the generator in manifests and in soft-embedding adapters.
        image_encoder, image_proj: image prompts (``pmg.generation.image_prompts``), optional: pictures ->
            (n, E) embeddings (a callable on PIL images), and the projection of those into image tokens. The
            tokens join the text context, unless the U-Net has an IP-Adapter (``pmg.generation.ip_adapter``):
            then they go to its image attention, a key/value stream of their own.
    """

    def __init__(self, unet, scheduler, codec, tokenizer, text_encoder, name: str = "generator",
                 max_chunks: int = 4, default_steps: int = 20, revision: str | None = None, default_alpha: float = 0.5,
                 default_grid: tuple[tuple[float, float], ...] | str = DEFAULT_GRID, default_noises: int = 1,
                 image_encoder=None, image_proj=None):
        from pmg.generation.ip_adapter import has_image_stream

        self.unet, self.scheduler, self.codec = unet.eval(), scheduler, codec
        self.tokenizer, self.text_encoder = tokenizer, text_encoder.eval()
        self.image_encoder, self.image_proj = image_encoder, image_proj
        self.ip_adapter = has_image_stream(unet)  # image tokens in IP-Adapter's attention, not in the text context
        self.name, self.max_chunks = name, max_chunks
        self.revision = revision  # e.g. "step-5000": soft-embedding adapters record what they were fitted to
        # the defaults a call or a config leaves open, checked here only (a model folder's model_index.json sets them)
        self.default_steps, self.default_alpha, self.default_grid, self.default_noises = check_defaults(
            default_steps, default_alpha, default_grid, default_noises)

    @property
    def device(self) -> torch.device:
        return self.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    @property
    def embed_dim(self) -> int:
        return self.unet.config.cross_attention_dim

    @property
    def window(self) -> int:
        return model_max_length(self.tokenizer, self.text_encoder)

    def to(self, device: str | torch.device) -> "PMGPipeline":
        self.unet.to(device)
        self.text_encoder.to(device)
        if hasattr(self.codec, "vae"):
            self.codec.vae.to(device)
        if isinstance(self.image_encoder, torch.nn.Module):
            self.image_encoder.to(device)
        return self

    # 1. --------------------------------------------------------------------------------- checks
    def check_inputs(self, target_embeds, preference_embeds, soft_embeds, weights, guidance_scale, steps):
        if target_embeds is None:
            raise ValueError("target keywords (or target_embeds) are required")
        d = self.embed_dim
        for name, t in (("target", target_embeds), ("preference", preference_embeds), ("soft", soft_embeds)):
            if t is not None and (t.ndim != 3 or t.shape[0] != 1 or t.shape[2] != d):
                raise ValueError(f"{name} embeddings must have shape (1, T, {d}), got {tuple(t.shape)}")
        if not weights:
            raise ValueError("the weight grid is empty")
        for wp, wt in weights:
            normalize_weights(wp, wt)
        if steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {steps}")
        if guidance_scale < 0:
            raise ValueError(f"guidance_scale must be >= 0, got {guidance_scale}")

    # 2. --------------------------------------------------------------------------------- encode
    def encode_keywords(self, keywords: list[str] | str | None) -> torch.Tensor | None:
        """Keywords -> (1, n_windows * window, D) token states, or None for no keywords."""
        if keywords is None or (not isinstance(keywords, str) and len(keywords) == 0):
            return None
        text = keywords if isinstance(keywords, str) else ", ".join(keywords)
        states = encode_prompts(self.tokenizer, self.text_encoder, [text], max_chunks=self.max_chunks)
        return states.to(self.dtype)

    @property
    def takes_images(self) -> bool:
        """Whether pictures can enter the conditions (image prompts)."""
        return self.image_encoder is not None and self.image_proj is not None

    def encode_images(self, images: list[Image.Image]) -> torch.Tensor | None:
        """Pictures -> (n, E) embeddings with the generator's image encoder, or None for no pictures."""
        if not images:
            return None
        if not self.takes_images:
            raise ValueError(f"generator {self.name} takes no image prompts (its folder has no image projection)")
        return self.image_encoder(list(images))

    def encode_empty(self, negative_prompt: str = "") -> torch.Tensor:
        states = encode_prompts(self.tokenizer, self.text_encoder, [negative_prompt], max_chunks=self.max_chunks)
        return states.to(self.dtype)

    # 4. --------------------------------------------------------------------------------- latents
    def prepare_latents(self, generator: torch.Generator | None, latents: torch.Tensor | None = None):
        shape = (1, self.codec.latent_channels, self.codec.latent_size, self.codec.latent_size)
        if latents is None:
            latents = torch.randn(shape, generator=generator, device="cpu", dtype=torch.float32)
        elif tuple(latents.shape) != shape:
            raise ValueError(f"latents must have shape {shape}, got {tuple(latents.shape)}")
        return latents.to(self.device, self.dtype)

    @torch.no_grad()
    def __call__(
        self,
        target_keywords: list[str] | str | None = None,
        preference_keywords: list[str] | str | None = None,
        *,
        weights=DEFAULT_GRID,
        soft_embeds: torch.Tensor | None = None,
        target_embeds: torch.Tensor | None = None,
        preference_embeds: torch.Tensor | None = None,
        negative_prompt: str = "",
        num_inference_steps: int | None = None,
        guidance_scale: float = 4.0,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        callback: Callable[[int, int], None] | None = None,
        weighting: str = "embedding",
        noises: int = 1,
        target_image_embeds: torch.Tensor | None = None,
        preference_image_embeds: torch.Tensor | None = None,
        image_scale: float = 1.0,
    ) -> PMGGenerationOutput:
        grid = self.prepare_grid(target_keywords, preference_keywords, weights=weights, soft_embeds=soft_embeds,
                                 target_embeds=target_embeds, preference_embeds=preference_embeds,
                                 negative_prompt=negative_prompt, generator=generator, latents=latents,
                                 weighting=weighting, noises=noises, target_image_embeds=target_image_embeds,
                                 preference_image_embeds=preference_image_embeds, image_scale=image_scale)
        return self.denoise_grids([grid], num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                                  output_type=output_type, callback=callback)[0]

    # 2.-4. -------------------------------------- one user's grid: encode, 3. weight (pmg.conditioning), latents
    def prepare_grid(self, target_keywords=None, preference_keywords=None, *, weights=DEFAULT_GRID, soft_embeds=None,
                     target_embeds=None, preference_embeds=None, negative_prompt: str = "", generator=None,
                     latents=None, weighting: str = "embedding", noises: int = 1, target_image_embeds=None,
                     preference_image_embeds=None, image_scale: float = 1.0) -> "GridRequest":
        """Encode one user's conditions, weight them and draw the shared initial latents.

        ``noises`` > 1: every weighting is also drawn from ``noises - 1`` further initial latents (drawn
        after the first from ``generator``), candidates noise-major; the first K are the one-noise grid.

        ``weighting``: "embedding" (the paper: one weighted context per candidate) or "guidance"
        (per-condition guidance: a target-only and a preference-only context, mixed in the prediction;
        see ``pmg.conditioning.weighting``).

        ``target_image_embeds`` / ``preference_image_embeds``: (n, E) embeddings of the target's pictures
        and of the history's (``encode_images``), projected into image tokens that join their condition:
        weighted w_t and w_p like its keywords, times ``image_scale``. With an IP-Adapter they are the
        grid's ``image_cond``, where a zero-weighted side's tokens are zeros, which its attention leaves out."""
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {', '.join(WEIGHTINGS)}; got {weighting!r}")
        weights = [tuple(w) for w in weights]
        if target_embeds is None:  # precomputed embeddings win
            target_embeds = self.encode_keywords(target_keywords)
        if preference_embeds is None:
            preference_embeds = self.encode_keywords(preference_keywords)
        if soft_embeds is not None:
            soft_embeds = soft_embeds.to(self.device, self.dtype)
        self.check_inputs(target_embeds, preference_embeds, soft_embeds, weights, 1.0, 1)
        t_img, p_img = self.image_tokens(target_image_embeds), self.image_tokens(preference_image_embeds)
        if not (isinstance(image_scale, (int, float)) and 0 <= image_scale <= 4):
            raise ValueError(f"image_scale must be a number from 0 to 4, got {image_scale!r}")
        if weighting == "guidance" and any(x is not None for x in (preference_embeds, soft_embeds, p_img)):
            rows, cand, coef = guidance_rows(weights)
        else:  # the paper's weighting (and, with no preference condition, the only one there is)
            rows, cand, coef = weights, list(range(len(weights))), [1.0] * len(weights)
        parts = [(target_embeds, "target", 1.0), (preference_embeds, "preference", 1.0), (soft_embeds, "preference", 1.0)]
        images = [(t_img, "target", float(image_scale)), (p_img, "preference", float(image_scale))]
        image_cond = None
        if self.ip_adapter:  # (R, T_img, D): w * tokens is exactly zero where w is, and a zero token is absent there
            image_cond = weighted_parts(images, rows)[0] if t_img is not None or p_img is not None else None
        else:
            parts += images
        cond, mask = weighted_parts(parts, rows)  # (R, T, D), (R, T)
        mask = mask.to(self.device)
        uncond = pad_uncond(self.encode_empty(negative_prompt), cond.shape[1]).expand(len(weights), -1, -1)
        grid = GridRequest(cond, mask, uncond, self.prepare_latents(generator, latents), weights,
                           torch.tensor(cand), torch.tensor(coef), image_cond)
        return grid.with_noises([grid.latents] + [self.prepare_latents(generator) for _ in range(noises - 1)])

    def image_tokens(self, embeds: torch.Tensor | None) -> torch.Tensor | None:
        """(n, E) picture embeddings -> (1, n * tokens, D) image tokens, or None."""
        if embeds is None or len(embeds) == 0:
            return None
        if self.image_proj is None:
            raise ValueError(f"generator {self.name} takes no image prompts (its folder has no image projection)")
        return image_tokens(self.image_proj, embeds).to(self.device, self.dtype)

    # 5.-6. ------------------------------------------------------ many grids at once: denoise, decode
    @torch.no_grad()
    def denoise_grids(self, grids: list["GridRequest"], *, num_inference_steps: int | None = None,
                      guidance_scale: float = 4.0, output_type: str = "pil",
                      callback: Callable[[int, int], None] | None = None) -> list[PMGGenerationOutput]:
        """Denoise the grids of several users in one batched U-Net pass per step.

        Contexts of different lengths are padded with masked tokens, which take no attention, so each
        user gets the images it would get alone (up to float summation order)."""
        steps = self.default_steps if num_inference_steps is None else num_inference_steps
        self.check_inputs(grids[0].uncond[:1], None, None, grids[0].weights, guidance_scale, steps)
        do_cfg = guidance_scale != 1.0
        context, mask, row_k, coef = self._stack_grids(grids, do_cfg)
        image_cond = self._stack_image_conds(grids, do_cfg)
        if image_cond is not None:  # diffusers' IP-Adapter layout: (text, [image tokens])
            context = (context, [image_cond])
        # the same initial latents for every candidate of a user; a scheduler of this call's own
        # (diffusers schedulers keep a step counter: one shared between threads breaks both calls)
        scheduler = copy.deepcopy(self.scheduler)
        scheduler.set_timesteps(steps, device=self.device)
        sigma0 = getattr(scheduler, "init_noise_sigma", 1.0)
        lat = torch.cat([(g.latents * sigma0).expand(len(g.weights), -1, -1, -1) for g in grids]).clone()
        timesteps = scheduler.timesteps
        for i, t in enumerate(timesteps):
            model_in = torch.cat([lat, lat[row_k]]) if do_cfg else lat[row_k]
            if hasattr(scheduler, "scale_model_input"):  # flow-matching schedulers have none
                model_in = scheduler.scale_model_input(model_in, t)
            out = self.unet(model_in, t, encoder_hidden_states=context, encoder_attention_mask=mask).sample
            # eps = eps_u + g * sum_r coef_r (eps_r - eps_u) over each candidate's rows (one row of
            # coefficient 1 with the paper's weighting: classifier-free guidance as usual)
            if do_cfg:
                p_u, p_c = out[: len(lat)], out[len(lat):]
                pred = p_u + guidance_scale * torch.zeros_like(p_u).index_add_(0, row_k, coef * (p_c - p_u[row_k]))
            else:  # coefficients of a candidate sum to 1
                pred = torch.zeros_like(lat).index_add_(0, row_k, coef * out)
            lat = scheduler.step(pred, t, lat).prev_sample
            if callback is not None:
                callback(i + 1, len(timesteps))
        images = self.codec.decode(lat).float()
        outs, start = [], 0
        for g in grids:
            part = images[start : start + len(g.weights)]
            start += len(g.weights)
            outs.append(PMGGenerationOutput(images=to_pil(part) if output_type == "pil" else part, weights=g.weights,
                                            latents=g.latents, context_tokens=g.cond.shape[1]))
        return outs

    def _stack_grids(self, grids: list["GridRequest"], do_cfg: bool):
        """All users' U-Net rows in one batch: [unconditional (one per candidate, with CFG) ; conditional],
        contexts padded to the longest with masked tokens; each conditional row's candidate and coefficient."""
        t_max = max(g.cond.shape[1] for g in grids)

        def pad(x, m):  # (K, T, D), (K, T) -> length t_max, padding masked out
            extra = t_max - x.shape[1]
            if extra == 0:
                return x, m
            return (torch.cat([x, x.new_zeros(x.shape[0], extra, x.shape[2])], 1),
                    torch.cat([m, m.new_zeros(m.shape[0], extra)], 1))

        conds, masks, unconds, umasks, cands, coefs, n = [], [], [], [], [], [], 0
        for g in grids:
            c, m = pad(g.cond, g.mask)
            u, um = pad(g.uncond, self._uncond_mask(g.uncond))
            conds.append(c), masks.append(m), unconds.append(u), umasks.append(um)
            cands.append(g.row_candidate + n), coefs.append(g.row_coef)
            n += len(g.weights)
        cond, mask = torch.cat(conds), torch.cat(masks)
        row_k = torch.cat(cands).to(self.device)  # the candidate each conditional row belongs to
        coef = torch.cat(coefs).to(self.device, self.dtype).view(-1, 1, 1, 1)
        context = torch.cat([torch.cat(unconds), cond]) if do_cfg else cond
        mask = torch.cat([torch.cat(umasks), mask]) if do_cfg else mask
        if bool(mask.all()):
            mask = None  # nothing removed: the U-Net's plain (faster) attention
        return context, mask, row_k, coef

    def _stack_image_conds(self, grids: list["GridRequest"], do_cfg: bool) -> torch.Tensor | None:
        """All users' IP-Adapter image tokens in ``_stack_grids``' row order, padded with zero tokens (absent
        to IP-Adapter's attention, ``pmg.generation.ip_adapter``); unconditional rows carry none. None when
        no grid has any."""
        conds = [g.image_cond for g in grids if g.image_cond is not None]
        if not conds:
            return None
        t_max, d = max(c.shape[1] for c in conds), conds[0].shape[2]
        rows = [torch.nn.functional.pad(g.image_cond, (0, 0, 0, t_max - g.image_cond.shape[1]))
                if g.image_cond is not None else conds[0].new_zeros(g.cond.shape[0], t_max, d) for g in grids]
        if do_cfg:
            rows.insert(0, conds[0].new_zeros(sum(len(g.weights) for g in grids), t_max, d))
        return torch.cat(rows)


    def _uncond_mask(self, uncond: torch.Tensor) -> torch.Tensor:
        """The unconditional rows' mask: the empty window tiled whole, a partial last copy masked out (image
        tokens make contexts of any length), so the row attends as to one empty window, whatever its length."""
        mask = torch.ones_like(uncond[:, :, 0])
        window, length = self.window, uncond.shape[1]
        if length > window and length % window:
            mask[:, length - length % window:] = 0
        return mask


@dataclass
class GridRequest:
    """One user's weighted conditions, ready to denoise (``PMGPipeline.prepare_grid``)."""

    cond: torch.Tensor  # (R, T, D) [w_t E_t ; w_p E_k ; w_p E_m] per U-Net row (R = K with the paper's weighting)
    mask: torch.Tensor  # (R, T) 0 where a weight is zero
    uncond: torch.Tensor  # (K, T, D) the empty prompt tiled to T
    latents: torch.Tensor  # (1, C, h, w) initial latents shared by the K candidates, or (K, C, h, w) one each
    weights: list[tuple[float, float]]
    row_candidate: torch.Tensor  # (R,) the candidate each row of ``cond`` belongs to
    row_coef: torch.Tensor  # (R,) its coefficient in the candidate's prediction (a candidate's sum to 1)
    image_cond: torch.Tensor | None = None  # (R, T_img, D) image tokens for an IP-Adapter (zero tokens: absent), or None

    def with_noises(self, latents: list[torch.Tensor]) -> "GridRequest":
        """The grid repeated once per initial latent (each (1, C, h, w)), noise-major: K x N candidates."""
        n, k = len(latents), len(self.weights)
        if n == 1:
            return self
        return GridRequest(self.cond.repeat(n, 1, 1), self.mask.repeat(n, 1), self.uncond.repeat(n, 1, 1),
                           torch.cat(latents).repeat_interleave(k, 0), self.weights * n,
                           torch.cat([self.row_candidate + i * k for i in range(n)]), self.row_coef.repeat(n),
                           None if self.image_cond is None else self.image_cond.repeat(n, 1, 1))
