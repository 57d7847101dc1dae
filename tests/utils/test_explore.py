"""The exploration helpers: transposed-convolution sizes and overlap counts."""
import itertools

import pytest
import torch
from torch import nn

from utils.explore import conv_transpose_output_size, draw_overlap, overlap_counts, overlap_counts_1d


def ones_transpose_conv(size, kernel, stride, padding, output_padding):
    """The counts measured the long way: a ConvTranspose2d of ones applied to ones."""
    layer = nn.ConvTranspose2d(1, 1, kernel, stride=stride, padding=padding, output_padding=output_padding,
                               bias=False)
    with torch.no_grad():
        layer.weight.fill_(1.0)
        return layer(torch.ones(1, 1, size, size))[0, 0]


@pytest.mark.parametrize("size, kernel, stride, padding, output_padding",
                         [c for c in itertools.product((1, 3, 4), (1, 2, 3, 4), (1, 2, 3), (0, 1), (0, 1, 2))
                          if c[4] < c[2] and (c[0] - 1) * c[2] - 2 * c[3] + c[1] + c[4] > 0])
def test_counts_equal_a_transposed_convolution_of_ones(size, kernel, stride, padding, output_padding):
    measured = ones_transpose_conv(size, kernel, stride, padding, output_padding)
    counts = overlap_counts(size, kernel, stride, padding, output_padding)
    assert counts.shape == measured.shape
    assert conv_transpose_output_size(size, kernel, stride, padding, output_padding) == measured.shape[0]
    assert torch.equal(counts.float(), measured)


def test_the_up_block_setting_overlaps_unevenly():
    # Kernel 3, stride 2, padding 1, output_padding 1 (the UpBlock of notebook 01): 4 -> 8.
    assert overlap_counts_1d(4, 3, 2, 1, 1).tolist() == [1, 2, 1, 2, 1, 2, 1, 1]
    counts = overlap_counts(4, 3, 2, 1, 1)
    assert counts.shape == (8, 8)
    assert set(counts.unique().tolist()) == {1, 2, 4}
    # A kernel the stride divides overlaps evenly away from the borders.
    assert overlap_counts_1d(4, 4, 2, 1, 0).tolist() == [1, 2, 2, 2, 2, 2, 2, 1]


def test_bad_arguments_say_what_is_wrong():
    with pytest.raises(ValueError, match="output_padding must be smaller than stride"):
        overlap_counts(4, 3, stride=1, output_padding=1)
    with pytest.raises(ValueError, match="empty output"):
        overlap_counts(1, 1, stride=1, padding=1)
    with pytest.raises(ValueError, match="kernel must be an integer"):
        conv_transpose_output_size(4, 0)


def test_draw_overlap_returns_a_figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = draw_overlap(overlap_counts(4, 3, 2, 1, 1), title="k3 s2")
    assert fig.axes
    plt.close(fig)
