"""The pieces both of the course's U-Nets are built from: 01/02's ``BasicUNet`` and 03's ``UNet``.

They sit below both networks, so that notebook 01's model (``utils.basic_unet``) does not import
notebook 03's module (``utils.unet_utils``); each network module re-exports what it uses from here.
"""
from __future__ import annotations

import torch
from torch import nn


class EmbedBlock(nn.Module):
    """Linear -> GELU -> Linear, shaped to add to feature maps: [N, input_dim] -> [N, emb_dim, 1, 1].

    ``activation`` is the layer class between the two Linears (notebook 02's version uses nn.ReLU).
    """

    def __init__(self, input_dim, emb_dim, activation=nn.GELU):
        super().__init__()
        self.input_dim = input_dim
        layers = [
            nn.Linear(input_dim, emb_dim),
            activation(),
            nn.Linear(emb_dim, emb_dim),
            nn.Unflatten(1, (emb_dim, 1, 1)),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        x = x.view(-1, self.input_dim)
        return self.model(x)


def dense_bottleneck(latent_dim: int, hidden: int) -> nn.Sequential:
    """The U-Nets' fully connected bottleneck: [N, latent_dim] -> [N, latent_dim].

    Linear -> ReLU three times, through ``hidden`` units (the original course's ``dense_emb``).
    """
    return nn.Sequential(
        nn.Linear(latent_dim, hidden), nn.ReLU(),
        nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Linear(hidden, latent_dim), nn.ReLU(),
    )


def check_images(network: str, x: torch.Tensor, img_ch: int, img_size: int) -> None:
    """Refuse an input that is not a floating-point batch [N, img_ch, img_size, img_size].

    Raises:
        ValueError: x is not floating point, not 4-D, or of another channel count or size; the message
            names ``network`` and both shapes.
    """
    expected = [img_ch, img_size, img_size]
    if not x.is_floating_point() or x.dim() != 4 or list(x.shape[1:]) != expected:
        raise ValueError(
            f"{network} expects floating-point images of shape [N, {img_ch}, {img_size}, "
            f"{img_size}], got {x.dtype} {list(x.shape)}"
        )
