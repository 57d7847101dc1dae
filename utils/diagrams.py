"""A drawn diagram of the course's U-Net with the tensor shape after every stage (notebooks 01 and 03).

``draw_unet`` draws the U: the encoder going down on the left, the bottleneck at the bottom, the
decoder going up on the right, and the skip connections across, each labelled with the shape it
carries. ``mark_03_changes=True`` draws notebook 03's network instead and marks, in colour and with
numbers, what 03 changes (GroupNorm, GELU, rearrange pooling, the sinusoidal time embedding, the
residual block and the global skip, and the transposed convolution of kernel 2).

``unet_shapes`` computes the shapes from the arguments; ``stage_shapes`` measures them on a model
with forward hooks, so a notebook can draw the shapes its own network produced. Shapes are for one
image, ``[C, H, W]`` or ``[D]`` for the bottleneck vector (the batch axis is left out).

matplotlib is imported only when a diagram is drawn.
"""
from __future__ import annotations

import torch
from torch import nn

STAGES = ("input", "down0", "down1", "down2", "dense_emb", "up0", "up1", "up2", "out")
CHANGED = "#d95f02"   # the colour of what notebook 03 changes
PLAIN = "#4a6fa5"


def unet_shapes(img_ch: int = 1, img_size: int = 16, down_chs: tuple[int, int, int] = (16, 32, 64),
                global_skip: bool = False) -> dict[str, list[int]]:
    """The shape of one image after every stage of the course's U-Net (BasicUNet or 03's UNet).

    Args:
        img_ch: image channels. img_size: height and width, divisible by 4.
        down_chs: channels of down0, down1 and down2 (the decoder uses them in reverse).
        global_skip: add the concatenation of up2 with down0 before ``out`` (notebook 03).

    Returns:
        {stage: shape}, with the stages of ``STAGES`` plus the two skip concatenations
        ("concat1": up0 with down2, "concat2": up1 with down1) and, with ``global_skip``, "concat3".

    Raises:
        ValueError: if img_size is not divisible by 4 or down_chs does not hold three channel counts.
    """
    if img_size % 4 or img_size < 4:
        raise ValueError(f"img_size must be a positive multiple of 4 (the U-Net halves it twice), got {img_size}")
    if len(down_chs) != 3:
        raise ValueError(f"down_chs must hold three channel counts (down0, down1, down2), got {down_chs}")
    c0, c1, c2 = down_chs
    s0, s1, s2 = img_size, img_size // 2, img_size // 4
    shapes = {
        "input": [img_ch, s0, s0], "down0": [c0, s0, s0], "down1": [c1, s1, s1], "down2": [c2, s2, s2],
        "dense_emb": [c2 * s2 * s2], "up0": [c2, s2, s2], "concat1": [2 * c2, s2, s2],
        "up1": [c1, s1, s1], "concat2": [2 * c1, s1, s1], "up2": [c0, s0, s0], "out": [img_ch, s0, s0],
    }
    if global_skip:
        shapes["concat3"] = [2 * c0, s0, s0]
    return shapes


def stage_shapes(model: nn.Module, *inputs) -> dict[str, list[int]]:
    """Run ``model(*inputs)`` once and record the output shape of each stage it has.

    The stages are the children named in ``STAGES`` (both BasicUNet and 03's UNet use these
    names); the first input is recorded as "input". The batch axis is dropped from every shape.
    Runs without gradients and leaves the model's train/eval mode as it was.
    """
    shapes: dict[str, list[int]] = {"input": list(inputs[0].shape[1:])}
    handles = []
    for name in STAGES[1:]:
        module = getattr(model, name, None)
        if isinstance(module, nn.Module):
            handles.append(module.register_forward_hook(
                lambda _m, _i, out, name=name: shapes.__setitem__(name, list(out.shape[1:]))))
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return shapes


def _shape_text(shape) -> str:
    return " x ".join(str(s) for s in shape)


def draw_unet(img_ch: int = 1, img_size: int = 16, down_chs: tuple[int, int, int] | None = None, *,
              time_embed: bool = False, mark_03_changes: bool = False,
              shapes: dict[str, list[int]] | None = None, title: str | None = None):
    """Draw the U-Net as a U with the shape after every stage; return the matplotlib Figure.

    Args:
        img_ch, img_size, down_chs: the network's sizes; down_chs defaults to (16, 32, 64), the
            BasicUNet of notebooks 01 and 02, or to (64, 64, 128) with ``mark_03_changes``.
        time_embed: show notebook 02's time embedding (t / T through two small dense networks,
            added before up1 and up2). Implied by ``mark_03_changes``, which shows 03's sinusoidal one.
        mark_03_changes: draw notebook 03's U-Net and mark each of its changes in colour, numbered
            as in the list beside the drawing.
        shapes: shapes to print instead of the computed ones, e.g. ``stage_shapes(model, x)``.
        title: the figure title.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    if down_chs is None:
        down_chs = (64, 64, 128) if mark_03_changes else (16, 32, 64)
    shown = unet_shapes(img_ch, img_size, down_chs, global_skip=mark_03_changes)
    if shapes:
        shown.update({k: list(v) for k, v in shapes.items()})
    new = mark_03_changes

    # Changes of notebook 03, numbered; each box lists the numbers that apply to it.
    changes = [
        "GroupNorm instead of BatchNorm",
        "GELU instead of ReLU",
        "rearrange pooling: each 2x2 patch becomes 4 channels,\n   then a convolution (nothing thrown away)",
        "sinusoidal time embedding of t / T",
        "residual block: two convolutions, outputs added",
        "global skip: down0 (full resolution, before any\n   pooling) concatenated with up2 before out",
        "ConvTranspose2d kernel 2, stride 2 (even overlap)",
    ]
    y_level = {0: 4.0, 1: 2.6, 2: 1.2, "vec": -0.1}
    L, R, OUT = 0.0, 7.6, 12.2 if new else 11.4  # x of the left and right columns and of out
    MID = (L + R) / 2
    boxes = {  # name: (x, y, layers, numbers of the 03 changes it carries)
        "input": (-3.9, y_level[0], "the image x", ()),
        "down0": (L, y_level[0], "2 x (Conv-GN-GELU), added" if new else "Conv 3x3, BN, ReLU",
                  (5, 1, 2)),
        "down1": (L, y_level[1], "2 x (Conv-GN-GELU), rearrange pool" if new
                  else "2 x (Conv-BN-ReLU), MaxPool 2", (1, 2, 3)),
        "down2": (L, y_level[2], "2 x (Conv-GN-GELU), rearrange pool" if new
                  else "2 x (Conv-BN-ReLU), MaxPool 2", (1, 2, 3)),
        "dense_emb": (MID, y_level["vec"], "flatten, GELU; 3 Linear-ReLU" if new
                      else "flatten, ReLU; 3 Linear-ReLU", (2,)),
        "up0": (R, y_level[2], "unflatten, Conv-GN-GELU" if new else "unflatten, Conv-BN-ReLU", (1, 2)),
        "up1": (R, y_level[1], "ConvT 2x2 s2, 4 x (Conv-GN-GELU)" if new
                else "ConvT 3x3 s2, Conv-BN-ReLU", (7, 1, 2)),
        "up2": (R, y_level[0], "ConvT 2x2 s2, 4 x (Conv-GN-GELU)" if new
                else "ConvT 3x3 s2, Conv-BN-ReLU", (7, 1, 2)),
        "out": (OUT, y_level[0], "Conv-GN-ReLU, Conv" if new else "Conv-BN-ReLU, Conv", (1,)),
    }
    width, height = 3.4, 0.66

    fig, ax = plt.subplots(figsize=(15 if new else 12, 5.6 if new else 5.2))
    ax.set_xlim(-5.8, 19.6 if new else 13.3)
    ax.set_ylim(-0.6, 5.3 if new else 4.9)
    ax.set_aspect("equal")
    ax.axis("off")

    def box(name):
        x, y, layers, numbers = boxes[name]
        marked = new and bool(numbers)
        colour = CHANGED if marked else PLAIN
        ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height,
                                    boxstyle="round,pad=0.02,rounding_size=0.08", linewidth=2 if marked else 1.2,
                                    edgecolor=colour, facecolor="#fff3e6" if marked else "#eef3fa"))
        label = name if name != "dense_emb" else "to_vec, dense_emb"
        if marked:
            label += "  " + " ".join(f"({n})" for n in sorted(numbers))
        ax.text(x, y + 0.17, label, ha="center", va="center", fontsize=8.5, weight="bold", color=colour)
        ax.text(x, y - 0.02, layers, ha="center", va="center", fontsize=6.8)
        ax.text(x, y - 0.2, _shape_text(shown[name]), ha="center", va="center", fontsize=8, family="monospace")

    def arrow(a, b, colour="black", style="-|>", lw=1.2, **kw):
        ax.add_patch(FancyArrowPatch(a, b, arrowstyle=style, mutation_scale=10, color=colour, lw=lw,
                                     shrinkA=0, shrinkB=0, **kw))

    def node(x, y, symbol, colour="black"):
        ax.add_patch(plt.Circle((x, y), 0.13, facecolor="white", edgecolor=colour, lw=1.2, zorder=3))
        ax.text(x, y, symbol, ha="center", va="center", fontsize=8, zorder=4, color=colour)

    for name in boxes:
        box(name)
    half_w, half_h = width / 2, height / 2
    # the data path
    arrow((-3.9 + half_w, y_level[0]), (L - half_w, y_level[0]))
    arrow((L, y_level[0] - half_h), (L, y_level[1] + half_h))
    arrow((L, y_level[1] - half_h), (L, y_level[2] + half_h))
    ax.plot([L, L], [y_level[2] - half_h, y_level["vec"]], color="black", lw=1.2)
    arrow((L, y_level["vec"]), (MID - half_w, y_level["vec"]))
    ax.plot([MID + half_w, R], [y_level["vec"], y_level["vec"]], color="black", lw=1.2)
    arrow((R, y_level["vec"]), (R, y_level[2] - half_h))

    # right column: up0 -> (+ time) -> concat with the skip -> up1 -> ... -> up2 -> out
    skip_colour = "#2a9d8f"
    for level, skip_from, concat in ((2, "down2", "concat1"), (1, "down1", "concat2")):
        y_from, y_to = y_level[level] + half_h, y_level[level - 1] - half_h
        y_plus, y_cat = y_from + 0.22, y_to - 0.25
        has_time = time_embed or new
        arrow((R, y_from), (R, (y_plus - 0.13) if has_time else (y_cat - 0.13)))
        if has_time:
            node(R, y_plus, "+", CHANGED if new else "black")
            arrow((R, y_plus + 0.13), (R, y_cat - 0.13))
        node(R, y_cat, "C", skip_colour)
        arrow((R, y_cat + 0.13), (R, y_to))
        ax.text(R + 0.2, y_cat, f"concat: {_shape_text(shown[concat])}", fontsize=7, va="center", color=skip_colour)
        arrow((L + half_w, y_level[level] + 0.1), (R - 0.13, y_cat), colour=skip_colour, lw=1.5)
        ax.text(MID, (y_level[level] + y_cat) / 2 + 0.18,
                f"skip: {skip_from}, {_shape_text(shown[skip_from])}"
                + ("" if new else " (taken after max pooling)"),
                fontsize=7.5, ha="center", color=skip_colour, rotation=0)
        if has_time:
            name = f"t_emb{3 - level}" if new else f"temb_{3 - level}"
            channels = shown["up0"][0] if level == 2 else shown["up1"][0]
            arrow((R + 2.2, y_plus), (R + 0.13, y_plus), colour=CHANGED if new else "black")
            ax.text(R + 2.25, y_plus, f"{name}: {channels} values", fontsize=7, va="center",
                    color=CHANGED if new else "black")
    if time_embed or new:
        ax.text(R + 2.25, y_level[2] - 0.05,
                "(4) sinusoidal(t / T) -> Linear-GELU-Linear" if new else "t / T -> Linear-ReLU-Linear",
                fontsize=7.5, ha="left", color=CHANGED if new else "black",
                weight="bold" if new else "normal")
    if new:
        cat = (R + OUT) / 2
        node(cat, y_level[0], "C", CHANGED)
        arrow((R + half_w, y_level[0]), (cat - 0.13, y_level[0]))
        arrow((cat + 0.13, y_level[0]), (OUT - half_w, y_level[0]))
        ax.text(cat, y_level[0] - 0.45, f"concat:\n{_shape_text(shown['concat3'])}", fontsize=7, ha="center", color=CHANGED)
        top = y_level[0] + 0.85
        ax.plot([L, L, cat], [y_level[0] + half_h, top, top], color=CHANGED, lw=1.8)
        arrow((cat, top), (cat, y_level[0] + 0.13), colour=CHANGED, lw=1.8)
        ax.text(MID, top + 0.1, f"(6) global skip: down0, {_shape_text(shown['down0'])}, full resolution",
                fontsize=7.5, ha="center", color=CHANGED, weight="bold")
        ax.text(14.2, 4.9, "What notebook 03 changes", fontsize=9, weight="bold", color=CHANGED)
        for i, text in enumerate(changes, start=1):
            ax.text(14.2, 4.55 - 0.62 * (i - 1), f"({i}) {text}", fontsize=7.5, va="top", color=CHANGED)
    else:
        arrow((R + half_w, y_level[0]), (OUT - half_w, y_level[0]))
        ax.text(MID, y_level[0] + 0.55, "down0's full-resolution features do not cross: both skips are taken "
                "after pooling", fontsize=7.5, ha="center", color="#666666", style="italic")
    ax.text(-3.9, y_level[1], "shapes per image:\nchannels x height x width", fontsize=7.5, ha="center",
            va="center", color="#444444")
    ax.set_title(title or ("notebook 03's U-Net, changes marked" if new else
                           "BasicUNet with a time embedding (notebook 02)" if time_embed else "BasicUNet (notebook 01)"),
                 fontsize=11)
    fig.tight_layout()
    return fig
