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


# -- the layout: where each box sits and what it says ------------------------------------------------
# The changes of notebook 03, numbered; each box lists the numbers that apply to it.
CHANGES_03 = (
    "GroupNorm instead of BatchNorm",
    "GELU instead of ReLU",
    "rearrange pooling: each 2x2 patch becomes 4 channels,\n   then a convolution (nothing thrown away)",
    "sinusoidal time embedding of t / T",
    "residual block: two convolutions, outputs added",
    "global skip: down0 (full resolution, before any\n   pooling) concatenated with up2 before out",
    "ConvTranspose2d kernel 2, stride 2 (even overlap)",
)
# stage: (column, row, its layers in BasicUNet, its layers in 03's UNet, numbers of the 03 changes it carries)
BOXES = {
    "input": ("input", 0, "the image x", "the image x", ()),
    "down0": ("left", 0, "Conv 3x3, BN, ReLU", "2 x (Conv-GN-GELU), added", (5, 1, 2)),
    "down1": ("left", 1, "2 x (Conv-BN-ReLU), MaxPool 2", "2 x (Conv-GN-GELU), rearrange pool", (1, 2, 3)),
    "down2": ("left", 2, "2 x (Conv-BN-ReLU), MaxPool 2", "2 x (Conv-GN-GELU), rearrange pool", (1, 2, 3)),
    "dense_emb": ("middle", "vec", "flatten, ReLU; 3 Linear-ReLU", "flatten, GELU; 3 Linear-ReLU", (2,)),
    "up0": ("right", 2, "unflatten, Conv-BN-ReLU", "unflatten, Conv-GN-GELU", (1, 2)),
    "up1": ("right", 1, "ConvT 3x3 s2, Conv-BN-ReLU", "ConvT 2x2 s2, 4 x (Conv-GN-GELU)", (7, 1, 2)),
    "up2": ("right", 0, "ConvT 3x3 s2, Conv-BN-ReLU", "ConvT 2x2 s2, 4 x (Conv-GN-GELU)", (7, 1, 2)),
    "out": ("out", 0, "Conv-BN-ReLU, Conv", "Conv-GN-ReLU, Conv", (1,)),
}
ROWS = {0: 4.0, 1: 2.6, 2: 1.2, "vec": -0.1}  # y of each resolution, top to bottom, and of the bottleneck
BOX_W, BOX_H = 3.4, 0.66
NODE_R = 0.13      # radius of the + and C circles
SKIP = "#2a9d8f"   # the colour of the skip connections
# the two drawings: BasicUNet (notebooks 01, 02) and 03's UNet with its changes marked
FRAMES = {
    False: {"figsize": (12, 5.2), "xlim": (-5.8, 13.3), "ylim": (-0.6, 4.9), "out_x": 11.4},
    True: {"figsize": (15, 5.6), "xlim": (-5.8, 19.6), "ylim": (-0.6, 5.3), "out_x": 12.2},
}
# decoder levels bottom-up: (row it leaves, the skip it concatenates, that concatenation's shape, embedding no.)
DECODER = ((2, "down2", "concat1", 1), (1, "down1", "concat2", 2))


class _Canvas:
    """One drawing's axes, columns and style: boxes, arrows and the + / C nodes of the U."""

    def __init__(self, ax, new: bool, shown: dict[str, list[int]]):
        import matplotlib.pyplot as plt
        from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

        self.ax, self.new, self.shown = ax, new, shown
        self._circle, self._arrow, self._bbox = plt.Circle, FancyArrowPatch, FancyBboxPatch
        left, right = 0.0, 7.6
        self.x = {"input": -3.9, "left": left, "middle": (left + right) / 2, "right": right,
                  "out": FRAMES[new]["out_x"]}
        self.accent = CHANGED if new else "black"  # what 03 changes on the paths (time embedding, global skip)

    def box(self, name: str) -> None:
        column, row, plain, changed, numbers = BOXES[name]
        x, y = self.x[column], ROWS[row]
        marked = self.new and bool(numbers)
        colour = CHANGED if marked else PLAIN
        self.ax.add_patch(self._bbox((x - BOX_W / 2, y - BOX_H / 2), BOX_W, BOX_H,
                                     boxstyle="round,pad=0.02,rounding_size=0.08", linewidth=2 if marked else 1.2,
                                     edgecolor=colour, facecolor="#fff3e6" if marked else "#eef3fa"))
        label = name if name != "dense_emb" else "to_vec, dense_emb"
        if marked:
            label += "  " + " ".join(f"({n})" for n in sorted(numbers))
        self.ax.text(x, y + 0.17, label, ha="center", va="center", fontsize=8.5, weight="bold", color=colour)
        self.ax.text(x, y - 0.02, changed if self.new else plain, ha="center", va="center", fontsize=6.8)
        self.ax.text(x, y - 0.2, _shape_text(self.shown[name]), ha="center", va="center", fontsize=8,
                     family="monospace")

    def arrow(self, a, b, colour="black", style="-|>", lw=1.2, **kw) -> None:
        self.ax.add_patch(self._arrow(a, b, arrowstyle=style, mutation_scale=10, color=colour, lw=lw,
                                      shrinkA=0, shrinkB=0, **kw))

    def line(self, xs, ys, colour="black", lw=1.2) -> None:
        self.ax.plot(xs, ys, color=colour, lw=lw)

    def node(self, x, y, symbol, colour="black") -> None:
        self.ax.add_patch(self._circle((x, y), NODE_R, facecolor="white", edgecolor=colour, lw=1.2, zorder=3))
        self.ax.text(x, y, symbol, ha="center", va="center", fontsize=8, zorder=4, color=colour)


def _data_path(c: _Canvas) -> None:
    """The input into down0, down the left column, through the bottleneck and up into up0."""
    left, mid, right = c.x["left"], c.x["middle"], c.x["right"]
    half_w, half_h = BOX_W / 2, BOX_H / 2
    c.arrow((c.x["input"] + half_w, ROWS[0]), (left - half_w, ROWS[0]))
    c.arrow((left, ROWS[0] - half_h), (left, ROWS[1] + half_h))
    c.arrow((left, ROWS[1] - half_h), (left, ROWS[2] + half_h))
    c.line([left, left], [ROWS[2] - half_h, ROWS["vec"]])
    c.arrow((left, ROWS["vec"]), (mid - half_w, ROWS["vec"]))
    c.line([mid + half_w, right], [ROWS["vec"], ROWS["vec"]])
    c.arrow((right, ROWS["vec"]), (right, ROWS[2] - half_h))


def _decoder_level(c: _Canvas, row: int, skip_from: str, concat: str, k: int, has_time: bool) -> None:
    """From the box at ``row`` up to the next: (+ the time embedding), C the skip from ``skip_from``."""
    left, right, shown = c.x["left"], c.x["right"], c.shown
    y_from, y_to = ROWS[row] + BOX_H / 2, ROWS[row - 1] - BOX_H / 2
    y_plus, y_cat = y_from + 0.22, y_to - 0.25
    c.arrow((right, y_from), (right, (y_plus if has_time else y_cat) - NODE_R))
    if has_time:
        c.node(right, y_plus, "+", c.accent)
        c.arrow((right, y_plus + NODE_R), (right, y_cat - NODE_R))
    c.node(right, y_cat, "C", SKIP)
    c.arrow((right, y_cat + NODE_R), (right, y_to))
    c.ax.text(right + 0.2, y_cat, f"concat: {_shape_text(shown[concat])}", fontsize=7, va="center", color=SKIP)
    c.arrow((left + BOX_W / 2, ROWS[row] + 0.1), (right - NODE_R, y_cat), colour=SKIP, lw=1.5)
    c.ax.text(c.x["middle"], (ROWS[row] + y_cat) / 2 + 0.18,
              f"skip: {skip_from}, {_shape_text(shown[skip_from])}" + ("" if c.new else " (taken after max pooling)"),
              fontsize=7.5, ha="center", color=SKIP, rotation=0)
    if has_time:
        name = f"t_emb{k}" if c.new else f"temb_{k}"
        channels = shown["up0" if k == 1 else "up1"][0]
        c.arrow((right + 2.2, y_plus), (right + NODE_R, y_plus), colour=c.accent)
        c.ax.text(right + 2.25, y_plus, f"{name}: {channels} values", fontsize=7, va="center", color=c.accent)


def _top_row_03(c: _Canvas) -> None:
    """03's last stage: up2 concatenated with down0 (the global skip), then out; and the list of changes."""
    left, right, out, top_y = c.x["left"], c.x["right"], c.x["out"], ROWS[0]
    cat = (right + out) / 2
    c.node(cat, top_y, "C", CHANGED)
    c.arrow((right + BOX_W / 2, top_y), (cat - NODE_R, top_y))
    c.arrow((cat + NODE_R, top_y), (out - BOX_W / 2, top_y))
    c.ax.text(cat, top_y - 0.45, f"concat:\n{_shape_text(c.shown['concat3'])}", fontsize=7, ha="center",
              color=CHANGED)
    top = top_y + 0.85
    c.line([left, left, cat], [top_y + BOX_H / 2, top, top], colour=CHANGED, lw=1.8)
    c.arrow((cat, top), (cat, top_y + NODE_R), colour=CHANGED, lw=1.8)
    c.ax.text(c.x["middle"], top + 0.1, f"(6) global skip: down0, {_shape_text(c.shown['down0'])}, full resolution",
              fontsize=7.5, ha="center", color=CHANGED, weight="bold")
    c.ax.text(14.2, 4.9, "What notebook 03 changes", fontsize=9, weight="bold", color=CHANGED)
    for i, text in enumerate(CHANGES_03, start=1):
        c.ax.text(14.2, 4.55 - 0.62 * (i - 1), f"({i}) {text}", fontsize=7.5, va="top", color=CHANGED)


def _top_row_plain(c: _Canvas) -> None:
    """BasicUNet's last stage: up2 straight into out, and a note on what does not cross."""
    c.arrow((c.x["right"] + BOX_W / 2, ROWS[0]), (c.x["out"] - BOX_W / 2, ROWS[0]))
    c.ax.text(c.x["middle"], ROWS[0] + 0.55, "down0's full-resolution features do not cross: both skips are taken "
              "after pooling", fontsize=7.5, ha="center", color="#666666", style="italic")


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

    Raises:
        ValueError: as ``unet_shapes``, for sizes the U-Net cannot have.
    """
    import matplotlib.pyplot as plt

    new = mark_03_changes
    if down_chs is None:
        down_chs = (64, 64, 128) if new else (16, 32, 64)
    shown = unet_shapes(img_ch, img_size, down_chs, global_skip=new)
    if shapes:
        shown.update({k: list(v) for k, v in shapes.items()})
    frame = FRAMES[new]
    fig, ax = plt.subplots(figsize=frame["figsize"])
    ax.set_xlim(*frame["xlim"])
    ax.set_ylim(*frame["ylim"])
    ax.set_aspect("equal")
    ax.axis("off")
    c = _Canvas(ax, new, shown)
    for name in BOXES:
        c.box(name)
    _data_path(c)
    has_time = time_embed or new
    for row, skip_from, concat, k in DECODER:
        _decoder_level(c, row, skip_from, concat, k, has_time)
    if has_time:
        ax.text(c.x["right"] + 2.25, ROWS[2] - 0.05,
                "(4) sinusoidal(t / T) -> Linear-GELU-Linear" if new else "t / T -> Linear-ReLU-Linear",
                fontsize=7.5, ha="left", color=c.accent, weight="bold" if new else "normal")
    (_top_row_03 if new else _top_row_plain)(c)
    ax.text(c.x["input"], ROWS[1], "shapes per image:\nchannels x height x width", fontsize=7.5, ha="center",
            va="center", color="#444444")
    ax.set_title(title or ("notebook 03's U-Net, changes marked" if new else
                           "BasicUNet with a time embedding (notebook 02)" if time_embed else "BasicUNet (notebook 01)"),
                 fontsize=11)
    fig.tight_layout()
    return fig
