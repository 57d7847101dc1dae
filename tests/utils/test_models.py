"""The U-Nets: parameter counts, shapes on tiny configurations, the inputs users give, clear errors.

Their outputs on fixed weights are pinned in test_golden.py.
"""
import pytest
import torch
from torch import nn

from utils import basic_unet, unet_utils
from utils.grading import count_parameters, fill_deterministic, fingerprint, wave_input
from utils.unet_utils import (DownBlock, EmbedBlock, GELUConvBlock, RearrangePoolBlock, ResidualConvBlock,
                              SinusoidalPositionEmbedBlock, UNet, UpBlock)


def test_parameter_counts_match_the_original_course():
    assert count_parameters(UNet()) == 1_979_777
    assert count_parameters(UNet(c_embed_dim=10)) == 2_002_561
    assert count_parameters(basic_unet.BasicUNet()) == 234_977
    assert count_parameters(basic_unet.BasicUNet(time_embed=True)) == 240_385


def test_block_shapes():
    x = torch.randn(2, 8, 8, 8)
    assert GELUConvBlock(8, 16, 4)(x).shape == (2, 16, 8, 8)
    assert RearrangePoolBlock(8, 4)(x).shape == (2, 8, 4, 4)
    assert DownBlock(8, 16, 4)(x).shape == (2, 16, 4, 4)
    assert UpBlock(8, 4, 2)(x, x).shape == (2, 4, 16, 16)
    assert ResidualConvBlock(8, 16, 4)(x).shape == (2, 16, 8, 8)
    assert SinusoidalPositionEmbedBlock(6)(torch.tensor([0.0, 0.5])).shape == (2, 6)
    assert EmbedBlock(6, 16)(torch.randn(2, 6)).shape == (2, 16, 1, 1)


def test_rearrange_of_the_6x6_example():
    image = torch.arange(1.0, 37.0).reshape(1, 1, 6, 6)
    out = RearrangePoolBlock(1, 1).rearrange(image)
    assert out.shape == (1, 4, 3, 3)
    assert out[0, 0].tolist() == [[1, 3, 5], [13, 15, 17], [25, 27, 29]]
    assert out[0, 1].tolist() == [[2, 4, 6], [14, 16, 18], [26, 28, 30]]
    assert out[0, 2].tolist() == [[7, 9, 11], [19, 21, 23], [31, 33, 35]]
    assert out[0, 3].tolist() == [[8, 10, 12], [20, 22, 24], [32, 34, 36]]


def test_sinusoidal_embedding_values():
    emb = SinusoidalPositionEmbedBlock(8)(torch.tensor([0.0, 1.0]))
    assert emb[0].tolist() == [0.0] * 4 + [1.0] * 4
    freqs = torch.exp(-torch.log(torch.tensor(10000.0)) * torch.arange(4) / 3)
    assert torch.allclose(emb[1], torch.cat([freqs.sin(), freqs.cos()]))


def test_residual_block_adds_the_two_convolutions():
    block = ResidualConvBlock(2, 4, 2)
    x = torch.randn(1, 2, 4, 4)
    x1 = block.conv1(x)
    assert torch.allclose(block(x), x1 + block.conv2(x1))


def test_unet_shapes_small_and_conditional():
    model = UNet(T=10, img_ch=3, img_size=8, down_chs=(8, 32, 32), t_embed_dim=4)
    assert model(torch.randn(2, 3, 8, 8), torch.tensor([0, 9])).shape == (2, 3, 8, 8)
    cond = UNet(T=10, img_size=8, down_chs=(8, 32, 32), c_embed_dim=10)
    c = torch.eye(10)[:2]
    assert cond(torch.randn(2, 1, 8, 8), torch.tensor([1, 2]), c, torch.ones(2, 1)).shape == (2, 1, 8, 8)


def test_conditional_unet_masked_class_equals_zero_class():
    model = fill_deterministic(UNet(c_embed_dim=10)).eval()
    x, t = wave_input((2, 1, 16, 16)), torch.tensor([5, 6])
    c = torch.eye(10)[[3, 7]]
    masked = model(x, t, c, torch.zeros(2, 1))
    zero = model(x, t, torch.zeros(2, 10), torch.ones(2, 1))
    assert torch.allclose(masked, zero)
    assert not torch.allclose(masked, model(x, t, c, torch.ones(2, 1)))


def test_basic_unet_time_embedding_changes_output():
    model = fill_deterministic(basic_unet.BasicUNet(time_embed=True)).eval()
    x = wave_input((2, 1, 16, 16))
    assert not torch.allclose(model(x, torch.tensor([0, 0])), model(x, torch.tensor([100, 100])))


@pytest.mark.parametrize("kwargs, message", [
    (dict(img_size=18), "divisible by 4"),
    (dict(down_chs=(60, 64, 128)), "divisible by 8"),
    (dict(down_chs=(64, 48, 128)), "48 channels"),
    (dict(t_embed_dim=5), "even"),
])
def test_unet_constructor_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        UNet(**kwargs)


@pytest.mark.parametrize("x, t, message", [
    (torch.zeros(1, 16, 16), torch.tensor([0]), r"\[N, 1, 16, 16\]"),
    (torch.zeros(1, 1, 8, 8), torch.tensor([0]), r"\[N, 1, 16, 16\]"),
    (torch.zeros(2, 1, 16, 16), torch.tensor([0, 150]), r"\[0, 150\)"),
    (torch.zeros(2, 1, 16, 16), torch.tensor([0.1, 0.2]), "integer"),
])
def test_unet_forward_errors(x, t, message):
    with pytest.raises((ValueError, TypeError), match=message):
        UNet()(x, t)


def test_unet_conditioning_errors():
    with pytest.raises(ValueError, match="unconditional"):
        UNet()(torch.zeros(1, 1, 16, 16), torch.tensor([0]), torch.zeros(1, 10), torch.ones(1, 1))
    with pytest.raises(ValueError, match="class-conditional"):
        UNet(c_embed_dim=10)(torch.zeros(1, 1, 16, 16), torch.tensor([0]))


def test_a_context_mask_of_shape_n_masks_samples_not_features():
    """TeaPearce/Conditional_Diffusion_MNIST#1: c [N, D] * c_mask [N] broadcasts over the features when N == D."""
    model = fill_deterministic(UNet(c_embed_dim=4)).eval()
    x, t, c = wave_input((4, 1, 16, 16)), torch.tensor([1, 2, 3, 4]), torch.eye(4)[[2, 0, 3, 1]]
    keep = torch.tensor([1.0, 0.0, 1.0, 0.0])
    assert torch.equal(model(x, t, c, keep), model(x, t, c, keep[:, None]))
    with pytest.raises(ValueError, match=r"c_mask must have shape \[4, 1\]"):
        model(x, t, c, torch.ones(4, 4))


def test_no_module_level_device_or_sizes():
    for module in (unet_utils, basic_unet):
        names = {n.lower() for n in vars(module)}
        assert not names & {"device", "t", "img_size", "img_ch"}


def test_models_train_one_step():
    """One optimizer step on a tiny batch lowers nothing in particular, but must run and change weights."""
    model = UNet(T=10, img_size=8, down_chs=(8, 32, 32))
    before = [p.clone() for p in model.parameters()]
    loss = model(torch.randn(4, 1, 8, 8), torch.tensor([0, 3, 6, 9])).pow(2).mean()
    loss.backward()
    torch.optim.Adam(model.parameters(), 1e-3).step()
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()) if a.requires_grad)
    assert isinstance(model.down0.conv1.model[1], nn.GroupNorm)


# -- the inputs users give (timesteps as the libraries accept them, any floating dtype) ------------
TINY = dict(T=10, img_size=8, down_chs=(8, 32, 32))
TINY_BASIC = dict(T=10, img_size=8, down_chs=(4, 8, 8), time_embed=True)


@pytest.mark.parametrize("make", [lambda: UNet(**TINY), lambda: basic_unet.BasicUNet(**TINY_BASIC)],
                         ids=["UNet", "BasicUNet"])
def test_a_plain_int_or_0d_timestep_means_the_same_step_for_every_image(make):
    model = fill_deterministic(make()).eval()
    x = wave_input((3, 1, 8, 8))
    per_image = model(x, torch.tensor([7, 7, 7]))
    for t in (7, torch.tensor(7), torch.tensor([7, 7, 7], dtype=torch.int32)):
        torch.testing.assert_close(model(x, t), per_image)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("make", [lambda: UNet(**TINY), lambda: UNet(**TINY, c_embed_dim=3),
                                  lambda: basic_unet.BasicUNet(**TINY_BASIC)],
                         ids=["UNet", "conditional UNet", "BasicUNet"])
def test_models_run_in_their_own_dtype(make, dtype):
    model = fill_deterministic(make()).eval()
    x = wave_input((2, 1, 8, 8))
    extra = (torch.eye(3)[:2], torch.ones(2, 1)) if getattr(model, "c_embed_dim", None) else ()
    reference = model(x, torch.tensor([1, 8]), *extra)
    out = model.to(dtype)(x.to(dtype), torch.tensor([1, 8]), *extra)
    assert out.dtype == dtype and out.shape == reference.shape
    # float64 computes the same function; half precision keeps 8 (bf16) or 11 (fp16) bits.
    tol = {torch.float64: 1e-5, torch.bfloat16: 0.1, torch.float16: 0.02}[dtype]
    assert (out.float() - reference).abs().max() <= tol * reference.abs().max()


def test_the_sampler_runs_a_half_precision_model():
    from utils.ddpm_utils import DDPM

    model = fill_deterministic(UNet(**TINY)).to(torch.bfloat16)
    trace = DDPM(T=10).sample(model, (2, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    assert trace.images.dtype == torch.float32 and torch.isfinite(trace.images).all()
    assert next(model.parameters()).dtype == torch.bfloat16  # the model is left as it was


@pytest.mark.parametrize("dim", [7, 2, 0, 5])
def test_sinusoidal_embedding_refuses_a_size_it_cannot_fill(dim):
    with pytest.raises(ValueError, match="even integer of at least 4"):
        SinusoidalPositionEmbedBlock(dim)


def test_sinusoidal_embedding_takes_numbers_and_keeps_dtype():
    block = SinusoidalPositionEmbedBlock(6)
    assert block(2.0).shape == (6,) and torch.equal(block(torch.tensor(2.0)), block(torch.tensor([2.0]))[0])
    assert block(torch.tensor([1, 2])).dtype == torch.float32  # integer times give float32
    assert block(torch.tensor([0.5], dtype=torch.float64)).dtype == torch.float64
    assert block(torch.tensor([0.5], dtype=torch.bfloat16)).dtype == torch.bfloat16


class _Two(nn.Module):
    """A two-stage model: first, then second."""

    def __init__(self, second_scale: float = 1.0):
        super().__init__()
        self.first = nn.Linear(3, 3)
        self.second = nn.Sequential(nn.Linear(3, 3))
        self.scale = second_scale

    def forward(self, x):
        return self.scale * self.second(self.first(x))


def test_check_stages_names_the_first_stage_that_differs_and_refuses_a_plain_function():
    from utils.grading import CheckFailed, check_stages

    stages = {"first": "Linear(3, 3)", "second": "Linear(3, 3) in a Sequential"}
    x = wave_input((2, 3))
    course = fill_deterministic(_Two(), seed=1)
    mine = _Two()
    mine.load_state_dict(course.state_dict())
    check_stages("Two", mine, course, stages, x)                       # the same: no complaint
    mine.second[0].bias.data += 1
    with pytest.raises(CheckFailed, match=r"first stage whose output differs .* is second"):
        check_stages("Two", mine, course, stages, x)
    mine.load_state_dict(course.state_dict())
    del mine.second
    mine.second = lambda h: h                                          # not a module: its output cannot be hooked
    with pytest.raises(CheckFailed, match=r"(?s)Two.second is a function, not a module.*Hint: second holds"):
        check_stages("Two", mine, course, stages, x)
