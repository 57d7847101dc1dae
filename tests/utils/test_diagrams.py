"""utils.diagrams: the drawn U-Net shows the shapes the networks really produce."""
import matplotlib
import pytest
import torch

from utils.basic_unet import BasicUNet
from utils.diagrams import draw_unet, stage_shapes, unet_shapes
from utils.unet_utils import UNet

matplotlib.use("Agg")


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_computed_shapes_match_the_basic_unet():
    model = BasicUNet(img_size=8, down_chs=(4, 8, 12)).train()
    measured = stage_shapes(model, torch.zeros(2, 1, 8, 8))
    computed = unet_shapes(1, 8, (4, 8, 12))
    assert measured == {k: computed[k] for k in measured}
    assert measured["dense_emb"] == [12 * 2 * 2] and computed["concat1"] == [24, 2, 2]
    assert model.training, "stage_shapes must leave the model's mode alone"
    assert not model.down1._forward_hooks, "stage_shapes must remove its hooks"


def test_computed_shapes_match_the_unet_of_03():
    model = UNet(T=10, img_size=8, down_chs=(32, 32, 64))
    measured = stage_shapes(model, torch.zeros(2, 1, 8, 8), torch.zeros(2, dtype=torch.long))
    computed = unet_shapes(1, 8, (32, 32, 64), global_skip=True)
    assert measured == {k: computed[k] for k in measured}
    assert computed["concat3"] == [64, 8, 8]


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="multiple of 4"):
        unet_shapes(img_size=10)
    with pytest.raises(ValueError, match="three"):
        unet_shapes(down_chs=(4, 8))


def test_the_drawing_labels_every_stage_and_skip():
    import matplotlib.pyplot as plt

    fig = draw_unet()
    texts = " | ".join(_texts(fig))
    for shape in ("1 x 16 x 16", "16 x 16 x 16", "32 x 8 x 8", "64 x 4 x 4", "1024", "128 x 4 x 4", "64 x 8 x 8"):
        assert shape in texts, shape
    assert "skip: down2, 64 x 4 x 4" in texts and "skip: down1, 32 x 8 x 8" in texts
    assert "GroupNorm" not in texts and "temb_1" not in texts
    plt.close(fig)

    fig = draw_unet(time_embed=True)
    assert "temb_1: 64 values" in " | ".join(_texts(fig))
    plt.close(fig)

    fig = draw_unet(mark_03_changes=True)
    texts = " | ".join(_texts(fig))
    for change in ("GroupNorm", "GELU", "rearrange pooling", "sinusoidal", "residual", "global skip"):
        assert change in texts, change
    assert "128 x 16 x 16" in texts and "t_emb1: 128 values" in texts  # the global skip's concatenation
    plt.close(fig)


def test_measured_shapes_are_drawn():
    import matplotlib.pyplot as plt

    fig = draw_unet(shapes={"down2": [7, 7, 7]})
    assert "7 x 7 x 7" in " | ".join(_texts(fig))
    plt.close(fig)
