"""Classifier-free guidance (Ho & Salimans, 2022): class dropout in training, guided sampling.

One network learns two predictions of the noise. During training the context (a one-hot class,
later any context vector) is hidden from a random share ``drop_prob`` of the batch, so the network
learns the conditional prediction e(x_t, t, c) and the unconditional one e(x_t, t, no class).
When sampling, the two are mixed with a guidance weight w:

    e_guided = (1 + w) * e_cond - w * e_uncond = e_cond + w * (e_cond - e_uncond)

w = 0 is the plain conditional model, w = -1 the unconditional one, w > 0 pushes the samples
further in the direction the class adds (more typical of the class, less varied), and w < -1
pushes away from it.

Masks follow the convention of ``UNet.forward(x, t, c, c_mask)``: float [N, 1], 1 = keep the
context, 0 = drop it (the network then sees the all-zero vector ``c * c_mask``).
"""
from __future__ import annotations

import torch

from .ddpm_utils import DDPM, NoiseModel, SampleTrace, batch_timesteps, per_sample
from .fast import FastPath


def context_mask(n: int, drop_prob: float, device: torch.device | str = "cpu",
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """A Bernoulli keep/drop mask for a batch: each entry is 0 with probability ``drop_prob``.

    Args:
        n: batch size.
        drop_prob: chance that a sample's context is hidden, in [0, 1].
        device: where the mask lives (the device of the batch it masks).
        generator: random generator on ``device``, for repeatable masks.

    Returns:
        Float tensor [n, 1] of ones (keep) and zeros (drop).
    """
    if not 0.0 <= drop_prob <= 1.0:
        raise ValueError(f"drop_prob is a probability and must lie in [0, 1], got {drop_prob}")
    # torch.rand is uniform on [0, 1): P(u < drop_prob) = drop_prob, and drop_prob = 1 drops all.
    u = torch.rand((n, 1), generator=generator, device=device)
    return (u >= drop_prob).float()


def conditional_loss(ddpm: DDPM, model: NoiseModel, x0: torch.Tensor, c: torch.Tensor,
                     drop_prob: float, *, t: torch.Tensor | None = None,
                     noise: torch.Tensor | None = None,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """The classifier-free training loss: the noise-prediction MSE with some contexts hidden.

    Args:
        ddpm: the noise schedule.
        model: called as ``model(x_t, t, c, c_mask)``.
        x0: clean images, [N, C, H, W].
        c: context vectors (one-hot classes), [N, D], on x0's device.
        drop_prob: chance that a sample's context is hidden (see ``context_mask``).
        t: timesteps [N]; drawn uniformly when None. noise: [N, C, H, W]; drawn when None.
        generator: random generator on x0's device for t, the mask and the noise.
    """
    n = x0.shape[0]
    if t is None:
        t = ddpm.random_timesteps(n, x0.device, generator)
    c_mask = context_mask(n, drop_prob, device=x0.device, generator=generator)
    return ddpm.training_loss(model, x0, t, c, c_mask, noise=noise, generator=generator)


def guided_noise(model: NoiseModel, x_t: torch.Tensor, t: torch.Tensor, c: torch.Tensor,
                 w: float | torch.Tensor) -> torch.Tensor:
    """The guided noise estimate (1 + w) * e_cond - w * e_uncond.

    Both predictions come from one batched call of ``model`` on the batch stacked twice: the
    first copy keeps the context (mask 1), the second drops it (mask 0). With a network that
    treats samples independently (GroupNorm, no BatchNorm) this equals two separate calls.

    Args:
        model: called as ``model(x_t, t, c, c_mask)``, returns [N, C, H, W].
        x_t: current images, [N, C, H, W]. t: timesteps, [N] (or one int). c: contexts, [N, D].
        w: guidance weight, one number or one per sample ([N]).

    Returns:
        The guided noise, [N, C, H, W].
    """
    n = x_t.shape[0]
    t = batch_timesteps(t, x_t)
    w = torch.as_tensor(w, dtype=x_t.dtype, device=x_t.device)
    if w.dim() > 1 or (w.dim() == 1 and w.shape[0] != n):
        raise ValueError(f"w must be one number or one per sample (shape [{n}]), got shape {list(w.shape)}")
    w = per_sample(w.expand(n), x_t.shape)  # broadcast over [C, H, W]
    keep = torch.ones(n, 1, dtype=c.dtype, device=c.device)
    mask = torch.cat([keep, torch.zeros_like(keep)])  # first copy conditional, second unconditional
    e_cond, e_uncond = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([c, c]), mask).chunk(2)
    return (1 + w) * e_cond - w * e_uncond  # = e_cond + w * (e_cond - e_uncond)


def guided_sample(ddpm: DDPM, model: NoiseModel, c: torch.Tensor, w: float | torch.Tensor,
                  image_shape: tuple[int, int, int], *, generator: torch.Generator | None = None,
                  n_frames: int = 10, progress: bool = False,
                  fast: bool | FastPath | None = None) -> SampleTrace:
    """Generate one image per context with classifier-free guidance, via ``DDPM.sample``.

    The network runs on the same execution path as in ``DDPM.sample`` (``utils.fast.sampling``:
    channels_last, bfloat16 autocast where the CPU or GPU has it natively, inference_mode), and the
    reverse chain stays in float32.

    Args:
        ddpm: the schedule; the samples live on its device (``ddpm.betas.device``).
        model: the conditional network, called as ``model(x_t, t, c, c_mask)``.
        c: contexts, [N, D], on the schedule's device; one image is drawn per row.
        w: guidance weight, one number or one per sample ([N]), so one run can cover a grid.
        image_shape: [C, H, W] of one image.
        generator, n_frames, progress: as in ``DDPM.sample``.
        fast: as in ``DDPM.sample``: None the fastest correct path, False plain eager float32.

    Returns:
        A SampleTrace with images [N, C, H, W] and frames [K, N, C, H, W].
    """
    if len(image_shape) != 3:
        raise ValueError(f"image_shape must be [C, H, W], got {tuple(image_shape)}")
    w = torch.as_tensor(w, dtype=torch.float32, device=c.device)
    return ddpm.sample(model, (c.shape[0], *image_shape), c, w, generator=generator, n_frames=n_frames,
                       progress=progress, fast=fast, estimate=guided_noise)
