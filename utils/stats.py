"""The statistics of notebook 06's verdict, and the FID: numbers measured on sets of images.

- ``wilson_interval`` and ``pass_probability``: how sure a share of successes measured on n images is.
- ``fid``: a classifier-feature FID (Heusel et al. 2017) with the judge's penultimate layer as the feature
  extractor of torchmetrics' ``FrechetInceptionDistance``, as fast.ai's course measures its FashionMNIST
  models with its own classifier; it needs no download.
- ``pixel_basis`` and ``pixel_fd``: the same Frechet distance on the pixels' main directions of variation
  in the training images, a realism measure no network has a part in.

Images are [N, 1, H, W] float in [-1, 1]. Nothing here loads the judge: ``fid`` is given one
(``utils.judge_net``).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .runtime import eval_mode

Z_95 = 1.959964          # the two-sided 95% quantile of the standard normal
PIXEL_COMPONENTS = 16    # principal directions of the training images the pixel FD looks along
PIXEL_TOLERANCE = 1e-3   # float rounding beyond [-1, 1] that FID lets through


# -- a share measured on n images ---------------------------------------------------------------
def wilson_interval(k: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval (Wilson 1927) for a share k / n; 95% by default.

    Unlike the normal approximation p +- z sqrt(p(1-p)/n), it stays inside [0, 1] and keeps its
    coverage near 0 and 1, where a good model's error rate lives.
    """
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def pass_probability(p: float, n: int, mark: float) -> float:
    """P(at least ceil(mark * n) successes of n) when each image succeeds with probability p.

    The chance that a model whose true success rate is p passes a verdict on n images.
    """
    need = math.ceil(mark * n - 1e-9)
    if p <= 0.0:
        return float(need <= 0)
    if p >= 1.0:
        return 1.0
    log_terms = [math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                 + k * math.log(p) + (n - k) * math.log1p(-p) for k in range(max(need, 0), n + 1)]
    return float(sum(math.exp(t) for t in log_terms))


# -- the judge-feature FID ----------------------------------------------------------------------
class JudgeFeatures(nn.Module):
    """The judge as a torchmetrics feature extractor: images [N, 1, H, W] in [-1, 1] -> [N, 128]."""

    def __init__(self, judge: nn.Module):
        super().__init__()
        self.judge = judge
        self.num_features = judge.num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), eval_mode(self.judge):
            return self.judge.features(x.float())


def check_pixel_range(name: str, images: torch.Tensor, *, clamped: bool) -> None:
    """Refuse images that are not float pixels in [-1, 1], the range of the real images and the judge.

    Integer pixels and sets with no pixel below 0 (images in [0, 1] or 0-255: real images, and any
    sampler's output, have a background near -1) are refused; so are values beyond [-1, 1] unless
    ``clamped`` (the caller clamps them, as ``fid_table`` does with a sampler's overshoot).

    Raises:
        ValueError: naming ``name``, the pixel range found and how to scale the images.
    """
    if not images.is_floating_point():
        raise ValueError(f"{name}: integer pixels ({images.dtype}, values {int(images.min())} to {int(images.max())}); "
                         f"FID compares float images in [-1, 1]: scale them to [-1, 1] (x / 127.5 - 1 for 0-255)")
    lo, hi = float(images.min()), float(images.max())
    if lo >= -PIXEL_TOLERANCE:
        raise ValueError(f"{name}: pixel values from {lo:.4g} to {hi:.4g}, none below 0, not the [-1, 1] of the "
                         f"real images; scale them to [-1, 1] (2 * x - 1 from [0, 1], x / 127.5 - 1 from 0-255)")
    if not clamped and (lo < -1 - PIXEL_TOLERANCE or hi > 1 + PIXEL_TOLERANCE):
        raise ValueError(f"{name}: pixel values from {lo:.4g} to {hi:.4g}, outside [-1, 1]; scale images to "
                         f"[-1, 1] (a sampler's samples: .clamp(-1, 1), as the notebooks show them)")


def fid(judge: nn.Module, images: torch.Tensor, real_images: torch.Tensor) -> float:
    """Classifier-feature FID between two sets of images, with the judge as feature extractor.

    torchmetrics' ``FrechetInceptionDistance`` with ``JudgeFeatures``: the Frechet distance
    ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)) between Gaussians fitted to the judge's
    128 penultimate activations (Heusel et al. 2017). 0 for identical sets; lower is closer. It is
    biased upwards for small sets, so compare numbers measured on as many images, and compare with
    ``Calibration.fid_real`` (real against real at the verdict's size).

    Args:
        judge: a ``utils.judge_net.Judge``.
        images, real_images: [N, 1, H, W] and [M, 1, H, W] float in [-1, 1], N, M >= 2. Images smaller
            than 28x28 (the 16x16 of notebooks 02-04) are resized to 28x28; compare them with real
            images at the same size, so both are resized alike.

    Raises:
        ValueError: too few images, another shape or size, NaN pixels, or pixels not in [-1, 1]
            (integer pixels, values beyond [-1, 1], or none below 0: images in [0, 1] or 0-255).
    """
    if len(images) < 2 or len(real_images) < 2:
        raise ValueError(f"FID needs at least two images on each side, got {len(images)} and {len(real_images)}")
    for side, batch in (("generated", images), ("real", real_images)):
        if batch.dim() != 4 or batch.shape[1] != 1:
            raise ValueError(f"the {side} images must be [N, 1, H, W], got {list(batch.shape)}")
        if not torch.isfinite(batch).all():
            raise ValueError(f"the {side} images hold NaN or infinite pixels: a sampler that diverged (check the "
                             f"reverse step); FID needs finite images")
        check_pixel_range(f"the {side} images", batch, clamped=False)
    if images.shape[1:] != real_images.shape[1:]:
        raise ValueError(f"compare images of one size: {list(images.shape[1:])} and {list(real_images.shape[1:])}; "
                         f"load the real ones with fashion_mnist_tensors(img_size=...) at the model's size")
    return frechet_distance(JudgeFeatures(judge), images, real_images, next(judge.parameters()).device)


def frechet_distance(features: nn.Module, images: torch.Tensor, real_images: torch.Tensor,
                     device: torch.device | str = "cpu") -> float:
    """The Frechet distance between Gaussians fitted to ``features`` of two sets of images, computed by
    torchmetrics' ``FrechetInceptionDistance`` with ``features`` as its extractor (it needs an attribute
    ``num_features``). Images go in batches of 1,000; the caller checks the sets."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric = FrechetInceptionDistance(feature=features, reset_real_features=True).to(device)
    for batch in real_images.split(1000):
        metric.update(batch.to(device), real=True)
    for batch in images.split(1000):
        metric.update(batch.to(device), real=False)
    return float(metric.compute())


# -- the pixel FD -------------------------------------------------------------------------------
def pixel_basis(train_images: torch.Tensor, k: int = PIXEL_COMPONENTS) -> tuple[torch.Tensor, torch.Tensor]:
    """The pixels' mean [D] and their top-k principal directions [D, k] (float64, CPU) in images [N, 1, H, W]."""
    flat = train_images.detach().reshape(len(train_images), -1)
    n, total, outer = len(flat), 0, 0
    for part in flat.split(8192):  # float64 a part at a time: 60,000 images at once would take 0.4 GB
        part = part.double().cpu()
        total, outer = total + part.sum(0), outer + part.T @ part
    mean = total / n
    _, vectors = torch.linalg.eigh((outer - n * torch.outer(mean, mean)) / (n - 1))  # the covariance; ascending
    return mean, vectors[:, -k:].flip(1)


def pixel_fd(images: torch.Tensor, real_images: torch.Tensor, basis: tuple[torch.Tensor, torch.Tensor]) -> float:
    """Frechet distance between Gaussians fitted to two sets' coordinates on ``basis`` (``pixel_basis``).

    The realism measure the judge has no part in: ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))
    (the FID's formula, Heusel et al. 2017) on the pixels' main directions of variation in the training
    images instead of a network's features, computed as ``fid`` computes it (torchmetrics, with
    ``PixelFeatures`` as the extractor). Images a judge reads right but that look like no clothes
    (blobs filling the frame) are far from real ones here whatever the judge thinks of them.

    Args:
        images, real_images: [N, 1, H, W] and [M, 1, H, W] in [-1, 1], N, M >= 2, the size of the basis.

    Raises:
        ValueError: fewer than two images on a side.
    """
    if len(images) < 2 or len(real_images) < 2:
        raise ValueError(f"a Frechet distance needs at least two images on each side, got {len(images)} and "
                         f"{len(real_images)}")
    return frechet_distance(PixelFeatures(*basis), images.detach().cpu(), real_images.detach().cpu())


class PixelFeatures(nn.Module):
    """Images [N, 1, H, W] -> their coordinates [N, k] (float64) on the pixels' main directions
    (``pixel_basis``): the features of the pixel FD, as a torchmetrics feature extractor."""

    def __init__(self, mean: torch.Tensor, directions: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean.double())
        self.register_buffer("directions", directions.double())
        self.num_features = directions.shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.reshape(len(x), -1).double() - self.mean) @ self.directions
