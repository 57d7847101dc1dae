"""The plain U-Net of notebooks 01 and 02: BatchNorm, ReLU, MaxPool, no global skip.

Notebook 03 keeps it as the "before" of its before/after comparison.
"""
from __future__ import annotations

import torch
from torch import nn

from . import blocks
from .blocks import check_images, dense_bottleneck
from .timesteps import batch_timesteps


class DownBlock(nn.Module):
    """(Conv 3x3 -> BatchNorm -> ReLU) twice, then MaxPool 2: [N, in, H, W] -> [N, out, H/2, W/2]."""

    def __init__(self, in_ch, out_ch):
        super().__init__()
        layers = [
            nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=1, padding=1),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(),
            nn.Conv2d(out_ch, out_ch, kernel_size=3, stride=1, padding=1),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class UpBlock(nn.Module):
    """Concatenate the skip, ConvTranspose2d x2, Conv -> BatchNorm -> ReLU.

    x, skip [N, in, H, W] -> [N, out, 2H, 2W]. Kernel 3 with stride 2 makes neighbouring output
    pixels receive different numbers of contributions: the uneven overlap behind checkerboards.
    """

    def __init__(self, in_ch, out_ch):
        super().__init__()
        layers = [
            nn.ConvTranspose2d(2 * in_ch, out_ch, kernel_size=3, stride=2, padding=1, output_padding=1),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(),
            nn.Conv2d(out_ch, out_ch, kernel_size=3, stride=1, padding=1),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x, skip):
        x = torch.cat((x, skip), dim=1)
        return self.model(x)


class EmbedBlock(blocks.EmbedBlock):
    """Linear -> ReLU -> Linear, shaped to add to feature maps: [N, input_dim] -> [N, emb_dim, 1, 1]."""

    def __init__(self, input_dim, emb_dim):
        super().__init__(input_dim, emb_dim, activation=nn.ReLU)


class BasicUNet(nn.Module):
    """The U-Net of notebooks 01 (a denoiser) and 02 (a DDPM noise predictor).

    Args:
        img_ch: image channels. img_size: height and width, divisible by 4.
        down_chs: channels of down0, down1 and down2.
        time_embed: add EmbedBlocks of t / T before up1 and up2 (notebook 02).
        T: number of diffusion steps, used only with ``time_embed``.

    forward(x [N, img_ch, S, S]) -> [N, img_ch, S, S], or forward(x, t) with ``time_embed``,
    t an integer tensor [N] in [0, T) or one int for the batch; x may be any floating dtype (kept).
    """

    def __init__(self, img_ch=1, img_size=16, down_chs=(16, 32, 64), time_embed=False, T=150):
        super().__init__()
        if img_size % 4:
            raise ValueError(
                f"img_size must be divisible by 4 (the U-Net halves it twice), got {img_size}"
            )
        self.img_ch = img_ch
        self.img_size = img_size
        self.time_embed = time_embed
        self.T = T
        up_chs = tuple(down_chs[::-1])
        latent_size = img_size // 4

        self.down0 = nn.Sequential(
            nn.Conv2d(img_ch, down_chs[0], 3, padding=1),
            nn.BatchNorm2d(down_chs[0]),
            nn.ReLU(),
        )
        self.down1 = DownBlock(down_chs[0], down_chs[1])
        self.down2 = DownBlock(down_chs[1], down_chs[2])
        self.to_vec = nn.Sequential(nn.Flatten(), nn.ReLU())

        self.dense_emb = dense_bottleneck(down_chs[2] * latent_size**2, down_chs[1])
        if time_embed:
            self.temb_1 = EmbedBlock(1, up_chs[0])
            self.temb_2 = EmbedBlock(1, up_chs[1])

        self.up0 = nn.Sequential(
            nn.Unflatten(1, (up_chs[0], latent_size, latent_size)),
            nn.Conv2d(up_chs[0], up_chs[0], 3, padding=1),
            nn.BatchNorm2d(up_chs[0]),
            nn.ReLU(),
        )
        self.up1 = UpBlock(up_chs[0], up_chs[1])
        self.up2 = UpBlock(up_chs[1], up_chs[2])
        self.out = nn.Sequential(
            nn.Conv2d(up_chs[-1], up_chs[-1], 3, 1, 1),
            nn.BatchNorm2d(up_chs[-1]),
            nn.ReLU(),
            nn.Conv2d(up_chs[-1], img_ch, 3, 1, 1),
        )

    def forward(self, x, t=None):
        check_images("BasicUNet", x, self.img_ch, self.img_size)
        if self.time_embed and t is None:
            raise ValueError("this BasicUNet has a time embedding; call it as model(x, t)")
        if not self.time_embed and t is not None:
            raise ValueError("this BasicUNet has no time embedding (time_embed=False); call model(x)")
        down0 = self.down0(x)
        down1 = self.down1(down0)
        down2 = self.down2(down1)
        latent_vec = self.dense_emb(self.to_vec(down2))
        up0 = self.up0(latent_vec)
        if self.time_embed:
            t = (batch_timesteps(t, x, self.T) / self.T).to(x.dtype)
            up1 = self.up1(up0 + self.temb_1(t), down2)
            up2 = self.up2(up1 + self.temb_2(t), down1)
        else:
            up1 = self.up1(up0, down2)
            up2 = self.up2(up1, down1)
        return self.out(up2)
