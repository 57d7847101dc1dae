"""Small helpers for the notebooks' interactive explorations (notebooks 01 and 02).

- Transposed convolutions: the output size and the *overlap count* of each output pixel, i.e. how
  many input pixels a ``ConvTranspose2d`` adds together there. Uneven counts are the structural
  cause of checkerboard artifacts (Odena et al., "Deconvolution and Checkerboard Artifacts", 2016).
- ``draw_overlap``: the counts as a labelled heat map, for the widget of notebook 01.

The counting functions are plain torch arithmetic; ``draw_overlap`` imports matplotlib only when
it is called, so importing this module draws nothing in.
"""
from __future__ import annotations

import torch


def _check_conv_transpose_args(size: int, kernel: int, stride: int, padding: int, output_padding: int) -> None:
    for name, value, low in (("size", size, 1), ("kernel", kernel, 1), ("stride", stride, 1),
                             ("padding", padding, 0), ("output_padding", output_padding, 0)):
        if not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if output_padding >= stride:
        raise ValueError(
            f"output_padding must be smaller than stride (PyTorch's rule), got output_padding="
            f"{output_padding} with stride={stride}"
        )


def conv_transpose_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0,
                               output_padding: int = 0) -> int:
    """Height (or width) of a ConvTranspose2d's output for an input of height ``size``.

    out = (size - 1) * stride - 2 * padding + kernel + output_padding   (dilation 1)
    """
    _check_conv_transpose_args(size, kernel, stride, padding, output_padding)
    return (size - 1) * stride - 2 * padding + kernel + output_padding


def overlap_counts_1d(size: int, kernel: int, stride: int = 1, padding: int = 0,
                      output_padding: int = 0) -> torch.Tensor:
    """How many input positions contribute to each output position, along one axis.

    Input position i paints kernel taps k = 0 .. kernel-1 onto output position
    j = i * stride + k - padding; positions that fall outside [0, out) are cropped away.

    Returns:
        An integer tensor of shape [out] (see ``conv_transpose_output_size``).
    """
    out = conv_transpose_output_size(size, kernel, stride, padding, output_padding)
    if out < 1:
        raise ValueError(
            f"this transposed convolution has an empty output (size {out}); use less padding "
            f"or a bigger kernel"
        )
    j = torch.arange(size).unsqueeze(1) * stride + torch.arange(kernel).unsqueeze(0) - padding
    j = j[(j >= 0) & (j < out)]
    return torch.bincount(j, minlength=out)


def overlap_counts(size: int, kernel: int, stride: int = 1, padding: int = 0,
                   output_padding: int = 0) -> torch.Tensor:
    """Overlap counts of a square ConvTranspose2d on a size x size input, shape [out, out].

    Entry (r, c) is the number of input pixels whose kernel footprint covers output pixel
    (r, c): the product of the counts along the rows and along the columns. It equals the
    output of the layer with every weight and every input set to one and no bias.
    """
    counts = overlap_counts_1d(size, kernel, stride, padding, output_padding)
    return counts.unsqueeze(1) * counts.unsqueeze(0)


def draw_overlap(counts: torch.Tensor, title: str | None = None, size: float = 0.45):
    """A heat map of ``counts`` [H, W] with each count written in its cell; returns the Figure."""
    import matplotlib.pyplot as plt

    counts = counts.detach().cpu()
    h, w = counts.shape
    fig, ax = plt.subplots(figsize=(max(2.5, size * w + 1.2), max(2.2, size * h + 0.6)))
    image = ax.imshow(counts.numpy(), cmap="viridis", vmin=0, vmax=max(int(counts.max()), 1))
    if h * w <= 400:
        top = int(counts.max())
        for r in range(h):
            for c in range(w):
                value = int(counts[r, c])
                ax.text(c, r, str(value), ha="center", va="center", fontsize=7,
                        color="black" if value > 0.6 * top else "white")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="input pixels")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
