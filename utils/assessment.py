"""The assessment of notebook 06: its fixed sizes, its U-Net, the submitted weights, the seed, the images.

Everything between the weights a student hands in and the images the verdict (``utils.verdict``) judges:

- ``SETUP``: the schedule, U-Net sizes and image count every submission shares; ``assessment_unet`` is
  the course's U-Net (``utils.unet_utils.UNet``) at those sizes, 28x28 and 10 classes;
- ``load_submission``: the handed-in state dict, loaded with ``weights_only=True`` into that U-Net;
- ``q_sample``, ``p_sample``, ``context_mask``, ``guided_noise``: the course's answers to the notebook's
  exercises, with the notebook's signatures, which its checks swap in;
- ``verdict_seed``: in a student's own run the notebook's fixed ``SETUP.seed``; when nbgrader grades, a
  seed drawn afresh, so a pass cannot be shopped for on the exact graded images (the report prints it,
  and ``COURSE_VERDICT_SEED`` in the environment reproduces a graded run);
- ``generate``: images sampled with the course's sampler (``utils.guidance.guided_sample``).

Test-only hook: if the judge folder holds ``stand_in.pt`` (images and labels of real held-out images),
``generate`` returns those instead of sampling the model (``utils.verdict`` then leaves them out of the
held-out images it looks for copies of). ``make judge`` never writes that file and graders give the
notebook read-only access to the judge folder.

``utils.judge`` re-exports every public name here, so notebooks write ``judge.load_submission``.
"""
from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .data import CLASS_NAMES
from .guidance import context_mask, guided_noise, guided_sample
from .judge_net import IMG_SIZE, STAND_IN_FILE, initial_environ, judge_folder
from .unet_utils import UNet

__all__ = ["SEED_VARIABLE", "AssessmentSetup", "SETUP", "assessment_unet", "SubmissionError", "WRAPPER_PREFIXES",
           "load_submission", "q_sample", "p_sample", "context_mask", "guided_noise", "requested_classes",
           "SeedSource", "VerdictSeed", "verdict_seed", "generate"]

SEED_VARIABLE = "COURSE_VERDICT_SEED"  # fixes the graded seed, to reproduce a graded verdict


# -- the assessment's model ------------------------------------------------------------------
@dataclass(frozen=True)
class AssessmentSetup:
    """The sizes notebook 06 fixes, so that every submission is graded alike.

    Attributes:
        T, beta_start, beta_end: the linear noise schedule (``DDPM(T, beta_start, beta_end)``).
        down_chs, t_embed_dim: the U-Net (``utils.unet_utils.UNet`` at 28x28, 10 classes).
        n_per_class: images the verdict generates per class. seed: the verdict's sampling seed in
            a student's own run (grading draws another: ``verdict_seed``).
        weights: the file, in the assignment folder, that holds the model's state dict.
    """

    T: int = 50
    beta_start: float = 1e-4
    beta_end: float = 0.2
    down_chs: tuple[int, int, int] = (16, 32, 32)
    t_embed_dim: int = 8
    n_per_class: int = 20
    seed: int = 6
    weights: str = "06_model.pt"


SETUP = AssessmentSetup()


def assessment_unet(setup: AssessmentSetup = SETUP) -> nn.Module:
    """The course's U-Net with the assessment's sizes: 28x28 images, 10 classes."""
    return UNet(T=setup.T, img_size=IMG_SIZE, down_chs=setup.down_chs, t_embed_dim=setup.t_embed_dim,
                c_embed_dim=len(CLASS_NAMES))


class SubmissionError(RuntimeError):
    """The submitted weights are missing or unusable; the message says why and what to do."""


# Prefixes that a wrapper adds to every key of the state dict of the model it wraps.
WRAPPER_PREFIXES = {"_orig_mod.": "torch.compile", "module.": "DataParallel / DistributedDataParallel"}


def _unwrapped(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The state dict without the prefixes of known wrappers that every key carries, and the wrappers removed."""
    removed = []
    while state:
        prefix = next((p for p in WRAPPER_PREFIXES if all(k.startswith(p) for k in state)), None)
        if prefix is None:
            break
        state = {k[len(prefix):]: v for k, v in state.items()}
        removed.append(f"{prefix!r} ({WRAPPER_PREFIXES[prefix]})")
    return state, removed


def _misfit(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], n_examples: int = 3) -> str:
    """How ``state`` differs from ``expected``, in one line with a few example keys."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    reshaped = [f"{k} {list(state[k].shape)} for {list(v.shape)}" for k, v in expected.items()
                if k in state and state[k].shape != v.shape]
    kinds = (("missing", missing), ("unexpected", unexpected), ("of another shape", reshaped))
    return "; ".join(f"{len(keys)} {what} (e.g. {', '.join(keys[:n_examples])})" for what, keys in kinds if keys)


def load_submission(path: Path | str, setup: AssessmentSetup = SETUP,
                    device: torch.device | str = "cpu") -> nn.Module:
    """Load a submitted state dict (``torch.load(..., weights_only=True)``) into ``assessment_unet``.

    Weights saved through a wrapper (``torch.compile``: every key starts with ``_orig_mod.``;
    ``DataParallel`` or DDP: ``module.``) load with the prefix removed, and a printed line says so.

    Raises:
        SubmissionError: the file is missing, is not a state dict, or does not fit the U-Net (the
            message counts the missing, unexpected and reshaped keys, with a few examples).
    """
    path = Path(path)
    if not path.exists():
        raise SubmissionError(
            f"no weights at {path.resolve()}: train the model in the fast or full profile (the training "
            f"cell saves its state dict there), then submit {path.name} with the notebook.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a pickle with code in it, a truncated file, not a torch file at all
        raise SubmissionError(f"{path.name} could not be loaded with weights_only=True "
                              f"({type(error).__name__}: {error}); save model.state_dict() with torch.save") from error
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise SubmissionError(f"{path.name} does not hold a state dict; save it with torch.save(model.state_dict(), ...)")
    state, removed = _unwrapped(state)
    if removed:  # stdout, not stderr: nbgrader fails a graded cell that writes to stderr
        print(f"{path.name}: every key carried the prefix {' then '.join(removed)}; loaded without it "
              f"(next time save the plain module: torch.save(model.state_dict(), path))")
    model = assessment_unet(setup)
    misfit = _misfit(state, model.state_dict())
    if misfit:
        raise SubmissionError(f"{path.name} does not fit the assessment's U-Net (down_chs={setup.down_chs}, 28x28, "
                              f"10 classes): {misfit}. Save the plain module (names as in utils.unet_utils.UNet) "
                              f"with torch.save(model.state_dict(), path)")
    model.load_state_dict(state)
    return model.to(device).eval()


# -- the course's answers with the notebook's signatures, for the checks --------------------------
# The graded cells of notebook 06 are checked one at a time: a check of conditional_loss runs it with
# these q_sample and context_mask, a check of sample_images with these p_sample and guided_noise
# (``utils.grading.swapped_in``). context_mask and guided_noise are utils.guidance's own, imported above:
# same signatures, same numbers to the bit. q_sample and p_sample take the schedule as tensors, as the
# notebook's do (its checks pass schedules of their own, such as alpha_bars = [0.25, 0.5]); DDPM's methods
# use the coefficients it holds, computed in float64, which round differently in the last bit. So these
# two are the same formulas written on the given tensors.
def q_sample(x0: torch.Tensor, t: torch.Tensor, alpha_bars: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) noise (Ho et al. 2020, eq. 4); x0, noise [N, C, H, W]."""
    a = alpha_bars[t].reshape(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def p_sample(x_t: torch.Tensor, t: torch.Tensor, e_t: torch.Tensor, betas: torch.Tensor, alphas: torch.Tensor,
             alpha_bars: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One reverse step with sigma_t^2 = beta_t (Ho et al. 2020, Algorithm 2); z is drawn first, always."""
    z = torch.randn(x_t.shape, generator=generator, device=x_t.device)
    beta, alpha, alpha_bar = (v[t].reshape(-1, 1, 1, 1) for v in (betas, alphas, alpha_bars))
    mean = (x_t - beta / (1 - alpha_bar).sqrt() * e_t) / alpha.sqrt()
    return mean + (t > 0).float().reshape(-1, 1, 1, 1) * beta.sqrt() * z


# -- the seed ---------------------------------------------------------------------------------
class SeedSource(Enum):
    """Where the verdict's sampling seed came from."""

    NOTEBOOK = "the notebook's fixed seed: the images you see in your own run"
    DRAWN = "drawn when graded, unknown before"
    GIVEN = f"set by {SEED_VARIABLE}"


@dataclass(frozen=True)
class VerdictSeed:
    """The verdict's sampling seed and where it came from."""

    value: int
    source: SeedSource

    def __str__(self) -> str:
        text = f"seed {self.value} ({self.source.value}"
        if self.source is not SeedSource.NOTEBOOK:
            text += f"; {SEED_VARIABLE}={self.value} reproduces these images"
        return text + ")"


def verdict_seed(environ: Mapping[str, str] | None = None, setup: AssessmentSetup = SETUP) -> VerdictSeed:
    """The seed the verdict samples with.

    ``COURSE_VERDICT_SEED`` when set (an instructor reproducing a graded verdict, or a test); else, when
    nbgrader executes the notebook (``NBGRADER_EXECUTION`` set: grading, or Validate), a seed drawn from
    the operating system's randomness (``secrets``), which no code of the notebook can know or replay;
    else ``setup.seed``, so a student's own run shows the same images every time.

    Args:
        environ: the environment to read; default: as the process started (``/proc/self/environ``),
            which a notebook cannot change.
    """
    get = environ.get if environ is not None else initial_environ
    given = get(SEED_VARIABLE)
    if given:
        try:
            return VerdictSeed(int(given), SeedSource.GIVEN)
        except ValueError:
            raise ValueError(f"{SEED_VARIABLE} must be a whole number, got {given!r}") from None
    if get("NBGRADER_EXECUTION"):
        return VerdictSeed(secrets.randbelow(2**31), SeedSource.DRAWN)
    return VerdictSeed(setup.seed, SeedSource.NOTEBOOK)


# -- generation -------------------------------------------------------------------------------
def requested_classes(n_per_class: int, n_classes: int = len(CLASS_NAMES)) -> torch.Tensor:
    """The classes a verdict asks for: [n_per_class * n_classes], class 0 first, then 1, ..."""
    return torch.arange(n_classes).repeat_interleave(n_per_class)


def generate(model: nn.Module, ddpm, classes: torch.Tensor, w: float, *, seed: int,
             folder: Path | str | None = None, progress: bool = True) -> torch.Tensor:
    """Sample one image per requested class with classifier-free guidance, from a fixed seed.

    Uses the course's sampler (``utils.guidance.guided_sample``) on the schedule's device.

    Args:
        model: the class-conditional network, ``model(x_t, t, c, c_mask)`` at 28x28.
        ddpm: a ``utils.ddpm_utils.DDPM``. classes: labels [N]. w: guidance weight.
        seed: seeds the sampler's generator (``verdict_seed().value`` for the verdict). folder: the
            judge folder (see the test-only hook in the module docstring).

    Returns:
        images [N, 1, 28, 28] on the CPU, clamped to [-1, 1].
    """
    stand_in = Path(folder or judge_folder()) / STAND_IN_FILE
    if stand_in.exists():
        return _stand_in_images(stand_in, classes)
    device = ddpm.betas.device
    c = F.one_hot(classes.to(device), len(CLASS_NAMES)).float()
    g = torch.Generator(device=device).manual_seed(seed)
    trace = guided_sample(ddpm, model, c, float(w), (1, IMG_SIZE, IMG_SIZE), generator=g, n_frames=2,
                          progress=progress)
    return trace.images.cpu().clamp(-1, 1)


def _stand_in_images(path: Path, classes: torch.Tensor) -> torch.Tensor:
    """Real held-out images in place of samples (test-only): per class in order, then mirrored,
    then again from the start if the stand-in holds too few."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    # stdout, not stderr: nbgrader fails a graded cell that writes to stderr.
    print(f"TEST STAND-IN ({path}): the images judged are real held-out images, not the model's samples")
    images, labels = saved["images"], saved["labels"]
    out = torch.empty(len(classes), *images.shape[1:])
    for k in classes.unique().tolist():
        pool = images[labels == k]
        if not len(pool):
            raise ValueError(f"the stand-in holds no image of class {k}")
        pool = torch.cat([pool, pool.flip(-1)])
        where = (classes == k).nonzero().flatten()
        pool = pool.repeat(-(-len(where) // len(pool)), 1, 1, 1)  # repeats only when the pool is too small
        out[where] = pool[:len(where)]
    return out
