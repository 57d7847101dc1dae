"""Denoising diffusion (DDPM, Ho et al. 2020) with a linear noise schedule.

Timestep convention: t is 0-indexed. ``t = 0`` is the first noising step (x_0 -> x_1 in the
paper's 1-indexed notation) and ``t = T - 1`` the last, after which the image is almost pure
Gaussian noise. Every method takes one timestep per sample, as an integer tensor of shape [N],
so one batch may mix timesteps.

Shapes: images are [N, C, H, W]; t is [N] (a Python int or 0-d tensor is broadcast to the batch).

The maths here does not depend on how the network is run: ``DDPM.sample`` asks the execution-path
policy (``utils.fast.sampling``) for the network's runner only when a sampler starts.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import torch
import torch.nn.functional as F
from torch import nn

from .timesteps import batch_timesteps

if TYPE_CHECKING:
    from .fast import FastPath

__all__ = ["NoiseModel", "per_sample", "extract", "batch_timesteps", "SampleTrace", "DDPM"]

NoiseModel = Callable[..., torch.Tensor]


def per_sample(values: torch.Tensor, x_shape: torch.Size) -> torch.Tensor:
    """Shape one value per sample, [N], to broadcast against a batch x: [N, 1, 1, ...].

    Args:
        values: shape [N].
        x_shape: the shape of the batch it will multiply, [N, ...].
    """
    return values.reshape(values.shape[0], *((1,) * (len(x_shape) - 1)))


def extract(values: torch.Tensor, t: torch.Tensor, x_shape: torch.Size) -> torch.Tensor:
    """Pick ``values[t]`` per sample and shape it to broadcast against x.

    Args:
        values: a schedule, shape [T].
        t: timesteps, shape [N].
        x_shape: the shape of the batch it will multiply, [N, ...].

    Returns:
        Shape [N, 1, 1, ...] with as many trailing ones as x has dimensions after the batch.
    """
    return per_sample(values.gather(0, t), x_shape)


@dataclass
class SampleTrace:
    """What the sampler returns: the final images and snapshots of the way there.

    Attributes:
        images: the generated x_0, shape [N, C, H, W].
        frames: snapshots of x_t, shape [K, N, C, H, W], first (pure noise) to last (x_0).
        timesteps: the t each frame was taken after, length K (``T`` stands for the initial noise).
    """

    images: torch.Tensor
    frames: torch.Tensor
    timesteps: list[int]


class DDPM(nn.Module):
    """The forward (noising) and reverse (denoising) processes of a DDPM.

    The schedule lives in registered buffers, so ``ddpm.to(device)`` moves it and every method
    works on the device of the tensors it is given (they must match the buffers' device).

    Buffers (all shape [T]):
        betas: beta_t, linear from ``beta_start`` to ``beta_end``.
        alphas: alpha_t = 1 - beta_t.
        alpha_bars: alpha_bar_t = prod_{s <= t} alpha_s, the signal kept after t + 1 steps.
    """

    def __init__(self, T: int = 150, beta_start: float = 1e-4, beta_end: float = 0.02):
        super().__init__()
        if not isinstance(T, int) or T < 1:
            raise ValueError(f"T must be a positive integer number of steps, got {T!r}")
        if not 0.0 < beta_start <= beta_end < 1.0:
            raise ValueError(
                f"need 0 < beta_start <= beta_end < 1, got beta_start={beta_start}, beta_end={beta_end}"
            )
        self.T = T
        # Computed in float64 and stored as float32, so cumulative products do not drift.
        betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
        alphas = 1.0 - betas
        alpha_bars = torch.cumprod(alphas, dim=0)
        buffers = {
            "betas": betas,
            "alphas": alphas,
            "alpha_bars": alpha_bars,
            "sqrt_alpha_bars": alpha_bars.sqrt(),
            "sqrt_one_minus_alpha_bars": (1.0 - alpha_bars).sqrt(),
            "sqrt_recip_alphas": alphas.rsqrt(),
            # Weight of the predicted noise in the reverse mean: beta_t / sqrt(1 - alpha_bar_t).
            "eps_coeffs": betas / (1.0 - alpha_bars).sqrt(),
            # Standard deviation of the reverse step: sigma_t = sqrt(beta_t) (see p_sample).
            "sigmas": betas.sqrt(),
        }
        for name, value in buffers.items():
            self.register_buffer(name, value.float())

    # -- input checks -----------------------------------------------------------------------
    def _timesteps(self, t: torch.Tensor | int, x: torch.Tensor) -> torch.Tensor:
        """Validate t against x and return it as a long tensor of shape [N] on x's device."""
        if not torch.is_tensor(x) or not x.is_floating_point():
            raise TypeError(f"images must be a floating-point tensor [N, C, H, W], got "
                            f"{getattr(x, 'dtype', type(x).__name__)}; use x.float()")
        if x.dim() != 4:
            raise ValueError(
                f"expected a batch of images of shape [N, C, H, W], got a tensor of shape "
                f"{list(x.shape)}; add a batch dimension with x.unsqueeze(0) for a single image"
            )
        if x.device != self.betas.device:
            raise ValueError(
                f"the images are on {x.device} but the schedule is on {self.betas.device}; "
                f"move one of them, for example ddpm.to(x.device)"
            )
        return batch_timesteps(t, x, self.T)

    def random_timesteps(self, n: int, device: torch.device | str = "cpu",
                         generator: torch.Generator | None = None) -> torch.Tensor:
        """Uniform timesteps for a training batch, shape [n], on ``device``."""
        return torch.randint(0, self.T, (n,), device=device, generator=generator)

    # -- forward process --------------------------------------------------------------------
    def q_sample(self, x0: torch.Tensor, t: torch.Tensor | int, noise: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample x_t from q(x_t | x_0) in closed form ("skipping ahead").

        x_t = sqrt(alpha_bar_t) * x_0 + sqrt(1 - alpha_bar_t) * noise,  noise ~ N(0, I)

        Args:
            x0: clean images, [N, C, H, W].
            t: timesteps, [N] (or one int for the whole batch).
            noise: the noise to use, [N, C, H, W]; drawn fresh when None.
            generator: random generator for the fresh noise.

        Returns:
            (x_t, noise), both [N, C, H, W].
        """
        return self._q_sample(x0, self._timesteps(t, x0), noise, generator)

    def _q_sample(self, x0, t, noise, generator):
        """``q_sample`` for timesteps that were already checked (one check per training step is enough)."""
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        elif noise.shape != x0.shape:
            raise ValueError(f"noise has shape {list(noise.shape)} but x0 has {list(x0.shape)}")
        x_t = self._coef("sqrt_alpha_bars", t, x0) * x0 + self._coef("sqrt_one_minus_alpha_bars", t, x0) * noise
        return x_t, noise

    def _coef(self, name: str, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Schedule ``name`` at t, shaped [N, 1, 1, 1] and in x's dtype (so bfloat16 stays bfloat16)."""
        return extract(getattr(self, name), t, x.shape).to(x.dtype)

    def training_loss(self, model: NoiseModel, x0: torch.Tensor, t: torch.Tensor | int,
                      *model_args, noise: torch.Tensor | None = None,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean squared error between the true noise and the model's prediction of it.

        Args:
            model: called as ``model(x_t, t, *model_args)``, returns [N, C, H, W].
            x0: clean images, [N, C, H, W].
            t: timesteps, [N].
            model_args: extra inputs for the model (a class and its mask in notebook 04).
        """
        t = self._timesteps(t, x0)
        x_t, noise = self._q_sample(x0, t, noise, generator)
        return F.mse_loss(model(x_t, t, *model_args), noise)

    # -- reverse process --------------------------------------------------------------------
    @torch.no_grad()
    def p_sample(self, x_t: torch.Tensor, t: torch.Tensor | int, e_t: torch.Tensor,
                 generator: torch.Generator | None = None, *,
                 z: torch.Tensor | None = None) -> torch.Tensor:
        """One reverse step: sample x_{t-1} from p(x_{t-1} | x_t) given predicted noise e_t.

        mean  = (x_t - beta_t / sqrt(1 - alpha_bar_t) * e_t) / sqrt(alpha_t)
        x_t-1 = mean + sigma_t * z,  z ~ N(0, I),  and no noise where t == 0.

        Variance: sigma_t^2 = beta_t, the first of the two choices in Ho et al. (2020, sec. 3.2).
        It is the exact reverse variance when x_0 itself is N(0, I) noise, and an upper bound
        on the true posterior variance beta~_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) * beta_t;
        the paper reports similar samples with either. At t = 0 the step returns the mean, since
        adding noise to the final image would only blur it.

        Args:
            x_t: current images, [N, C, H, W], any floating dtype (kept).
            t: their timesteps, [N]; each sample may be at a different t (or one int for all).
            e_t: predicted noise, [N, C, H, W].
            generator: random generator for z.
            z: the fresh noise to use, [N, C, H, W]; drawn when None.
        """
        if z is not None and z.shape != x_t.shape:
            raise ValueError(f"z has shape {list(z.shape)} but x_t has {list(x_t.shape)}")
        return self._p_sample(x_t, self._timesteps(t, x_t), e_t, generator, z)

    def _p_sample(self, x_t, t, e_t, generator, z=None):
        """``p_sample`` for timesteps already checked: the one reverse-step formula of the course."""
        if e_t.shape != x_t.shape:
            raise ValueError(f"the predicted noise e_t has shape {list(e_t.shape)} but x_t has "
                             f"{list(x_t.shape)}; the model must return one value per pixel")
        e_t = e_t.to(x_t.dtype)
        mean = self._coef("sqrt_recip_alphas", t, x_t) * (x_t - self._coef("eps_coeffs", t, x_t) * e_t)
        if z is None:
            z = torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
        no_noise_at_0 = per_sample((t > 0).to(x_t.dtype), x_t.shape)
        return mean + no_noise_at_0 * self._coef("sigmas", t, x_t) * z

    def sample(self, model: NoiseModel, shape: tuple[int, int, int, int], *model_args,
               generator: torch.Generator | None = None, n_frames: int = 10,
               progress: bool = False, fast: bool | FastPath | None = None,
               estimate: Callable[..., torch.Tensor] | None = None) -> SampleTrace:
        """Generate images from pure noise by running all T reverse steps (``p_sample``).

        Args:
            model: called as ``model(x_t, t, *model_args)`` and returns predicted noise; a module
                is put in eval mode for the run and restored afterwards. A bfloat16 or float16
                module gets its input cast; the chain itself runs in float32.
            shape: [N, C, H, W] of the images to generate.
            model_args: extra model inputs (class vectors, masks), already batched.
            generator: random generator (on the schedule's device) for the noise.
            n_frames: how many intermediate snapshots to keep, evenly spaced, for plots.
            progress: show a progress bar.
            fast: how the model runs (``utils.fast.sampling``): None (default) the fastest correct
                path for the schedule's device, False plain eager float32, a ``FastPath`` as
                given. The same generator gives the same noise on every path.
            estimate: how each step's noise estimate is made from the network, called as
                ``estimate(predict, x_t, t, *model_args)`` where ``predict`` is the network on the
                chosen path; None calls ``predict(x_t, t, *model_args)``. Classifier-free guidance
                passes ``guided_noise`` here, so the network keeps the fast path.

        Returns:
            A SampleTrace; the device is the schedule's (``ddpm.betas.device``).
        """
        if len(shape) != 4:
            raise ValueError(f"shape must be [N, C, H, W], got {shape!r}")
        device = self.betas.device
        keep = set(torch.linspace(self.T - 1, 0, max(n_frames - 1, 1)).round().long().tolist())
        steps = range(self.T - 1, -1, -1)
        if progress:
            from tqdm.auto import tqdm
            steps = tqdm(steps, desc="sampling", leave=False)
        with _runner(model, device, fast, self.T) as predict:
            x = torch.randn(shape, generator=generator, device=device)
            frames, stamps = [x.cpu()], [self.T]
            for i in steps:
                t = torch.full((shape[0],), i, device=device, dtype=torch.long)
                e_t = predict(x, t, *model_args) if estimate is None else estimate(predict, x, t, *model_args)
                x = self._p_sample(x, t, e_t, generator)
                if i in keep:
                    frames.append(x.cpu())
                    stamps.append(i)
        # Made outside the block, these are ordinary tensors, whatever the path (inference_mode).
        return SampleTrace(images=x.clone(), frames=torch.stack(frames), timesteps=stamps)


def _runner(model: NoiseModel, device: torch.device, fast: bool | FastPath | None, steps: int):
    """How the sampler runs the network: ``utils.fast.sampling``, the one seam between the maths and the
    execution-path policy (imported here, when a sampler starts, not with this module)."""
    from .fast import sampling

    return sampling(model, device, fast, steps=steps)
