"""The DDPM math: schedule, closed-form forward process, loss and reverse step."""
import math

import pytest
import torch

from utils.ddpm_utils import DDPM, extract


@pytest.fixture
def ddpm():
    return DDPM(T=150, beta_start=1e-4, beta_end=0.02)


def test_schedule_matches_definitions(ddpm):
    betas = torch.linspace(1e-4, 0.02, 150, dtype=torch.float64)
    assert torch.allclose(ddpm.betas.double(), betas, atol=1e-7)
    assert torch.allclose(ddpm.alphas.double(), 1 - betas, atol=1e-7)
    assert torch.allclose(ddpm.alpha_bars.double(), torch.cumprod(1 - betas, 0), atol=1e-6)
    # Literal values, 0-indexed: alpha_bar_0 = 1 - beta_0.
    assert ddpm.alpha_bars[0].item() == pytest.approx(0.9999, abs=1e-6)
    assert ddpm.alpha_bars[149].item() == pytest.approx(0.21917, abs=1e-4)
    assert all(b.dtype == torch.float32 for b in ddpm.buffers())


def test_extract_broadcasts_per_sample():
    values = torch.arange(10.0)
    out = extract(values, torch.tensor([3, 7]), (2, 1, 4, 4))
    assert out.shape == (2, 1, 1, 1)
    assert out.flatten().tolist() == [3.0, 7.0]


def test_q_with_zero_noise_scales_the_image(ddpm):
    x0 = torch.randn(3, 1, 4, 4)
    t = torch.tensor([0, 50, 149])
    x_t, noise = ddpm.q_sample(x0, t, noise=torch.zeros_like(x0))
    expected = ddpm.alpha_bars[t].sqrt().view(-1, 1, 1, 1) * x0
    assert torch.allclose(x_t, expected)
    assert torch.equal(noise, torch.zeros_like(x0))


def test_q_mixes_signal_and_noise_with_unit_variance(ddpm):
    g = torch.Generator().manual_seed(0)
    x0 = torch.zeros(4000, 1, 2, 2)
    x_t, noise = ddpm.q_sample(x0, torch.full((4000,), 149), generator=g)
    assert x_t.std().item() == pytest.approx(math.sqrt(1 - ddpm.alpha_bars[149].item()), rel=0.03)
    assert torch.allclose(x_t, ddpm.sqrt_one_minus_alpha_bars[149] * noise)


def test_training_loss_is_mse_of_predicted_noise(ddpm):
    x0 = torch.randn(2, 1, 4, 4)
    noise = torch.randn_like(x0)
    t = torch.tensor([5, 9])
    perfect = lambda x_t, t_: noise  # noqa: E731
    assert ddpm.training_loss(perfect, x0, t, noise=noise).item() == 0.0
    zero = lambda x_t, t_: torch.zeros_like(x_t)  # noqa: E731
    assert ddpm.training_loss(zero, x0, t, noise=noise).item() == pytest.approx(noise.pow(2).mean().item())


def test_training_loss_passes_extra_model_arguments(ddpm):
    seen = {}

    def model(x_t, t, c, mask):
        seen["args"] = (c, mask)
        return torch.zeros_like(x_t)

    ddpm.training_loss(model, torch.randn(2, 1, 4, 4), torch.tensor([1, 2]), "c", "mask")
    assert seen["args"] == ("c", "mask")


def test_reverse_step_at_t0_is_deterministic_mean(ddpm):
    g = torch.Generator().manual_seed(0)
    x_t, e_t = torch.randn(4, 1, 4, 4, generator=g), torch.randn(4, 1, 4, 4, generator=g)
    t = torch.zeros(4, dtype=torch.long)
    a = ddpm.p_sample(x_t, t, e_t)
    b = ddpm.p_sample(x_t, t, e_t)
    assert torch.equal(a, b)
    expected = (x_t - ddpm.betas[0] / (1 - ddpm.alpha_bars[0]).sqrt() * e_t) / ddpm.alphas[0].sqrt()
    assert torch.allclose(a, expected, atol=1e-5)


def test_reverse_step_spread_is_sqrt_beta(ddpm):
    g = torch.Generator().manual_seed(1)
    x_t, e_t = torch.zeros(20000, 1, 1, 1), torch.zeros(20000, 1, 1, 1)
    out = ddpm.p_sample(x_t, torch.full((20000,), 100), e_t, generator=g)
    assert out.std().item() == pytest.approx(ddpm.betas[100].sqrt().item(), rel=0.03)


def test_reverse_step_handles_mixed_timesteps_per_sample(ddpm):
    g = torch.Generator().manual_seed(2)
    x_t, e_t = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    out = ddpm.p_sample(x_t, torch.tensor([0, 120]), e_t, generator=g)
    mean0 = ddpm.sqrt_recip_alphas[0] * (x_t[0] - ddpm.eps_coeffs[0] * e_t[0])
    assert torch.allclose(out[0], mean0, atol=1e-6)  # no noise for the sample at t = 0
    mean1 = ddpm.sqrt_recip_alphas[120] * (x_t[1] - ddpm.eps_coeffs[120] * e_t[1])
    assert not torch.allclose(out[1], mean1, atol=1e-3)  # noise for the sample at t = 120


def test_reverse_step_with_true_noise_moves_towards_x0(ddpm):
    g = torch.Generator().manual_seed(3)
    x0 = torch.rand(64, 1, 8, 8, generator=g) * 2 - 1
    t = torch.full((64,), 60)
    x_t, noise = ddpm.q_sample(x0, t, generator=g)
    x_prev = ddpm.p_sample(x_t, t, noise, generator=g)
    assert (x_prev - x0).pow(2).mean() < (x_t - x0).pow(2).mean()


def test_sample_keeps_frames_and_restores_training_mode(ddpm):
    model = torch.nn.Conv2d(1, 1, 1)
    model.train()
    calls = []

    def eps(x, t):
        calls.append(int(t[0]))
        return model(x)

    trace = DDPM(T=5).sample(eps, (2, 1, 4, 4), generator=torch.Generator().manual_seed(0), n_frames=3)
    assert calls == [4, 3, 2, 1, 0]
    assert trace.images.shape == (2, 1, 4, 4)
    assert trace.frames.shape[1:] == (2, 1, 4, 4)
    assert trace.timesteps[0] == 5 and trace.timesteps[-1] == 0
    assert torch.equal(trace.frames[-1], trace.images)
    wrapper = _Wrapper()
    wrapper.train()
    DDPM(T=3).sample(wrapper, (1, 1, 2, 2))
    assert len(wrapper.modes) >= 3 and not any(wrapper.modes)  # sampled in eval mode (a measured path times a few calls first)
    assert wrapper.training  # and put back into training mode afterwards


class _Wrapper(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.modes = []

    def forward(self, x, t):
        self.modes.append(self.training)
        return torch.zeros_like(x)


def test_sample_is_reproducible_with_a_generator():
    ddpm = DDPM(T=10)
    f = lambda x, t: 0.1 * x  # noqa: E731
    a = ddpm.sample(f, (2, 1, 4, 4), generator=torch.Generator().manual_seed(7)).images
    b = ddpm.sample(f, (2, 1, 4, 4), generator=torch.Generator().manual_seed(7)).images
    other = ddpm.sample(f, (2, 1, 4, 4), generator=torch.Generator().manual_seed(8)).images
    assert torch.equal(a, b)
    assert not torch.allclose(a, other), "the generator must draw the noise (another seed, other images)"


def test_to_moves_the_schedule():
    ddpm = DDPM().to(torch.float64)
    assert ddpm.betas.dtype == torch.float64
    assert "alpha_bars" in ddpm.state_dict()


@pytest.mark.parametrize("bad_t, message", [
    (torch.tensor([0, 150]), r"\[0, 150\)"),
    (torch.tensor([-1, 3]), r"\[0, 150\)"),
    (torch.tensor([0.5, 1.0]), "integers"),
    (torch.tensor([1, 2, 3]), "one timestep per image"),
])
def test_bad_timesteps_get_clear_errors(ddpm, bad_t, message):
    with pytest.raises((ValueError, TypeError), match=message):
        ddpm.q_sample(torch.zeros(2, 1, 4, 4), bad_t)


def test_wrong_rank_gets_a_clear_error(ddpm):
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        ddpm.q_sample(torch.zeros(1, 4, 4), torch.tensor([0]))


@pytest.mark.parametrize("kwargs", [dict(T=0), dict(beta_start=0.0), dict(beta_start=0.3, beta_end=0.2)])
def test_bad_schedule_arguments(kwargs):
    with pytest.raises(ValueError):
        DDPM(**kwargs)
