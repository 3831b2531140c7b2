"""The generator's denoising loss, shared by pmg-mini training and soft-embedding training.

Works for the two families of diffusers schedulers the project meets:
* rectified flow (``FlowMatchEulerDiscreteScheduler``, pmg-mini): x_t = (1 - s) x_0 + s eps,
  the U-Net predicts the velocity eps - x_0 at timestep s * T;
* DDPM-style (Stable Diffusion 1.x): x_t from ``scheduler.add_noise``, the U-Net predicts eps
  or v according to ``scheduler.config.prediction_type``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["is_flow_matching", "sample_flow_sigmas", "denoising_loss"]


def is_flow_matching(scheduler) -> bool:
    return type(scheduler).__name__.startswith("FlowMatch")


def sample_flow_sigmas(n: int, generator: torch.Generator | None = None, device="cpu") -> torch.Tensor:
    """Logit-normal noise levels (Esser et al. 2024): most samples at mid noise, where learning is."""
    return torch.sigmoid(torch.randn(n, generator=generator, device=device))


def denoising_loss(
    unet,
    scheduler,
    latents: torch.Tensor,
    encoder_hidden_states: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
    sigmas: torch.Tensor | None = None,
    timesteps: torch.Tensor | None = None,
    reduction: str = "mean",
    encoder_attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """MSE between the U-Net's prediction and its target on noised ``latents``.

    Args:
        latents: (B, C, h, w) clean latents (already through the codec).
        encoder_hidden_states: (B, T, D) conditioning states.
        sigmas: (B,) flow-matching noise levels in (0, 1); sampled if None.
        timesteps: (B,) integer DDPM timesteps; sampled if None.
        reduction: "mean" for a scalar, "none" for one value per sample (B,).
        encoder_attention_mask: (B, T) 1 for tokens to attend to, 0 for removed ones (zero weight).
    """
    b, device = latents.shape[0], latents.device
    if noise is None:
        noise = torch.randn(latents.shape, generator=generator, device=device, dtype=latents.dtype)
    n_train = scheduler.config.num_train_timesteps
    if is_flow_matching(scheduler):
        s = sigmas if sigmas is not None else sample_flow_sigmas(b, generator, device)
        s4 = s.view(b, 1, 1, 1).to(latents.dtype)
        noisy = (1 - s4) * latents + s4 * noise
        t = s * n_train
        target = noise - latents
    else:
        t = timesteps
        if t is None:
            t = torch.randint(0, n_train, (b,), generator=generator, device=device)
        noisy = scheduler.add_noise(latents, noise, t)
        kind = scheduler.config.prediction_type
        target = noise if kind == "epsilon" else scheduler.get_velocity(latents, noise, t)
    pred = unet(noisy, t, encoder_hidden_states=encoder_hidden_states, encoder_attention_mask=encoder_attention_mask).sample
    loss = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
    return loss.mean() if reduction == "mean" else loss
