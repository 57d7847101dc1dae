"""How a training run or a sampler runs: the fastest path that is correct on the device at hand.

The maths never changes; a *path* (``FastPath``, ``utils.fast_path``) is a handful of switches
applied around an unchanged model: channels_last, torch.compile, CUDA graphs, bfloat16 autocast,
inference_mode, fused Adam and the CPU thread count. This module decides the path; applying it is
``utils.path_apply``'s job, and timing the candidates where no rule is safe ``utils.path_probe``'s.

Two entries run a block on a path, one per job; each prepares the model, hands back what to call,
and puts everything back on exit (weights in NCHW, thread count, training mode):

- ``sampling(model, device, fast)``: ``with sampling(...) as predict:`` then
  ``e_t = predict(x_t, t, *model_args)`` in each reverse step (``DDPM.sample``).
- ``training(model, fast, steps=...)``: ``with training(...) as run:`` then ``run.adam(lr)``,
  ``loss = run.loss(loss_fn, batch)`` in each step (``utils.training.train``).

``choose_path(device, purpose)`` picks the switches by rules that held on every machine measured
(``benchmarks/README.md``: a 2-core AVX2 CPU, quiet and busy, and a 2-core AVX-512 CPU):

- CUDA: channels_last + bfloat16 autocast (where native) + fused Adam, compiled with CUDA graphs
  when the run is long enough to pay for compiling (``min_compile_steps``); sampling adds
  inference_mode.
- CPU: channels_last for training (0.99x to 1.14x eager: never slower beyond noise) and
  ``inference_mode`` + channels_last for sampling (1.04x to 1.26x); ``torch.compile`` only for long
  runs on CPUs with AVX-512 (1.21x there, after 84 s of compiling; 1.01x on AVX2). bfloat16
  autocast never on a CPU without native bfloat16 (4 to 16 times slower on AVX2); on a CPU with
  it, the four ``cpu_candidates`` are timed on the model's first call and the fastest runs.
- Other devices (Apple MPS): eager, plus inference_mode for sampling.

The CPU thread count is decided once per process (``process_threads``): ``COURSE_THREADS`` if
set, else one thread when other processes keep every core busy at the first decision (PyTorch's
OpenMP threads spin while they wait for each other, and then one thread measured twice as fast
as two), else PyTorch's own count. Every path description names it.

Plain eager float32 is always one switch away: ``train(..., fast=False)``, ``ddpm.sample(...,
fast=False)``, or ``COURSE_EAGER=1``. While nbgrader grades a notebook the path is eager float32
too (grading runs a few steps and must not pay for compiling), on the process's thread count.
"""
from __future__ import annotations

import contextlib
import functools
import os
import shutil
import time
from dataclasses import replace

import torch
from torch import nn

from .fast_path import MEASURE_REASON, FastPath, Purpose, cpu_candidates
from .path_apply import NORMS, TrainingRun, module_device, module_dtype, sampling_on, training_on

# What the course imports from here, the switches (fast_path) and their application (path_apply) included.
__all__ = [
    "FastPath", "Purpose", "cpu_candidates", "MEASURE_REASON", "MIN_COMPILE_STEPS",
    "eager_reason", "busy_cores", "process_threads", "can_compile", "cpu_has_avx512", "cpu_has_native_bf16",
    "choose_path", "fit_to_device", "resolve_path", "sampling", "training",
    "TrainingRun", "NORMS", "module_device", "module_dtype",
]

# Compiling the U-Net's forward and backward takes tens of seconds on a GPU machine (84 s to minutes
# on a small CPU) and saves a few milliseconds per step on a GPU, so it pays off only over thousands
# of steps (one full-profile epoch of 70,000 images at batch 128 is 546 steps).
MIN_COMPILE_STEPS = 2000
_TRUE = {"1", "true", "yes", "on"}


# -- facts about this process and machine --------------------------------------------------------
def eager_reason() -> str | None:
    """Why the environment asks for plain eager mode (``COURSE_EAGER=1``, nbgrader), else None."""
    if os.environ.get("COURSE_EAGER", "").strip().lower() in _TRUE:
        return "COURSE_EAGER=1"
    if os.environ.get("NBGRADER_EXECUTION"):
        return "nbgrader is grading"
    return None


def busy_cores(samples: int = 5, interval_s: float = 0.01) -> int:
    """How many threads of *other* processes are running or ready to run now (Linux; else 0).

    The median of a few readings of /proc/loadavg's running count, minus this reading thread.
    Unlike the load average it does not remember this process's own recent work.
    """
    counts = []
    for i in range(samples):
        try:
            with open("/proc/loadavg") as f:
                counts.append(int(f.read().split()[3].split("/")[0]) - 1)
        except (OSError, ValueError, IndexError):
            return 0
        if i + 1 < samples:
            time.sleep(interval_s)
    counts.sort()
    return max(0, counts[len(counts) // 2])


@functools.cache
def process_threads() -> tuple[int, str]:
    """(CPU threads for every run of this process, why), decided at the first call.

    ``COURSE_THREADS`` (a positive integer) wins; else one thread when other processes keep every
    core busy now; else PyTorch's current count. Decided once, so two runs of one notebook never
    differ in it; ``process_threads.cache_clear()`` decides again.

    Raises:
        ValueError: COURSE_THREADS is set to something other than a positive integer.
    """
    setting = os.environ.get("COURSE_THREADS", "").strip()
    if setting:
        if not setting.isdigit() or int(setting) < 1:
            raise ValueError(f"COURSE_THREADS must be a positive integer, got {setting!r}; "
                             f"unset it to let the course choose")
        return int(setting), "COURSE_THREADS"
    current = torch.get_num_threads()
    busy, cores = busy_cores(), os.cpu_count() or 1
    if current > 1 and busy >= cores:
        return 1, f"other processes kept {busy} of {cores} cores busy"
    return current, ""


def can_compile(device_type: str) -> bool:
    """Whether ``torch.compile`` can generate code for this device type here."""
    if not hasattr(torch, "compile"):
        return False
    if device_type == "cuda":
        try:
            from torch.utils._triton import has_triton
        except ImportError:
            return False
        return has_triton()
    if device_type == "cpu":
        return any(shutil.which(cc) for cc in ("cc", "gcc", "clang", "g++", "c++"))
    return False


def cpu_has_avx512() -> bool:
    """Whether PyTorch's CPU kernels use AVX-512 here (where compiling measured 1.21x)."""
    return torch.backends.cpu.get_cpu_capability().startswith("AVX512")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AMX tiles or AVX-512 BF16), by PyTorch's own
    capability query. Without it bfloat16 is emulated and measured 4 to 16 times slower (AVX2)."""
    cpu = getattr(torch, "cpu", None)
    try:
        return bool(cpu._is_amx_tile_supported() or cpu._is_avx512_bf16_supported())
    except AttributeError:  # an older PyTorch without the query: assume emulation
        return False


# -- choosing a path -----------------------------------------------------------------------------
def choose_path(device: torch.device | str, purpose: Purpose = "train", *,
                eager: bool | None = None, steps: int | None = None,
                min_compile_steps: int = MIN_COMPILE_STEPS) -> FastPath:
    """The fastest correct path for ``purpose`` on ``device`` (rules in the module docstring).

    Args:
        device: where the model lives (a torch.device or a string such as "cuda").
        purpose: "train" (forward, backward, optimizer) or "sample" (forward only, many times).
        eager: True forces plain eager float32; None follows ``COURSE_EAGER`` and nbgrader.
        steps: how many training steps (or model calls) the run will make, if known; compiling is
            only chosen when ``steps >= min_compile_steps`` (unknown counts as long enough).
        min_compile_steps: see ``steps``.

    Returns:
        A FastPath; ``.description`` says what it switches on.
    """
    if purpose not in ("train", "sample"):
        raise ValueError(f"purpose must be 'train' or 'sample', got {purpose!r}")
    device_type = torch.device(device).type
    threads, why_threads = process_threads() if device_type == "cpu" else (None, "")
    env_reason = None if eager is not None else eager_reason()
    if eager or env_reason == "COURSE_EAGER=1":
        return FastPath(device_type, reason=env_reason or "eager requested")
    if env_reason:  # grading: eager float32, nothing to compile, the process's thread count
        return FastPath(device_type, threads=threads,
                        reason=env_reason + (f"; {why_threads}" if why_threads else ""))
    sampling_ = purpose == "sample"
    long_enough = steps is None or steps >= min_compile_steps
    if device_type == "cuda":
        compiled = long_enough and can_compile("cuda")
        # Native bfloat16 only (Ampere and later); emulated bfloat16 on older GPUs is slower.
        bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
        reason = "CUDA" if compiled else (
            "CUDA, run too short to compile" if not long_enough else "CUDA, no Triton to compile")
        return FastPath("cuda", channels_last=True, compile=compiled, cudagraphs=compiled,
                        autocast_dtype=torch.bfloat16 if bf16 else None, inference_mode=sampling_,
                        fused_adam=not sampling_, reason=reason)
    if device_type == "cpu" and cpu_has_native_bf16():
        return FastPath("cpu", inference_mode=sampling_, threads=threads, measure=True,
                        reason=why_threads or MEASURE_REASON)
    if device_type == "cpu":
        compiled = (not sampling_ and long_enough and cpu_has_avx512() and can_compile("cpu"))
        reason = why_threads or ("AVX-512, long run" if compiled else "fastest measured on CPUs")
        return FastPath("cpu", channels_last=True, compile=compiled, inference_mode=sampling_,
                        threads=threads, reason=reason)
    return FastPath(device_type, inference_mode=sampling_, reason="no faster path known here")


def fit_to_device(path: FastPath, device: torch.device | str) -> FastPath:
    """``path`` for ``device``: CUDA-only switches (CUDA graphs, fused Adam) are turned off
    elsewhere, and so is compiling where ``torch.compile`` cannot generate code."""
    device_type = torch.device(device).type
    changes: dict = {"device_type": device_type}
    if device_type != "cuda":
        changes.update(cudagraphs=False, fused_adam=False)
    if device_type != "cpu":
        changes.update(threads=None, measure=False)
    if path.compile and not can_compile(device_type):
        changes.update(compile=False, cudagraphs=False)
    if not path.compile:
        changes["cudagraphs"] = False
    fitted = replace(path, **changes)
    dropped = [name for name in ("compile", "cudagraphs", "fused_adam")
               if getattr(path, name) and not getattr(fitted, name)]
    if dropped:
        fitted = replace(fitted, reason=(path.reason + "; " if path.reason else "")
                         + f"{', '.join(dropped)} not available on {device_type}")
    return fitted


def resolve_path(fast: bool | FastPath | None, device: torch.device | str,
                 purpose: Purpose = "train", steps: int | None = None) -> FastPath:
    """Turn a ``fast=`` argument into a FastPath: a FastPath is used as given (minus what the
    device cannot do, see ``fit_to_device``), False means eager, None and True mean
    ``choose_path`` (where ``COURSE_EAGER=1`` still wins over True)."""
    if isinstance(fast, FastPath):
        return fit_to_device(fast, device)
    if fast is not None and not isinstance(fast, bool):
        raise TypeError(f"fast must be True, False, None or a FastPath, got {fast!r}")
    return choose_path(device, purpose, eager=True if fast is False else None, steps=steps)


# -- running a block on the chosen path ----------------------------------------------------------
def sampling(model, device: torch.device | str, fast: bool | FastPath | None = None, *,
             steps: int | None = None) -> contextlib.AbstractContextManager:
    """Run a sampler's block on the chosen path; ``with`` it to get ``predict(x_t, t, *model_args) -> e_t``.

    What the block runs under, what it puts back on exit and what ``predict`` does:
    ``utils.path_apply.sampling_on``.

    Args:
        model: called as ``model(x_t, t, *model_args)``; a module or a plain function.
        device: where sampling runs (the schedule's device).
        fast: as in ``resolve_path``: None chooses, False is eager, a FastPath is used as given.
        steps: how many model calls the run makes (for the compile decision).
    """
    return sampling_on(model, resolve_path(fast, device, "sample", steps=steps))


def training(model: nn.Module, fast: bool | FastPath | None = None, *,
             steps: int | None = None) -> contextlib.AbstractContextManager:
    """Run a training loop's block on the chosen path for the model's device; ``with`` it to get a
    TrainingRun. What the block runs under, and what it puts back on exit: ``utils.path_apply.training_on``.

    Args:
        model: the network, on its device.
        fast: as in ``resolve_path``: None chooses, False is eager, a FastPath is used as given.
        steps: how many optimizer steps the run makes, if known (for the compile decision).
    """
    return training_on(model, resolve_path(fast, module_device(model), "train", steps=steps))
