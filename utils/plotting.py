"""Pictures for the notebooks: image grids, loss curves, noise strips and animations.

Images are tensors in [-1, 1], shape [N, C, H, W]; everything here copies them to the CPU.
"""
from __future__ import annotations

import base64
import math
import re
import struct
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


# Matplotlib's animation controls draw their icons with a font loaded from the internet; these
# characters need no download.
_ANIMATION_ICONS = {
    "fa fa-minus": "\u2212", "fa fa-fast-backward": "|\u25c0\u25c0", "fa fa-step-backward": "|\u25c0",
    "fa fa-play fa-flip-horizontal": "\u25c0", "fa fa-pause": "\u275a\u275a", "fa fa-play": "\u25b6",
    "fa fa-step-forward": "\u25b6|", "fa fa-fast-forward": "\u25b6\u25b6|", "fa fa-plus": "+",
}


def animate(frames: torch.Tensor, labels: Sequence[str] | None = None, interval: int = 200,
            ncols: int = 8, size: float = 1.2):
    """An HTML animation of snapshots, with a slider and play buttons that work offline.

    Args:
        frames: [K, N, C, H, W] in [-1, 1], K frames of N images (C = 1 or 3).
        labels: one title per frame (K of them), or None. The figure is made wide enough for the
            longest title, so no title is cut off, however few images there are.
        interval: milliseconds between frames when playing.
        ncols, size: images per row, and the side of one image in inches.

    Returns:
        An ``IPython.display.HTML`` with every frame embedded as a PNG; it loads nothing from the
        internet.

    Raises:
        ValueError: if ``frames`` is not 5-dimensional or ``labels`` does not have one entry per frame.
    """
    from IPython.display import HTML
    from matplotlib import animation

    k, n = _frame_counts(frames, labels)
    fig, axes, title = _animation_figure(n, labels, ncols, size)
    shown = [to_display(frames[i]) for i in range(k)]
    artists = _image_artists(axes, shown[0])
    title.set_text(labels[0] if labels else "")

    def update(j):
        for artist, img in zip(artists, shown[j]):
            artist.set_data(_pixels(img))
        if labels:
            title.set_text(labels[j])
        return artists

    anim = animation.FuncAnimation(fig, update, frames=k, interval=interval, blit=False)
    html = anim.to_jshtml()
    plt.close(fig)
    return HTML(_offline_player(html))


def _frame_counts(frames: torch.Tensor, labels: Sequence[str] | None) -> tuple[int, int]:
    """(K frames, N images a frame) of ``animate``'s frames [K, N, C, H, W], checked against the labels."""
    if frames.dim() != 5:
        raise ValueError(f"frames must have shape [K, N, C, H, W], got {list(frames.shape)}")
    k, n = frames.shape[:2]
    if labels is not None and len(labels) != k:
        raise ValueError(f"labels must have one entry per frame: {k} frames, {len(labels)} labels")
    return k, n


def _animation_figure(n: int, labels: Sequence[str] | None, ncols: int, size: float):
    """The figure of an animation of ``n`` images: (figure, axes [rows, cols], its title), as wide
    as the longest label needs."""
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    title_h = 0.45 if labels else 0.05
    grid_w, height = size * ncols, size * nrows + title_h
    fig, axes = plt.subplots(nrows, ncols, figsize=(grid_w, height), squeeze=False)
    title = fig.suptitle("", y=1 - 0.08 / height, va="top")
    width = grid_w
    if labels:
        renderer = fig.canvas.get_renderer()
        for label in labels:
            title.set_text(label)
            width = max(width, title.get_window_extent(renderer).width / fig.dpi + 0.3)
        fig.set_size_inches(width, height)
    margin = (width - grid_w) / 2 / width   # the images keep their size, centred under the title
    fig.subplots_adjust(left=margin + 0.01, right=1 - margin - 0.01, bottom=0.02 / height,
                        top=1 - title_h / height, wspace=0.05, hspace=0.05)
    return fig, axes, title


def _pixels(image: torch.Tensor):
    """One displayable image [H, W, C] as imshow takes it: [H, W] for gray, else [H, W, C]."""
    return (image[..., 0] if image.shape[-1] == 1 else image).numpy()


def _image_artists(axes, first: torch.Tensor) -> list:
    """Show the first frame's images [N, H, W, C] on ``axes`` (the axes left over are hidden);
    return one image artist per image, to update frame by frame."""
    artists = []
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i < first.shape[0]:
            artists.append(ax.imshow(_pixels(first[i]), cmap="gray", vmin=0, vmax=1))
        else:
            ax.axis("off")
    return artists


def _offline_player(html: str) -> str:
    """Matplotlib's animation player with nothing loaded from the internet, and the first frame and
    its size written on the <img> itself: JupyterLab does not lay out cells scrolled out of view
    (content-visibility), and an image that only the player's script fills while its cell is out of
    view can stay 0 x 0 pixels once scrolled back."""
    html = re.sub(r'<link rel="stylesheet"\s+href="https?://[^"]*">', "", html)
    for icon, text in _ANIMATION_ICONS.items():
        html = html.replace(f'<i class="{icon}"></i>', text)
    first = re.search(r'frames\[0\] = "data:image/png;base64,([^"]*)"', html).group(1).replace("\\\n", "")
    frame_w, frame_h = struct.unpack(">II", base64.b64decode(first[:32])[16:24])  # the PNG's IHDR chunk
    return re.sub(r'<img id="(_anim_img\w+)">',
                  rf'<img id="\1" src="data:image/png;base64,{first}" width="{frame_w}" height="{frame_h}" '
                  r'style="display: block; margin: 0 auto" alt="animation frame">', html)


BLOCK_POSITIONS = ("top-left", "top-right", "bottom-left", "bottom-right")


def show_rearrange_pooling(size: int = 4):
    """Picture of rearrange pooling, ``b c (h p1) (w p2) -> b (c p1 p2) h w`` with p1 = p2 = 2.

    Left: a one-channel size x size image holding 1 .. size**2, each pixel coloured by its position in
    its 2x2 block. Right: the four channels of the [4, size/2, size/2] result; channel k collects the
    pixels of colour k. Nothing is dropped. Returns the Figure.
    """
    if size < 2 or size % 2:
        raise ValueError(f"size must be even and at least 2, got {size}")
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import FancyArrowPatch

    colours = ListedColormap(["#4e79a7", "#f28e2b", "#59a14f", "#e15759"])
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    position = (rows % 2) * 2 + cols % 2                      # 0..3: where a pixel sits in its 2x2 block
    value = torch.arange(1, size * size + 1).reshape(size, size)
    fig = plt.figure(figsize=(10, 4))
    grid = fig.add_gridspec(2, 4, width_ratios=[2.2, 0.5, 1, 1], wspace=0.35, hspace=0.45)
    ax = fig.add_subplot(grid[:, 0])
    ax.imshow(position, cmap=colours, vmin=-0.5, vmax=3.5)
    for (i, j), v in zip(torch.cartesian_prod(torch.arange(size), torch.arange(size)).tolist(), value.flatten().tolist()):
        ax.text(j, i, str(v), ha="center", va="center", color="white", fontsize=10, fontweight="bold")
    for k in range(0, size + 1, 2):                          # thick lines around the 2x2 blocks
        ax.axhline(k - 0.5, color="black", lw=2)
        ax.axvline(k - 0.5, color="black", lw=2)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"[1, 1, {size}, {size}]: 2x2 blocks")
    half = size // 2
    for k in range(4):
        sub = fig.add_subplot(grid[k // 2, 2 + k % 2])
        sub.imshow(torch.full((half, half), k), cmap=colours, vmin=-0.5, vmax=3.5)
        picked = value[k // 2::2, k % 2::2]
        for i in range(half):
            for j in range(half):
                sub.text(j, i, str(int(picked[i, j])), ha="center", va="center", color="white", fontsize=9,
                         fontweight="bold")
        sub.set_xticks([])
        sub.set_yticks([])
        sub.set_title(f"channel {k}: {BLOCK_POSITIONS[k]}", fontsize=9)
    fig.add_artist(FancyArrowPatch((0.43, 0.5), (0.53, 0.5), transform=fig.transFigure, arrowstyle="-|>",
                                   mutation_scale=20, lw=2, color="black"))
    fig.text(0.48, 0.56, "rearrange", ha="center", fontsize=9)
    fig.suptitle(f"[1, 1, {size}, {size}] -> [1, 4, {half}, {half}]: the same {size * size} numbers, as channels", y=1.02)
    return fig


def show_guidance_2d(e_uncond: Sequence[float], e_cond: Sequence[float], weights: Sequence[float] = (-1, 0, 1, 2)):
    """The guided noise estimate drawn for a 2-D toy: (1 + w) * e_cond - w * e_uncond for each weight.

    Arrows from the origin to ``e_uncond`` and ``e_cond`` (two 2-D points); the guided estimates all lie
    on the line through them, at e_cond + w * (e_cond - e_uncond): w = -1 gives e_uncond, w = 0 gives
    e_cond, w > 0 goes past e_cond. Returns the Figure.
    """
    u = torch.as_tensor(e_uncond, dtype=torch.float64).flatten()
    c = torch.as_tensor(e_cond, dtype=torch.float64).flatten()
    if u.numel() != 2 or c.numel() != 2:
        raise ValueError(f"e_uncond and e_cond must be 2-D points, got {u.numel()} and {c.numel()} values")
    fig, ax = plt.subplots(figsize=(6, 5))
    guided = {float(w): c + float(w) * (c - u) for w in weights}
    ends = torch.stack([u, c, *guided.values(), torch.zeros(2, dtype=torch.float64)])
    lo, hi = ends.min(0).values, ends.max(0).values
    span = torch.linspace(min(-1.5, *weights) - 0.5, max(2.5, *weights) + 0.5, 2, dtype=torch.float64)
    line = c[None] + span[:, None] * (c - u)[None]
    ax.plot(line[:, 0], line[:, 1], ls="--", color="grey", lw=1, label="e_cond + w (e_cond - e_uncond)")
    for point, colour, name in ((u, "#4e79a7", "e_uncond"), (c, "#e15759", "e_cond")):
        ax.annotate("", xy=point.tolist(), xytext=(0, 0), arrowprops=dict(arrowstyle="-|>", color=colour, lw=2))
        ax.text(*(point * 1.04).tolist(), name, color=colour, fontsize=11, fontweight="bold")
    ax.annotate("", xy=c.tolist(), xytext=u.tolist(), arrowprops=dict(arrowstyle="-|>", color="black", lw=1.5))
    mid = (u + c) / 2
    ax.text(*mid.tolist(), "  e_cond - e_uncond", fontsize=9)
    size = float((hi - lo).max()) * 1.3 + 0.2
    centre = (hi + lo) / 2
    for w, point in guided.items():
        ax.plot(*point.tolist(), "o", color="#59a14f", ms=7)
        ax.text(point[0].item() + 0.03 * size, point[1].item() - 0.03 * size, f"w = {w:g}", fontsize=9,
                ha="left", va="top", color="#2f6b2a")
    ax.plot(0, 0, "k.")
    ax.set_aspect("equal")
    ax.set_xlim(centre[0].item() - size / 2, centre[0].item() + size / 2)
    ax.set_ylim(centre[1].item() - size / 2, centre[1].item() + size / 2)
    ax.set_title("guided estimate (1 + w) e_cond - w e_uncond (green) for each w")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig
