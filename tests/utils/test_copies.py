"""utils.copies: distances between images that a small move, the mirror image or brightness cannot hide.

Closed-form checks on images made here (no data, no judge): a moved, mirrored or re-lit copy is at
distance 0, uncorrelated ones sqrt(2), and the plain pixel distance judges made before still use is the
RMS pixel difference.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from utils import copies
from utils.copies import CopyMetric


def garments(n: int, seed: int = 0) -> torch.Tensor:
    """n smooth random shapes on a black background, away from the edge: [n, 1, 28, 28] in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    x = F.interpolate(torch.randn(n, 1, 6, 6, generator=g), size=20, mode="bilinear", align_corners=False)
    out = torch.full((n, 1, 28, 28), -1.0)
    out[..., 4:24, 4:24] = torch.tanh(2 * x)
    return out


def moved(images: torch.Tensor, dy: int, dx: int, fill: float = -1.0) -> torch.Tensor:
    """Images moved by (dy, dx) whole pixels, what leaves the frame lost and ``fill`` coming in."""
    out = torch.full_like(images, fill)
    h, w = images.shape[-2:]
    out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        images[..., max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def test_moved_mirrored_and_relit_copies_are_at_distance_zero():
    bank = garments(30)
    source = bank[:6]
    for name, copy in {"moved by (2, -1)": moved(source, 2, -1), "moved by (-2, 2)": moved(source, -2, 2),
                       "mirrored": source.flip(-1), "mirrored and moved": moved(source.flip(-1), 0, 1),
                       "darker and dimmer": source * 0.6 - 0.3}.items():
        assert copies.nearest_distance(copy, bank).max() < 1e-3, name
    # A plain pixel distance misses a moved copy: it is as far as another garment is.
    assert copies.nearest_distance(moved(source, 1, 0), bank, metric=CopyMetric.PIXELS).min() > 0.1


def test_a_move_over_the_edge_still_finds_the_copy():
    """Real garments touch the edge: what a move pushes out of the frame does not count against a copy."""
    bank = garments(10)
    bank[:, :, :, :2] = 1.0  # every garment touches the left edge
    assert copies.nearest_distance(moved(bank[:3], 0, 2), bank).max() < 1e-3


def test_unrelated_images_are_far_apart_and_moves_beyond_the_search_are_not_searched():
    a, b = garments(20, seed=1), garments(200, seed=2)
    d = copies.nearest_distance(a, b)
    assert d.min() > 0.3 and d.max() <= 2
    assert copies.nearest_distance(moved(a, 3, 0), a, search=2).min() > 0.1  # 3 pixels: not searched
    assert copies.nearest_distance(moved(a, 3, 0), a, search=3).max() < 1e-3


def test_pixel_metric_is_the_rms_pixel_distance_with_the_mirror_image():
    a, b = garments(4, seed=3), garments(5, seed=4)
    want = torch.stack([torch.stack([torch.minimum((x - y).pow(2).mean().sqrt(), (x - y.flip(-1)).pow(2).mean().sqrt())
                                     for y in b]).min() for x in a]).double()
    got = copies.nearest_distance(a, b, metric=CopyMetric.PIXELS, chunk=2)
    assert torch.allclose(got, want, atol=1e-6)


def test_empty_bank_and_constant_images():
    a = garments(3)
    assert torch.isinf(copies.nearest_distance(a, a[:0])).all()
    blank = torch.full((2, 1, 28, 28), -1.0)
    # a blank image correlates with nothing: sqrt(2) from everything, no copy of anything
    assert torch.allclose(copies.nearest_distance(blank, a), torch.full((2,), math.sqrt(2), dtype=torch.float64))
    with pytest.raises(ValueError, match="same"):
        copies.nearest_distance(a, a[..., :20, :20])


def test_spread_of_one_garment_moved_about_is_zero():
    one = garments(1, seed=5)
    twenty = torch.cat([moved(one, dy, dx) for dy in (-2, 0, 2) for dx in (-2, -1, 0, 1, 2)][:20])
    assert copies.class_spread(twenty, search=copies.SPREAD_SEARCH) < 1e-3  # moves of up to 4 apart
    assert copies.class_spread(twenty, metric=CopyMetric.PIXELS) > 0.2      # the old measure saw variety
    varied = garments(20, seed=6)
    assert copies.class_spread(varied) > 0.5
    # unbiased: the same mean whatever the number of images (here, the same pair repeated)
    pair = garments(2, seed=7)
    assert copies.class_spread(pair.repeat(3, 1, 1, 1)) == pytest.approx(0.6 * copies.class_spread(pair), rel=1e-5)
    with pytest.raises(ValueError, match="two images"):
        copies.class_spread(pair[:1])


def test_normalised_distance_is_sqrt_two_minus_two_correlation():
    a, b = garments(1, seed=8), garments(1, seed=9)
    x, y = a.flatten(), b.flatten()  # search=0: whole images, no move
    r = torch.corrcoef(torch.stack([x, y]))[0, 1]
    direct = copies.nearest_distance(a, b, search=0)
    assert float(direct) <= math.sqrt(2 - 2 * float(r)) + 1e-5  # the mirror image may match better
    mirror_r = torch.corrcoef(torch.stack([a.flip(-1).flatten(), y]))[0, 1]
    assert float(direct) == pytest.approx(math.sqrt(2 - 2 * max(float(r), float(mirror_r))), abs=1e-4)
