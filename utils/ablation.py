"""One U-Net with switches, to measure what each optimisation of notebook 03 contributes.

Each variant adds one change to the one before, in the order the course teaches them:

0. basic: BatchNorm + ReLU, MaxPool, ConvTranspose2d kernel 3 stride 2, t / T through Linear layers.
1. + GroupNorm/GELU in every convolution block.
2. + rearrange pooling, with its mirror on the way up: ConvTranspose2d kernel 2 stride 2 followed by
   four convolution blocks (the DownBlock and UpBlock of notebook 03).
3. + sinusoidal time embedding of t / T.
4. + residual first block and global skip: exactly ``utils.unet_utils.UNet`` (1,979,777 parameters).

All variants use the same channel widths (64, 64, 128), so they differ only in the changes above.

``SEPARATE_VARIANTS`` takes the bundled steps 1 and 2 apart, one change per step: GroupNorm, then
GELU, then rearrange pooling, then the kernel-2 transposed convolution, then the four convolution
blocks after it; then 3 and 4 as above. Its last variant is the same ``utils.unet_utils.UNet``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from einops.layers.torch import Rearrange
from torch import nn

from . import basic_unet, unet_utils
from .ddpm_utils import DDPM, batch_timesteps
from .runtime import eval_mode
from .unet_utils import BIG_GROUPS, SMALL_GROUPS


@dataclass(frozen=True)
class Variant:
    """Which changes of notebook 03 a model has.

    ``groupnorm``, ``gelu``, ``up_kernel2`` and ``deep_up`` switch one change each; left at None they
    follow the bundled switches (``gn_gelu`` for the first two, ``rearrange_pool`` for the last two).
    """

    name: str
    gn_gelu: bool = False
    rearrange_pool: bool = False
    sinusoidal: bool = False
    skips: bool = False
    groupnorm: bool | None = None    # GroupNorm instead of BatchNorm2d
    gelu: bool | None = None         # GELU instead of ReLU
    up_kernel2: bool | None = None   # ConvTranspose2d kernel 2, stride 2 instead of kernel 3
    deep_up: bool | None = None      # four conv blocks after the transposed convolution instead of one

    @property
    def uses_groupnorm(self) -> bool:
        return self.gn_gelu if self.groupnorm is None else self.groupnorm

    @property
    def uses_gelu(self) -> bool:
        return self.gn_gelu if self.gelu is None else self.gelu

    @property
    def uses_up_kernel2(self) -> bool:
        return self.rearrange_pool if self.up_kernel2 is None else self.up_kernel2

    @property
    def uses_deep_up(self) -> bool:
        return self.rearrange_pool if self.deep_up is None else self.deep_up


VARIANTS = (
    Variant("basic"),
    Variant("+ GroupNorm/GELU", gn_gelu=True),
    Variant("+ rearrange pooling", gn_gelu=True, rearrange_pool=True),
    Variant("+ sinusoidal time", gn_gelu=True, rearrange_pool=True, sinusoidal=True),
    Variant("+ residual & global skip", gn_gelu=True, rearrange_pool=True, sinusoidal=True, skips=True),
)


SEPARATE_VARIANTS = (
    Variant("basic"),
    Variant("+ GroupNorm", groupnorm=True),
    Variant("+ GELU", gn_gelu=True),
    Variant("+ rearrange pooling", gn_gelu=True, rearrange_pool=True, up_kernel2=False, deep_up=False),
    Variant("+ kernel-2 upsampling", gn_gelu=True, rearrange_pool=True, deep_up=False),
    Variant("+ 4 conv blocks per up", gn_gelu=True, rearrange_pool=True),
    Variant("+ sinusoidal time", gn_gelu=True, rearrange_pool=True, sinusoidal=True),
    Variant("+ residual & global skip", gn_gelu=True, rearrange_pool=True, sinusoidal=True, skips=True),
)


def _norm_act(variant: Variant, channels: int, groups: int) -> list[nn.Module]:
    norm = nn.GroupNorm(groups, channels) if variant.uses_groupnorm else nn.BatchNorm2d(channels)
    return [norm, nn.GELU() if variant.uses_gelu else nn.ReLU()]


def _conv_block(variant: Variant, in_ch: int, out_ch: int, groups: int) -> nn.Module:
    if variant.uses_groupnorm and variant.uses_gelu:
        return unet_utils.GELUConvBlock(in_ch, out_ch, groups)
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, padding=1), *_norm_act(variant, out_ch, groups))


class _Residual(nn.Module):
    def __init__(self, conv1: nn.Module, conv2: nn.Module):
        super().__init__()
        self.conv1, self.conv2 = conv1, conv2

    def forward(self, x):
        x1 = self.conv1(x)
        return x1 + self.conv2(x1)


class _Up(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x, skip):
        return self.model(torch.cat((x, skip), dim=1))


class AblationUNet(nn.Module):
    """The U-Net of notebook 03 with each optimisation switchable; forward(x, t) -> noise."""

    def __init__(self, variant: Variant, T=150, img_ch=1, img_size=16, down_chs=(64, 64, 128), t_embed_dim=8):
        super().__init__()
        self.variant, self.T = variant, T
        v, up_chs, latent = variant, tuple(down_chs[::-1]), img_size // 4

        if v.skips:
            self.down0 = _Residual(_conv_block(v, img_ch, down_chs[0], SMALL_GROUPS),
                                   _conv_block(v, down_chs[0], down_chs[0], SMALL_GROUPS))
        else:
            self.down0 = _conv_block(v, img_ch, down_chs[0], SMALL_GROUPS)
        self.down1 = self._down(down_chs[0], down_chs[1])
        self.down2 = self._down(down_chs[1], down_chs[2])
        self.to_vec = nn.Sequential(nn.Flatten(), nn.GELU() if v.uses_gelu else nn.ReLU())
        self.dense_emb = unet_utils.dense_bottleneck(down_chs[2] * latent**2, down_chs[1])
        if v.sinusoidal:
            self.time = unet_utils.SinusoidalPositionEmbedBlock(t_embed_dim)
            self.t_emb1 = unet_utils.EmbedBlock(t_embed_dim, up_chs[0])
            self.t_emb2 = unet_utils.EmbedBlock(t_embed_dim, up_chs[1])
        else:
            self.time = nn.Identity()
            self.t_emb1 = basic_unet.EmbedBlock(1, up_chs[0])
            self.t_emb2 = basic_unet.EmbedBlock(1, up_chs[1])
        self.up0 = nn.Sequential(nn.Unflatten(1, (up_chs[0], latent, latent)),
                                 _conv_block(v, up_chs[0], up_chs[0], BIG_GROUPS))
        self.up1 = self._up(up_chs[0], up_chs[1], BIG_GROUPS)
        self.up2 = self._up(up_chs[1], up_chs[2], SMALL_GROUPS)
        out_in = 2 * up_chs[-1] if v.skips else up_chs[-1]
        norm = nn.GroupNorm(SMALL_GROUPS, up_chs[-1]) if v.uses_groupnorm else nn.BatchNorm2d(up_chs[-1])
        self.out = nn.Sequential(nn.Conv2d(out_in, up_chs[-1], 3, 1, 1), norm, nn.ReLU(),
                                 nn.Conv2d(up_chs[-1], img_ch, 3, 1, 1))

    def _down(self, in_ch, out_ch):
        v = self.variant
        if v.rearrange_pool:
            pool = nn.Sequential(Rearrange("b c (h p1) (w p2) -> b (c p1 p2) h w", p1=2, p2=2),
                                 _conv_block(v, 4 * out_ch, out_ch, BIG_GROUPS))
        else:
            pool = nn.MaxPool2d(2)
        return nn.Sequential(_conv_block(v, in_ch, out_ch, BIG_GROUPS), _conv_block(v, out_ch, out_ch, BIG_GROUPS),
                             pool)

    def _up(self, in_ch, out_ch, groups):
        v = self.variant
        if v.uses_up_kernel2:
            layers = [nn.ConvTranspose2d(2 * in_ch, out_ch, 2, 2)]
        else:
            layers = [nn.ConvTranspose2d(2 * in_ch, out_ch, 3, 2, 1, 1)]
        if v.uses_deep_up:
            layers += [_conv_block(v, out_ch, out_ch, groups) for _ in range(4)]
        else:
            layers += [*_norm_act(v, out_ch, groups), _conv_block(v, out_ch, out_ch, groups)]
        return _Up(nn.Sequential(*layers))

    def forward(self, x, t):
        t = batch_timesteps(t, x, self.T)
        down0 = self.down0(x)
        down1 = self.down1(down0)
        down2 = self.down2(down1)
        latent_vec = self.dense_emb(self.to_vec(down2))
        t = self.time(t / self.T).to(x.dtype)
        up0 = self.up0(latent_vec)
        up1 = self.up1(up0 + self.t_emb1(t), down2)
        up2 = self.up2(up1 + self.t_emb2(t), down1)
        return self.out(torch.cat((up2, down0), dim=1) if self.variant.skips else up2)


@torch.no_grad()
def evaluation_loss(model: nn.Module, ddpm: DDPM, images: torch.Tensor, seed: int = 0) -> float:
    """Noise-prediction loss on fixed images with fixed timesteps and noise (comparable across models).

    Args:
        images: held-out images [N, C, H, W] on the model's device.
        seed: fixes the timesteps and noise, so every model sees exactly the same task.
    """
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(0, ddpm.T, (images.shape[0],), generator=g).to(images.device)
    noise = torch.randn(images.shape, generator=g).to(images.device)
    with eval_mode(model):
        return ddpm.training_loss(model, images, t, noise=noise).item()
