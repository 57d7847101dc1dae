"""The course's timestep convention, shared by the noise schedule and the networks that read t.

t is 0-indexed: ``t = 0`` is the first noising step (x_0 -> x_1 in Ho et al.'s 1-indexed notation)
and ``t = T - 1`` the last. A batch of images [N, C, H, W] carries one timestep per image, [N], so
one batch may mix timesteps; a Python int or a 0-d tensor stands for the same step for all of them.

This module sits at the bottom of ``utils``: the U-Nets (``utils.basic_unet``, ``utils.unet_utils``)
check their t with it without importing the diffusion maths (``utils.ddpm_utils``).
"""
from __future__ import annotations

import torch


def batch_timesteps(t: torch.Tensor | int, x: torch.Tensor, T: int | None = None) -> torch.Tensor:
    """t as one integer timestep per image of x: a long tensor [N] on x's device.

    Accepts what the libraries accept: a Python int or a 0-d tensor (the same step for the whole
    batch) or a tensor [N] of any integer dtype.

    Raises:
        TypeError: t is not integer (float timesteps are ambiguous: use t.long()).
        ValueError: t has the wrong shape, or (with T) lies outside [0, T).
    """
    t = torch.as_tensor(t, device=x.device)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"timesteps must be integers, got dtype {t.dtype}; use t.long()")
    if t.dim() == 0:
        t = t.expand(x.shape[0])
    if t.shape != (x.shape[0],):
        raise ValueError(f"expected one timestep per image, shape [{x.shape[0]}] (or one int for all), "
                         f"got shape {list(t.shape)}")
    if T is not None and t.numel() and (int(t.min()) < 0 or int(t.max()) >= T):
        raise ValueError(f"timesteps must lie in [0, {T}) (0-indexed, T={T}), "
                         f"got values from {int(t.min())} to {int(t.max())}")
    return t.long()
