"""Pictures for the notebooks: image grids, loss curves, noise strips and animations.

Images are tensors in [-1, 1], shape [N, C, H, W]; everything here copies them to the CPU.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import torch


def to_display(images: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] in [-1, 1] -> [N, H, W, C] in [0, 1] on the CPU, ready for imshow."""
    return ((images.detach().float().cpu().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1)


def _draw(ax, image: torch.Tensor) -> None:
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(image)
    ax.set_xticks([])
    ax.set_yticks([])


def show_images(images: torch.Tensor, ncols: int = 8, titles: Sequence[str] | None = None,
                title: str | None = None, size: float = 1.2):
    """A grid of images with optional per-image titles; returns the Figure."""
    images = to_display(images)
    n = images.shape[0]
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.4 if title else 0)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < n:
            _draw(ax, images[i])
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
        else:
            ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def show_rows(rows: Mapping[str, torch.Tensor], size: float = 1.2, col_titles: Sequence[str] | None = None):
    """One labelled row per entry of ``rows`` (each [N, C, H, W], same N); returns the Figure."""
    names = list(rows)
    n = max(r.shape[0] for r in rows.values())
    fig, axes = plt.subplots(len(names), n, figsize=(size * n + 1.5, size * len(names)), squeeze=False)
    for r, name in enumerate(names):
        imgs = to_display(rows[name])
        for c in range(n):
            ax = axes[r, c]
            if c < imgs.shape[0]:
                _draw(ax, imgs[c])
            else:
                ax.axis("off")
            if r == 0 and col_titles is not None and c < len(col_titles):
                ax.set_title(col_titles[c], fontsize=8)
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    fig.tight_layout()
    return fig


def plot_losses(histories: Mapping[str, Sequence[float]], smooth: int = 20, log: bool = True):
    """Loss per step for one or more runs, with a moving average; returns the Figure."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for name, losses in histories.items():
        values = torch.tensor(list(losses), dtype=torch.float64)
        if values.numel() == 0:
            continue
        line, = ax.plot(values.numpy(), alpha=0.25)
        k = max(1, min(smooth, values.numel()))
        avg = values.unfold(0, k, 1).mean(1) if values.numel() >= k else values
        ax.plot(torch.arange(k - 1, k - 1 + avg.numel()).numpy(), avg.numpy(), color=line.get_color(),
                label=name)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    if log:
        ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    return fig


def animate(frames: torch.Tensor, labels: Sequence[str] | None = None, interval: int = 200,
            ncols: int = 8, size: float = 1.2):
    """An HTML animation of snapshots [K, N, C, H, W] (K frames of N images) for a notebook."""
    from matplotlib import animation
    from IPython.display import HTML

    k, n = frames.shape[:2]
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.4), squeeze=False)
    shown = [to_display(frames[i]) for i in range(k)]
    artists = []
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i < n:
            img = shown[0][i]
            artists.append(ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1))
        else:
            ax.axis("off")
    title = fig.suptitle(labels[0] if labels else "")

    def update(j):
        for i, artist in enumerate(artists):
            img = shown[j][i]
            artist.set_data(img[..., 0] if img.shape[-1] == 1 else img)
        if labels:
            title.set_text(labels[j])
        return artists

    anim = animation.FuncAnimation(fig, update, frames=k, interval=interval, blit=False)
    html = HTML(anim.to_jshtml())
    plt.close(fig)
    return html
