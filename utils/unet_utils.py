"""The optimised U-Net of notebook 03 and the blocks it is built from.

Every block maps [N, C, H, W] to [N, C', H', W']. ``num_groups`` is the number of groups of
``nn.GroupNorm(num_groups, num_channels)`` (its first argument): GroupNorm(32, 64) normalises
32 groups of 2 channels each, per sample.

``EmbedBlock`` and ``dense_bottleneck``, which notebook 02's ``BasicUNet`` uses too, live in
``utils.blocks`` and are re-exported here; t is checked by ``utils.timesteps``.
"""
from __future__ import annotations

import math

import torch
from einops.layers.torch import Rearrange
from torch import nn

from .blocks import EmbedBlock, check_images, dense_bottleneck
from .timesteps import batch_timesteps

__all__ = ["GELUConvBlock", "RearrangePoolBlock", "DownBlock", "UpBlock", "SinusoidalPositionEmbedBlock",
           "EmbedBlock", "dense_bottleneck", "ResidualConvBlock", "SMALL_GROUPS", "BIG_GROUPS", "UNet"]


class GELUConvBlock(nn.Module):
    """Conv2d 3x3 (same size) -> GroupNorm -> GELU: [N, in_ch, H, W] -> [N, out_ch, H, W]."""

    def __init__(self, in_ch, out_ch, num_groups):
        super().__init__()
        layers = [
            nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=1, padding=1),
            nn.GroupNorm(num_groups, out_ch),
            nn.GELU(),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class RearrangePoolBlock(nn.Module):
    """Halve H and W without discarding anything: each 2x2 patch becomes 4 channels.

    [N, C, H, W] -> rearrange -> [N, 4C, H/2, W/2] -> GELUConvBlock -> [N, C, H/2, W/2]
    """

    def __init__(self, in_chs, num_groups):
        super().__init__()
        self.rearrange = Rearrange("b c (h p1) (w p2) -> b (c p1 p2) h w", p1=2, p2=2)
        self.conv = GELUConvBlock(4 * in_chs, in_chs, num_groups)

    def forward(self, x):
        x = self.rearrange(x)
        return self.conv(x)


class DownBlock(nn.Module):
    """Two GELUConvBlocks, then RearrangePoolBlock: [N, in_chs, H, W] -> [N, out_chs, H/2, W/2]."""

    def __init__(self, in_chs, out_chs, num_groups):
        super().__init__()
        layers = [
            GELUConvBlock(in_chs, out_chs, num_groups),
            GELUConvBlock(out_chs, out_chs, num_groups),
            RearrangePoolBlock(out_chs, num_groups),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class UpBlock(nn.Module):
    """Concatenate the skip, upsample x2, refine: x, skip [N, in_chs, H, W] -> [N, out_chs, 2H, 2W].

    ConvTranspose2d with kernel 2 and stride 2 writes each input pixel to its own 2x2 output patch,
    so no output pixel receives more contributions than its neighbours (no checkerboard overlap).
    """

    def __init__(self, in_chs, out_chs, num_groups):
        super().__init__()
        layers = [
            nn.ConvTranspose2d(2 * in_chs, out_chs, kernel_size=2, stride=2),
            GELUConvBlock(out_chs, out_chs, num_groups),
            GELUConvBlock(out_chs, out_chs, num_groups),
            GELUConvBlock(out_chs, out_chs, num_groups),
            GELUConvBlock(out_chs, out_chs, num_groups),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x, skip):
        x = torch.cat((x, skip), dim=1)
        return self.model(x)


class SinusoidalPositionEmbedBlock(nn.Module):
    """Sinusoidal embedding of a scalar per sample: [N] -> [N, dim] (dim even, at least 4).

    With half = dim // 2 and frequencies f_i = exp(-log(10000) * i / (half - 1)), i = 0..half-1,
    the output is cat(sin(t * f), cos(t * f)): the first half sines, the second half cosines
    (Vaswani et al. 2017, sec. 3.5, as used for timesteps by Ho et al. 2020).

    ``time`` may also be a number or a 0-d tensor (-> [dim]); the output keeps its floating dtype
    (integers give float32) and device, computed in at least float32.

    Raises:
        ValueError: dim is odd or below 4 (half - 1 frequencies must fit between 1 and 1/10000).
    """

    def __init__(self, dim):
        super().__init__()
        if not isinstance(dim, int) or dim < 4 or dim % 2:
            raise ValueError(f"dim must be an even integer of at least 4 (half sines, half cosines), got {dim!r}; "
                             f"for example {max(4, int(dim) // 2 * 2) if isinstance(dim, (int, float)) else 8}")
        self.dim = dim

    def forward(self, time):
        time = torch.as_tensor(time)
        out_dtype = time.dtype if time.is_floating_point() else torch.float32
        work = torch.promote_types(out_dtype, torch.float32)
        half = self.dim // 2
        scale = math.log(10000) / (half - 1)
        freqs = torch.exp(torch.arange(half, device=time.device, dtype=work) * -scale)
        args = time.to(work)[..., None] * freqs
        return torch.cat((args.sin(), args.cos()), dim=-1).to(out_dtype)


class ResidualConvBlock(nn.Module):
    """Two GELUConvBlocks whose outputs are added: x1 = conv1(x), x2 = conv2(x1), out = x1 + x2."""

    def __init__(self, in_chs, out_chs, num_groups):
        super().__init__()
        self.conv1 = GELUConvBlock(in_chs, out_chs, num_groups)
        self.conv2 = GELUConvBlock(out_chs, out_chs, num_groups)

    def forward(self, x):
        x1 = self.conv1(x)
        x2 = self.conv2(x1)
        return x1 + x2


SMALL_GROUPS = 8   # GroupNorm groups at full resolution (down0, up2, out)
BIG_GROUPS = 32    # GroupNorm groups in the deeper stages


def _check_groups(stage: str, channels: int, num_groups: int) -> None:
    if channels % num_groups:
        raise ValueError(
            f"{stage} has {channels} channels, which GroupNorm cannot split into {num_groups} groups; "
            f"choose channel counts divisible by {num_groups} (for example "
            f"{max(num_groups, channels // num_groups * num_groups)})"
        )


class UNet(nn.Module):
    """The optimised U-Net: predicts the noise in x_t given t (and, optionally, a class).

    Args:
        T: number of diffusion steps; t is divided by T before the sinusoidal embedding.
        img_ch: image channels. img_size: image height and width, divisible by 4.
        down_chs: channels of down0, down1 and down2.
        t_embed_dim: size of the sinusoidal time embedding.
        c_embed_dim: size of the class vector (notebook 04), or None for an unconditional model.

    forward(x [N, img_ch, S, S], t [N] integers in [0, T), c [N, c_embed_dim], c_mask [N, 1] (or [N],
    read as [N, 1]: 1 keeps a sample's class, 0 hides it)) returns the predicted noise, [N, img_ch, S, S].
    """

    def __init__(self, T=150, img_ch=1, img_size=16, down_chs=(64, 64, 128), t_embed_dim=8,
                 c_embed_dim=None):
        super().__init__()
        if img_size % 4:
            raise ValueError(
                f"img_size must be divisible by 4 (the U-Net halves it twice), got {img_size}; "
                f"resize the images, for example to {max(4, img_size // 4 * 4)}"
            )
        if len(down_chs) != 3:
            raise ValueError(f"down_chs needs three channel counts, got {tuple(down_chs)}")
        _check_groups("down0 (down_chs[0])", down_chs[0], SMALL_GROUPS)
        _check_groups("down1 (down_chs[1])", down_chs[1], BIG_GROUPS)
        _check_groups("down2 (down_chs[2])", down_chs[2], BIG_GROUPS)
        if t_embed_dim < 4 or t_embed_dim % 2:
            raise ValueError(f"t_embed_dim must be even and at least 4, got {t_embed_dim}")
        self.T = T
        self.img_ch = img_ch
        self.img_size = img_size
        self.c_embed_dim = c_embed_dim
        up_chs = tuple(down_chs[::-1])
        latent_size = img_size // 4

        self.down0 = ResidualConvBlock(img_ch, down_chs[0], SMALL_GROUPS)
        self.down1 = DownBlock(down_chs[0], down_chs[1], BIG_GROUPS)
        self.down2 = DownBlock(down_chs[1], down_chs[2], BIG_GROUPS)
        self.to_vec = nn.Sequential(nn.Flatten(), nn.GELU())

        self.dense_emb = dense_bottleneck(down_chs[2] * latent_size**2, down_chs[1])
        self.sinusoidaltime = SinusoidalPositionEmbedBlock(t_embed_dim)
        self.t_emb1 = EmbedBlock(t_embed_dim, up_chs[0])
        self.t_emb2 = EmbedBlock(t_embed_dim, up_chs[1])
        if c_embed_dim is not None:
            self.c_emb1 = EmbedBlock(c_embed_dim, up_chs[0])
            self.c_emb2 = EmbedBlock(c_embed_dim, up_chs[1])

        self.up0 = nn.Sequential(
            nn.Unflatten(1, (up_chs[0], latent_size, latent_size)),
            GELUConvBlock(up_chs[0], up_chs[0], BIG_GROUPS),
        )
        self.up1 = UpBlock(up_chs[0], up_chs[1], BIG_GROUPS)
        self.up2 = UpBlock(up_chs[1], up_chs[2], SMALL_GROUPS)
        # Global skip: the last stage sees up2 beside down0, the features of the input itself.
        self.out = nn.Sequential(
            nn.Conv2d(2 * up_chs[-1], up_chs[-1], 3, 1, 1),
            nn.GroupNorm(SMALL_GROUPS, up_chs[-1]),
            nn.ReLU(),
            nn.Conv2d(up_chs[-1], img_ch, 3, 1, 1),
        )

    def _check_inputs(self, x, t, c, c_mask):
        """Check the inputs; return t as a long tensor [N] (an int or 0-d tensor is broadcast) and
        c_mask as [N, 1] (a mask [N] is one entry per sample, not per feature of c)."""
        check_images("UNet", x, self.img_ch, self.img_size)
        t = batch_timesteps(t, x, self.T)
        if self.c_embed_dim is None:
            if c is not None or c_mask is not None:
                raise ValueError("this UNet is unconditional (c_embed_dim=None); call it as model(x, t)")
        else:
            if c is None or c_mask is None:
                raise ValueError(
                    "this UNet is class-conditional; call it as model(x, t, c, c_mask) with "
                    f"c of shape [N, {self.c_embed_dim}] and c_mask of shape [N, 1]"
                )
            if c.shape != (x.shape[0], self.c_embed_dim):
                raise ValueError(
                    f"c must have shape [{x.shape[0]}, {self.c_embed_dim}], got {list(c.shape)}"
                )
            if c_mask.shape == (x.shape[0],):
                c_mask = c_mask.reshape(-1, 1)
            if c_mask.shape != (x.shape[0], 1):
                raise ValueError(
                    f"c_mask must have shape [{x.shape[0]}, 1] (one keep/drop entry per sample), "
                    f"got {list(c_mask.shape)}"
                )
        return t, c_mask

    def forward(self, x, t, c=None, c_mask=None):
        """x [N, img_ch, S, S] in any floating dtype (the output keeps it), t [N] or one int."""
        t, c_mask = self._check_inputs(x, t, c, c_mask)
        down0 = self.down0(x)
        down1 = self.down1(down0)
        down2 = self.down2(down1)
        latent_vec = self.dense_emb(self.to_vec(down2))

        t = self.sinusoidaltime(t / self.T).to(x.dtype)
        t_emb1 = self.t_emb1(t)
        t_emb2 = self.t_emb2(t)

        up0 = self.up0(latent_vec)
        if self.c_embed_dim is None:
            up1 = self.up1(up0 + t_emb1, down2)
            up2 = self.up2(up1 + t_emb2, down1)
        else:
            c = (c * c_mask).to(x.dtype)  # a masked (dropped) class becomes the all-zero vector
            up1 = self.up1(self.c_emb1(c) * up0 + t_emb1, down2)
            up2 = self.up2(self.c_emb2(c) * up1 + t_emb2, down1)
        return self.out(torch.cat((up2, down0), dim=1))
