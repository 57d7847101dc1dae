"""Reading a frame of an animation back: shared by the animation's unit test and its browser test."""
from __future__ import annotations

import io

import matplotlib.image
import torch


def title_columns(png: bytes) -> tuple[int, int, int]:
    """(first, last) column holding dark pixels in the title band at the top of a frame, and the width.

    The title band is the first run of rows with dark pixels, down to the first blank row.
    """
    pixels = torch.from_numpy(matplotlib.image.imread(io.BytesIO(png), format="png")[..., :3].copy())
    dark = pixels.mean(-1) < 0.5                          # [H, W]
    rows = dark.any(1).nonzero().flatten().tolist()
    assert rows, "the frame is blank"
    end = rows[0]
    while end + 1 < dark.shape[0] and dark[end + 1].any():
        end += 1
    columns = dark[rows[0]:end + 1].any(0).nonzero().flatten()
    return int(columns.min()), int(columns.max()), dark.shape[1]
