"""Classifier-free guidance: the context mask, the guided noise estimate, the guided sampler."""
import pytest
import torch
from torch import nn

from utils.ddpm_utils import DDPM
from utils.fast import FastPath
from utils.grading import fill_deterministic, wave_input
from utils.guidance import conditional_loss, context_mask, guided_noise, guided_sample
from utils.unet_utils import UNet

N_CLASSES = 10


class ToyModel(nn.Module):
    """A stand-in noise model with known conditional and unconditional outputs.

    It sees the context only as c * c_mask, as the course's UNet does:
    e = 0.5 * x_t + (c * c_mask) . v, so e_uncond = 0.5 * x_t and e_cond = e_uncond + c . v.
    It records every call, and whether it was in training mode at the time.
    """

    def __init__(self):
        super().__init__()
        self.register_buffer("v", torch.linspace(-1.0, 1.0, N_CLASSES))
        self.calls = []

    def forward(self, x_t, t, c, c_mask):
        self.calls.append({"n": x_t.shape[0], "c_mask": c_mask.clone(), "c": c.clone(),
                           "training": self.training})
        shift = (c * c_mask) @ self.v
        return 0.5 * x_t + shift.reshape(-1, 1, 1, 1) + 0.0 * t.reshape(-1, 1, 1, 1)

    def cond(self, x_t, c):
        return 0.5 * x_t + (c @ self.v).reshape(-1, 1, 1, 1)

    def uncond(self, x_t):
        return 0.5 * x_t


def one_hot(labels):
    return torch.nn.functional.one_hot(torch.as_tensor(labels), N_CLASSES).float()


# -- context_mask -------------------------------------------------------------------------------
def test_context_mask_shape_dtype_and_values():
    mask = context_mask(7, 0.5, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (7, 1)
    assert mask.dtype == torch.float32
    assert set(mask.flatten().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("drop_prob", [0.1, 0.3, 0.75])
def test_context_mask_drops_at_the_given_rate(drop_prob):
    mask = context_mask(200_000, drop_prob, generator=torch.Generator().manual_seed(1))
    dropped = 1.0 - mask.mean().item()
    # Standard error is at most sqrt(0.25 / 200000) ~ 0.0011; 0.006 is over 5 of them.
    assert dropped == pytest.approx(drop_prob, abs=0.006)


def test_context_mask_edges_keep_all_or_drop_all():
    g = torch.Generator().manual_seed(2)
    assert context_mask(1000, 0.0, generator=g).min().item() == 1.0
    assert context_mask(1000, 1.0, generator=g).max().item() == 0.0


def test_context_mask_is_repeatable_with_a_generator():
    a = context_mask(64, 0.5, generator=torch.Generator().manual_seed(3))
    b = context_mask(64, 0.5, generator=torch.Generator().manual_seed(3))
    c = context_mask(64, 0.5, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_context_mask_rejects_a_probability_outside_0_1():
    with pytest.raises(ValueError, match="drop_prob"):
        context_mask(4, 1.5)


# -- guided_noise ---------------------------------------------------------------------------------
def toy_inputs(n=3):
    x = wave_input((n, 1, 4, 4))
    t = torch.arange(n)
    c = one_hot([i % N_CLASSES for i in range(1, n + 1)])
    return x, t, c


def test_guided_noise_weight_zero_is_conditional_and_minus_one_unconditional():
    model = ToyModel()
    x, t, c = toy_inputs()
    assert torch.allclose(guided_noise(model, x, t, c, 0.0), model.cond(x, c))
    assert torch.allclose(guided_noise(model, x, t, c, -1.0), model.uncond(x))


@pytest.mark.parametrize("w", [-2.0, -0.5, 0.5, 2.0])
def test_guided_noise_combines_with_one_plus_w(w):
    model = ToyModel()
    x, t, c = toy_inputs()
    expected = (1 + w) * model.cond(x, c) - w * model.uncond(x)
    assert torch.allclose(guided_noise(model, x, t, c, w), expected, atol=1e-6)


def test_guided_noise_accepts_one_weight_per_sample():
    model = ToyModel()
    x, t, c = toy_inputs(3)
    w = torch.tensor([-1.0, 0.0, 2.0])
    out = guided_noise(model, x, t, c, w)
    for i in range(3):
        assert torch.allclose(out[i:i + 1], guided_noise(model, x[i:i + 1], t[i:i + 1], c[i:i + 1], w[i].item()))
    with pytest.raises(ValueError, match="one per sample"):
        guided_noise(model, x, t, c, torch.tensor([1.0, 2.0]))


def test_guided_noise_is_one_batched_call_with_keep_then_drop():
    model = ToyModel()
    x, t, c = toy_inputs(4)
    guided_noise(model, x, t, c, 1.0)
    assert len(model.calls) == 1
    call = model.calls[0]
    assert call["n"] == 8
    assert call["c_mask"].shape == (8, 1)
    assert call["c_mask"].flatten().tolist() == [1.0] * 4 + [0.0] * 4
    assert torch.equal(call["c"], torch.cat([c, c]))


def test_guided_noise_with_the_unet_equals_two_separate_passes():
    model = fill_deterministic(UNet(T=10, img_size=8, down_chs=(8, 32, 32), c_embed_dim=N_CLASSES)).eval()
    x, t, c = wave_input((2, 1, 8, 8), seed=1), torch.tensor([2, 9]), one_hot([4, 8])
    with torch.no_grad():
        e_cond = model(x, t, c, torch.ones(2, 1))
        e_uncond = model(x, t, c, torch.zeros(2, 1))
        out = guided_noise(model, x, t, c, 1.5)
    assert not torch.allclose(e_cond, e_uncond)
    assert torch.allclose(out, 2.5 * e_cond - 1.5 * e_uncond, atol=1e-5)


# -- guided_sample -------------------------------------------------------------------------------
@pytest.fixture
def small_ddpm():
    return DDPM(T=12)


def test_guided_sample_at_weight_zero_is_conditional_sampling(small_ddpm):
    model = ToyModel()
    c = one_hot([0, 5, 9])
    guided = guided_sample(small_ddpm, model, c, 0.0, (1, 4, 4), generator=torch.Generator().manual_seed(5))
    plain = small_ddpm.sample(model, (3, 1, 4, 4), c, torch.ones(3, 1),
                              generator=torch.Generator().manual_seed(5))
    assert guided.images.shape == (3, 1, 4, 4)
    assert torch.allclose(guided.images, plain.images, atol=1e-5)


def test_guided_sample_follows_the_guided_estimate(small_ddpm):
    model = ToyModel()
    c = one_hot([2, 3])
    w = torch.tensor([2.0, -0.5])
    guided = guided_sample(small_ddpm, model, c, w, (1, 4, 4), generator=torch.Generator().manual_seed(6),
                           n_frames=4, fast=FastPath("cpu", inference_mode=True))  # no timing calls
    g = torch.Generator().manual_seed(6)
    x = torch.randn((2, 1, 4, 4), generator=g)
    for i in range(small_ddpm.T - 1, -1, -1):
        t = torch.full((2,), i)
        e = (1 + w.view(-1, 1, 1, 1)) * model.cond(x, c) - w.view(-1, 1, 1, 1) * model.uncond(x)
        x = small_ddpm.p_sample(x, t, e, generator=g)
    assert torch.allclose(guided.images, x, atol=1e-5)
    assert guided.frames.shape == (4, 2, 1, 4, 4)
    assert len(model.calls) == small_ddpm.T  # one batched network call per step


class _AutocastSpy(torch.nn.Module):
    """Predicts zero noise and records whether each call ran under CPU autocast and its layout."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 2, 3)  # a 4-D weight whose two layouts differ
        self.seen = []

    def forward(self, x_t, t, c, c_mask):
        self.seen.append((torch.is_autocast_enabled("cpu"), self.conv.weight.is_contiguous(
            memory_format=torch.channels_last), torch.is_inference_mode_enabled()))
        return torch.zeros_like(x_t)


def test_guided_sample_runs_the_network_on_the_sampling_path(small_ddpm):
    spy = _AutocastSpy()
    path = FastPath("cpu", channels_last=True, autocast_dtype=torch.bfloat16, inference_mode=True)
    trace = guided_sample(small_ddpm, spy, one_hot([1, 2]), 1.0, (1, 4, 4), fast=path)
    assert spy.seen and all(seen == (True, True, True) for seen in spy.seen)
    assert not trace.images.is_inference() and trace.images.dtype == torch.float32
    assert spy.conv.weight.is_contiguous()  # the layout is put back
    spy.seen.clear()
    guided_sample(small_ddpm, spy, one_hot([1, 2]), 1.0, (1, 4, 4), fast=False)
    assert all(seen == (False, False, False) for seen in spy.seen)


def test_guided_sample_on_the_default_path_matches_eager_within_bf16_precision(small_ddpm):
    net = fill_deterministic(UNet(T=small_ddpm.T, img_size=8, down_chs=(8, 32, 32), c_embed_dim=N_CLASSES), seed=4)
    c = one_hot([0, 3, 7])
    args = dict(generator=None, n_frames=2)
    eager = guided_sample(small_ddpm, net, c, 2.0, (1, 8, 8), fast=False,
                          **{**args, "generator": torch.Generator().manual_seed(8)})
    default = guided_sample(small_ddpm, net, c, 2.0, (1, 8, 8), **{**args, "generator": torch.Generator().manual_seed(8)})
    assert (default.images - eager.images).abs().max() < 0.05 * eager.images.abs().max()


def test_guided_sample_runs_the_network_in_eval_mode_and_restores_it(small_ddpm):
    model = ToyModel().train()
    guided_sample(small_ddpm, model, one_hot([1]), 1.0, (1, 4, 4))
    assert model.calls and not any(call["training"] for call in model.calls)
    assert model.training


# -- conditional_loss ----------------------------------------------------------------------------
def test_conditional_loss_hides_the_class_at_the_given_rate():
    model = ToyModel()
    ddpm = DDPM(T=12)
    n = 20_000
    x0, c = torch.zeros(n, 1, 2, 2), one_hot(torch.arange(n) % N_CLASSES)
    conditional_loss(ddpm, model, x0, c, 0.25, generator=torch.Generator().manual_seed(7))
    mask = model.calls[-1]["c_mask"]
    assert mask.shape == (n, 1)
    assert 1.0 - mask.mean().item() == pytest.approx(0.25, abs=0.015)
    assert torch.equal(model.calls[-1]["c"], c)


@pytest.mark.parametrize("drop_prob, keep", [(0.0, 1.0), (1.0, 0.0)])
def test_conditional_loss_equals_the_plain_loss_with_all_kept_or_all_dropped(drop_prob, keep):
    model = fill_deterministic(UNet(T=10, img_size=8, down_chs=(8, 32, 32), c_embed_dim=N_CLASSES))
    ddpm = DDPM(T=10)
    x0, c = wave_input((3, 1, 8, 8), seed=2), one_hot([1, 2, 3])
    t, noise = torch.tensor([0, 4, 9]), wave_input((3, 1, 8, 8), seed=3)
    got = conditional_loss(ddpm, model, x0, c, drop_prob, t=t, noise=noise)
    expected = ddpm.training_loss(model, x0, t, c, torch.full((3, 1), keep), noise=noise)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    other = ddpm.training_loss(model, x0, t, c, torch.full((3, 1), 1.0 - keep), noise=noise)
    assert got.item() != pytest.approx(other.item(), rel=1e-3)


def test_one_conditional_training_step_trains_the_class_embedding():
    torch.manual_seed(0)
    model = UNet(T=10, img_size=8, down_chs=(8, 32, 32), c_embed_dim=N_CLASSES)
    ddpm = DDPM(T=10)
    g = torch.Generator().manual_seed(8)
    loss = conditional_loss(ddpm, model, torch.rand(8, 1, 8, 8, generator=g) * 2 - 1,
                            one_hot(torch.arange(8)), 0.1, generator=g)
    assert torch.isfinite(loss)
    loss.backward()
    assert model.c_emb1.model[0].weight.grad.abs().sum() > 0
