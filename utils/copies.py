"""Near copies and sameness of images, measured so that a small move, the mirror image or a change of
brightness does not hide them.

The verdict of notebook 06 (``utils.verdict``) fails an image that is a near copy of a real image, and a
class whose images are all alike. Plain pixel distances miss both as soon as an image is moved: a training
image moved by one pixel is as far, in RMS pixel distance, from every training image as a new garment is,
and twenty moved versions of one garment look varied. So two images are compared here as a person would
call them "the same picture":

* **moved**: the central crop of the second image, ``S = 28 - 2 * search`` pixels square, is compared with
  every crop of that size of the first, at offsets of up to ``search`` pixels each way, and the best match
  counts. Comparing crops means that what a move pushes over the edge does not count against a copy.
* **mirrored**: the first image's mirror image is tried too (training flips images at random).
* **brightness**: each crop is normalised to mean 0 and mean square 1 first, so scaling or shifting the
  pixel values changes nothing. The RMS difference of two normalised crops is sqrt(2 (1 - r)) for their
  correlation r: 0 for the same picture, sqrt(2) for uncorrelated ones, 2 at most.

``CopyMetric.ALIGNED`` names this distance; ``CopyMetric.PIXELS`` the plain RMS pixel distance (mirror
image included) that judges made before it were calibrated with, kept so that their files still read
right. Images are [N, 1, H, W] in [-1, 1].
"""
from __future__ import annotations

import math
from enum import Enum

import torch

COPY_SEARCH = 2    # a copy may be moved by up to 2 pixels each way
SPREAD_SEARCH = 4  # two images of one class, each moved by up to 2 pixels, can be 4 apart


class CopyMetric(Enum):
    """How a judge's calibration measured distances between images (stored by value in judge.pt)."""

    PIXELS = "pixels"    # RMS pixel distance, mirror image included (judges made before ALIGNED)
    ALIGNED = "aligned"  # normalised crops, best over moves and the mirror image (module docstring)


def poses(images: torch.Tensor, search: int) -> torch.Tensor:
    """Every crop of each image the aligned distance tries: [N, 1, H, W] -> [N, V, S * S], normalised.

    V = 2 (2 search + 1)^2: offsets of up to ``search`` pixels each way, of the image and its mirror image;
    S = H - 2 search (the crops are square when the images are).
    """
    _check(images, search)
    h, w = images.shape[-2:]
    x = images[:, 0].float()
    crops = [m[:, search + dy:h - search + dy, search + dx:w - search + dx]
             for m in (x, x.flip(-1))
             for dy in range(-search, search + 1) for dx in range(-search, search + 1)]
    return _normalised(torch.stack(crops, 1).flatten(2))


def centre_crops(images: torch.Tensor, search: int) -> torch.Tensor:
    """The central crop of each image, normalised: [N, 1, H, W] -> [N, S * S], S = H - 2 search."""
    _check(images, search)
    h, w = images.shape[-2:]
    return _normalised(images[:, 0, search:h - search, search:w - search].float().flatten(1))


def _normalised(flat: torch.Tensor) -> torch.Tensor:
    """Each row (last dim) to mean 0 and mean square 1; a constant row becomes 0 (sqrt(2) from any)."""
    flat = flat - flat.mean(-1, keepdim=True)
    rms = flat.pow(2).mean(-1, keepdim=True).sqrt()
    return torch.where(rms > 1e-4, flat / rms.clamp_min(1e-4), torch.zeros_like(flat))


def _check(images: torch.Tensor, search: int) -> None:
    if images.dim() != 4 or images.shape[1] != 1:
        raise ValueError(f"expected images [N, 1, H, W], got {list(images.shape)}")
    if not 0 <= search < min(images.shape[-2:]) // 2:
        raise ValueError(f"search must be from 0 to below half the image size, got {search}")


@torch.no_grad()
def nearest_distance(images: torch.Tensor, bank: torch.Tensor, *, metric: CopyMetric = CopyMetric.ALIGNED,
                     search: int = COPY_SEARCH, chunk: int = 4096) -> torch.Tensor:
    """Distance from each image to the nearest image of ``bank`` (the module docstring says how).

    Args:
        images: [N, 1, H, W]; bank: [M, 1, H, W] of the same size, both in [-1, 1] (the bank may be
            empty: every distance is then infinite).
        metric: ALIGNED, or PIXELS (plain RMS pixel distance to the bank image or its mirror image;
            ``search`` is then unused). search: the largest move tried, in pixels.
        chunk: bank images compared at a time (memory: about 4 N V chunk bytes).

    Returns:
        [N] float64 distances, on the images' device: 0 for an exact copy (moved, mirrored or re-lit
        for ALIGNED).
    """
    if images.shape[1:] != bank.shape[1:]:
        raise ValueError(f"images {list(images.shape[1:])} and bank images {list(bank.shape[1:])} "
                         f"must have the same [C, H, W]")
    device = images.device
    if len(bank) == 0 or len(images) == 0:
        return torch.full((len(images),), math.inf, dtype=torch.float64, device=device)
    if metric is CopyMetric.PIXELS:
        return _nearest_pixels(images, bank, chunk)
    queries = poses(images, search)                    # [N, V, D]
    n, v, d = queries.shape
    flat = queries.reshape(n * v, d)
    best = torch.full((n,), -math.inf, device=device)
    for i in range(0, len(bank), chunk):
        crops = centre_crops(bank[i:i + chunk].to(device), search)   # [B, D]
        # a pose's dot product with a crop is d (1 - dist^2 / 2): the nearest has the largest
        best = torch.maximum(best, (flat @ crops.T).amax(1).reshape(n, v).amax(1))
    return (2 - 2 * best.double() / d).clamp_min(0).sqrt()


def _nearest_pixels(images: torch.Tensor, bank: torch.Tensor, chunk: int) -> torch.Tensor:
    """RMS pixel distance to the nearest bank image or its mirror image (CopyMetric.PIXELS)."""
    flat = images.detach().reshape(len(images), -1).double()
    best = torch.full((len(images),), math.inf, dtype=torch.float64, device=images.device)
    for i in range(0, len(bank), chunk):
        part = bank[i:i + chunk].to(images.device)
        mirrored = torch.cat([part, part.flip(-1)]).reshape(2 * len(part), -1).double()
        best = torch.minimum(best, torch.cdist(flat, mirrored).amin(1))
    return best / math.sqrt(flat.shape[1])


@torch.no_grad()
def class_spread(images: torch.Tensor, *, metric: CopyMetric = CopyMetric.ALIGNED,
                 search: int = SPREAD_SEARCH) -> float:
    """Mean distance between two different images of a set: [N, 1, H, W], N >= 2.

    0 when every image is the same picture (for ALIGNED: moved, mirrored or re-lit); an unbiased estimate
    of the mean over all pairs whatever N is. ``metric`` and ``search`` as for ``nearest_distance``.
    """
    if images.dim() != 4 or images.shape[0] < 2:
        raise ValueError(f"need at least two images [N, C, H, W], got {list(images.shape)}")
    n = images.shape[0]
    if metric is CopyMetric.PIXELS:
        flat = images.detach().reshape(n, -1).double()
        dist = torch.cdist(flat, flat) / math.sqrt(flat.shape[1])
    else:
        queries, crops = poses(images, search), centre_crops(images, search)  # [N, V, D], [N, D]
        best = torch.einsum("nvd,md->nvm", queries, crops).amax(1)              # [N, N]
        dist = (2 - 2 * best.double() / crops.shape[1]).clamp_min(0).sqrt()
        dist.fill_diagonal_(0)
    return float(dist.sum() / (n * (n - 1)))
