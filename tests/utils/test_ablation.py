"""The ablation models of notebook 03: each variant adds one change, the last is the 03 UNet."""
import torch

from utils.ablation import SEPARATE_VARIANTS, VARIANTS, AblationUNet, evaluation_loss
from utils.ddpm_utils import DDPM
from utils.grading import count_parameters, fill_deterministic, wave_input
from utils.unet_utils import UNet


def test_last_variant_is_the_unet_of_notebook_03():
    full = AblationUNet(VARIANTS[-1])
    assert count_parameters(full) == count_parameters(UNet()) == 1_979_777
    x, t = wave_input((2, 1, 16, 16)), torch.tensor([4, 90])
    a = fill_deterministic(full).eval()(x, t)
    b = fill_deterministic(UNet()).eval()(x, t)
    assert torch.allclose(a, b, atol=1e-5)


def test_each_variant_changes_what_it_says():
    kinds = [{type(m).__name__ for m in AblationUNet(v).modules()} for v in VARIANTS]
    assert "BatchNorm2d" in kinds[0] and "MaxPool2d" in kinds[0] and "GroupNorm" not in kinds[0]
    assert "BatchNorm2d" not in kinds[1] and "GELU" in kinds[1] and "MaxPool2d" in kinds[1]
    assert "MaxPool2d" not in kinds[2] and "Rearrange" in kinds[2]
    assert "SinusoidalPositionEmbedBlock" not in kinds[2] and "SinusoidalPositionEmbedBlock" in kinds[3]
    assert "_Residual" not in kinds[3] and "_Residual" in kinds[4]
    assert all(AblationUNet(v)(torch.zeros(2, 1, 16, 16), torch.tensor([0, 1])).shape == (2, 1, 16, 16)
               for v in VARIANTS)


def test_separate_variants_change_one_thing_each():
    def describe(v):
        m = AblationUNet(v)
        kinds = {type(x).__name__ for x in m.modules()}
        ups = [x for x in m.modules() if isinstance(x, torch.nn.ConvTranspose2d)]
        return {"norm": "GroupNorm" in kinds and "BatchNorm2d" not in kinds, "gelu": "GELU" in kinds,
                "pool": "Rearrange" in kinds and "MaxPool2d" not in kinds,
                "k2": all(u.kernel_size == (2, 2) for u in ups), "deep": len(m.up1.model) == 5,
                "sin": "SinusoidalPositionEmbedBlock" in kinds, "skip": "_Residual" in kinds}

    steps = [describe(v) for v in SEPARATE_VARIANTS]
    assert not any(steps[0].values())
    order = ["norm", "gelu", "pool", "k2", "deep", "sin", "skip"]
    for i, key in enumerate(order, start=1):   # variant i switches on exactly the change `key`
        changed = {k for k in steps[i] if steps[i][k] != steps[i - 1][k]}
        assert changed == {key}, (SEPARATE_VARIANTS[i].name, changed)
    assert count_parameters(AblationUNet(SEPARATE_VARIANTS[-1])) == count_parameters(UNet())
    x, t = wave_input((2, 1, 16, 16)), torch.tensor([4, 90])
    a = fill_deterministic(AblationUNet(SEPARATE_VARIANTS[-1])).eval()(x, t)
    assert torch.allclose(a, fill_deterministic(UNet()).eval()(x, t), atol=1e-5)


def test_evaluation_loss_is_repeatable_and_restores_mode():
    model = AblationUNet(VARIANTS[0]).train()
    images = wave_input((4, 1, 16, 16))
    ddpm = DDPM()
    assert evaluation_loss(model, ddpm, images, seed=3) == evaluation_loss(model, ddpm, images, seed=3)
    assert evaluation_loss(model, ddpm, images, seed=3) != evaluation_loss(model, ddpm, images, seed=4), \
        "the seed must choose the timesteps and noise"
    assert model.training


def test_checkerboard_share_finds_alternating_pixels():
    from utils.metrics import checkerboard_share

    smooth = torch.linspace(-1, 1, 16).repeat(16, 1).reshape(1, 1, 16, 16)
    board = (torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2 * 2.0 - 1
    assert checkerboard_share(board.reshape(1, 1, 16, 16)) > 0.99
    assert checkerboard_share(smooth) < 0.05
    mixed = smooth + 0.3 * board.reshape(1, 1, 16, 16)
    assert checkerboard_share(smooth) < checkerboard_share(mixed) < 0.99


def test_pixel_spread():
    from utils.metrics import pixel_spread

    same = torch.ones(4, 1, 2, 2)
    assert pixel_spread(same) == 0.0
    assert pixel_spread(torch.stack([torch.zeros(1, 2, 2), 2 * torch.ones(1, 2, 2)])) > 1.0
