"""Numbers that describe generated images, so notebooks can compare models without eyeballing."""
from __future__ import annotations

import torch


def checkerboard_share(images: torch.Tensor) -> float:
    """Share of an image's variation at the finest grid period (2 pixels), averaged over a batch.

    A checkerboard artifact alternates from one pixel to the next, so it puts power at the
    highest spatial frequencies: the FFT bins at (H/2, *) and (*, W/2). Natural images put
    little there. Returns that power divided by the total power without the mean (DC) term.

    Args:
        images: [N, C, H, W] with even H and W.
    """
    if images.dim() != 4 or images.shape[-1] % 2 or images.shape[-2] % 2:
        raise ValueError(f"expected [N, C, H, W] with even H and W, got {list(images.shape)}")
    x = images.detach().double()
    power = torch.fft.fft2(x - x.mean(dim=(-2, -1), keepdim=True)).abs().pow(2)
    h, w = images.shape[-2] // 2, images.shape[-1] // 2
    nyquist = power[..., h, :].sum(-1) + power[..., :, w].sum(-1) - power[..., h, w]
    total = power.sum(dim=(-2, -1)).clamp_min(1e-12)
    return float((nyquist / total).mean())


def pixel_spread(images: torch.Tensor) -> float:
    """Mean per-pixel standard deviation across a batch: how different the images are from each other."""
    if images.dim() != 4 or images.shape[0] < 2:
        raise ValueError(f"expected at least two images [N, C, H, W], got {list(images.shape)}")
    return float(images.detach().double().std(dim=0).mean())
