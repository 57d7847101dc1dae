"""The ablation models of notebook 03: each variant adds one change, the last is the 03 UNet."""
import torch

from utils.ablation import VARIANTS, AblationUNet, evaluation_loss
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


def test_evaluation_loss_is_repeatable_and_restores_mode():
    model = AblationUNet(VARIANTS[0]).train()
    images = wave_input((4, 1, 16, 16))
    ddpm = DDPM()
    assert evaluation_loss(model, ddpm, images, seed=3) == evaluation_loss(model, ddpm, images, seed=3)
    assert model.training
