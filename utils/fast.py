"""Which execution path a training run or a sampler takes: the fastest one that is correct here.

A *path* is a handful of switches applied around an unchanged model and unchanged maths:

- ``channels_last``: store 4-D weights (and so activations) as NHWC, the layout convolution
  libraries (cuDNN, oneDNN) run fastest on.
- ``compile``: ``torch.compile`` the model (Inductor fuses GroupNorm, GELU and adds into few kernels).
- ``cudagraphs``: compile mode ``"reduce-overhead"``: record the kernels of one step once and
  replay them, so launching a few hundred tiny kernels costs one launch (CUDA only).
- ``autocast_dtype``: run matrix products and convolutions in bfloat16 under ``torch.autocast``;
  weights, optimizer state and the loss stay float32, so no loss scaling is needed.
- ``inference_mode``: sample under ``torch.inference_mode`` (no autograd bookkeeping at all).
- ``fused_adam``: one fused optimizer kernel for all parameters (CUDA only).
- ``threads``: run with this many CPU threads (``torch.set_num_threads``) and restore the old
  count afterwards. On a CPU shared with other busy processes, PyTorch's OpenMP threads spin while
  they wait for each other; one thread then measured twice as fast as two.

``choose_path(device, purpose=...)`` picks them from what the device can do and from what was
measured to be faster (``benchmarks/README.md`` has the numbers):

- CUDA: channels_last + bfloat16 autocast (where supported) + compiled with CUDA graphs + fused Adam,
  when the run is long enough to pay for compiling (``min_compile_steps``); sampling adds
  inference_mode.
- CPU: training stays eager float32 (channels_last, bfloat16 and compiling measured slower or not
  worth their compile time on a small CPU); sampling uses inference_mode and channels_last. When
  other processes keep every core busy (``busy_cores``), both run on one thread.
- Other devices (Apple MPS): eager, plus inference_mode for sampling.

Plain eager float32 is always one switch away: ``choose_path(..., eager=True)``, ``train(...,
fast=False)``, ``ddpm.sample(..., fast=False)``, or the environment variable ``COURSE_EAGER=1``.
While nbgrader grades a notebook the path is eager float32 too: grading runs a few steps and must
not pay for compiling. The one switch kept there is the thread count on a busy CPU (a grading box
running several graders at once), which changes nothing but the order of floating-point sums.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import nn

Purpose = Literal["train", "sample"]

# Compiling the U-Net's forward and backward takes tens of seconds on a GPU machine (minutes on a
# small CPU) and saves a few milliseconds per step, so it pays off only over thousands of steps
# (one full-profile epoch of 70,000 images at batch 128 is 546 steps). Shorter runs stay uncompiled.
# An estimate, not a measurement: benchmarks/bench.py reports the compile time on a GPU.
MIN_COMPILE_STEPS = 2000
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class FastPath:
    """The switches of one execution path (see the module docstring); all off is plain eager.

    Attributes:
        device_type: "cuda", "cpu", "mps", ...
        channels_last: convert the model's 4-D weights to NHWC.
        compile: wrap the model in ``torch.compile``.
        cudagraphs: compile with mode "reduce-overhead" (replays CUDA graphs); needs compile.
        autocast_dtype: dtype for ``torch.autocast`` (torch.bfloat16), or None for float32.
        inference_mode: sample under ``torch.inference_mode`` (sampling only).
        fused_adam: use ``torch.optim.Adam(fused=True)`` (training only).
        threads: CPU threads to run with, or None to keep the current count.
        reason: why this path, in a few words.
    """

    device_type: str = "cpu"
    channels_last: bool = False
    compile: bool = False
    cudagraphs: bool = False
    autocast_dtype: torch.dtype | None = None
    inference_mode: bool = False
    fused_adam: bool = False
    threads: int | None = None
    reason: str = ""

    @property
    def is_eager(self) -> bool:
        """True when nothing beyond plain float32 eager PyTorch is switched on."""
        return not (self.channels_last or self.compile or self.autocast_dtype is not None
                    or self.inference_mode or self.fused_adam or self.threads is not None)

    @property
    def compile_mode(self) -> str | None:
        """The ``mode`` argument for ``torch.compile``."""
        return "reduce-overhead" if self.cudagraphs else None

    @property
    def description(self) -> str:
        """A one-line summary for notebooks and logs, e.g. ``cpu: eager float32 (...)``."""
        parts = []
        if self.channels_last:
            parts.append("channels_last")
        if self.compile:
            parts.append("torch.compile" + (" + CUDA graphs" if self.cudagraphs else ""))
        if self.autocast_dtype is not None:
            parts.append(f"{str(self.autocast_dtype).replace('torch.', '')} autocast")
        if self.inference_mode:
            parts.append("inference_mode")
        if self.fused_adam:
            parts.append("fused Adam")
        if self.threads is not None:
            parts.append(f"{self.threads} thread{'s' if self.threads > 1 else ''}")
        text = " + ".join(parts) if parts else "eager float32"
        return f"{self.device_type}: {text}" + (f" ({self.reason})" if self.reason else "")


def eager_requested() -> bool:
    """True when the environment asks for plain eager mode (``COURSE_EAGER=1``) or nbgrader runs."""
    if os.environ.get("COURSE_EAGER", "").strip().lower() in _TRUE:
        return True
    return bool(os.environ.get("NBGRADER_EXECUTION"))


def busy_cores(samples: int = 5, interval_s: float = 0.01) -> int:
    """How many threads of *other* processes are running or ready to run now (Linux; else 0).

    The median of a few readings of /proc/loadavg's running count, minus this reading thread.
    Unlike the load average it does not remember this process's own recent work.
    """
    import time

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


def _busy_cpu_threads(device_type: str) -> tuple[int | None, str]:
    """(1, why) when other processes keep every core busy, else (None, ""); CPU only."""
    if device_type != "cpu" or torch.get_num_threads() == 1:
        return None, ""
    busy, cores = busy_cores(), os.cpu_count() or 1
    if busy >= cores:
        return 1, f"other processes keep {busy} of {cores} cores busy"
    return None, ""


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
        import shutil
        return any(shutil.which(cc) for cc in ("cc", "gcc", "clang", "g++", "c++"))
    return False


def choose_path(device: torch.device | str, purpose: Purpose = "train", *,
                eager: bool | None = None, steps: int | None = None,
                min_compile_steps: int = MIN_COMPILE_STEPS) -> FastPath:
    """The fastest correct path for ``purpose`` on ``device``.

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
    if eager or (eager is None and eager_requested()):
        if eager:
            return FastPath(device_type, reason="eager requested")
        if os.environ.get("COURSE_EAGER", "").strip().lower() in _TRUE:
            return FastPath(device_type, reason="COURSE_EAGER=1")
        # Grading: eager float32, nothing to compile; on a CPU that other graders keep busy, one thread.
        threads, why = _busy_cpu_threads(device_type)
        reason = "nbgrader is grading" + (f"; {why}" if why else "")
        return FastPath(device_type, threads=threads, reason=reason)
    sampling = purpose == "sample"
    if device_type == "cuda":
        long_enough = steps is None or steps >= min_compile_steps
        compiled = long_enough and can_compile("cuda")
        # Native bfloat16 only (Ampere and later); emulated bfloat16 on older GPUs is slower.
        bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
        reason = "CUDA" if compiled else (
            "CUDA, run too short to compile" if not long_enough else "CUDA, no Triton to compile")
        return FastPath("cuda", channels_last=True, compile=compiled, cudagraphs=compiled,
                        autocast_dtype=torch.bfloat16 if bf16 else None, inference_mode=sampling,
                        fused_adam=not sampling, reason=reason)
    if device_type == "cpu":
        threads, why = _busy_cpu_threads(device_type)
        why = why or "measured fastest on CPU"
        if sampling:
            return FastPath("cpu", channels_last=True, inference_mode=True, threads=threads, reason=why)
        return FastPath("cpu", threads=threads, reason=why)
    return FastPath(device_type, inference_mode=sampling, reason="no faster path known here")


def fit_to_device(path: FastPath, device: torch.device | str) -> FastPath:
    """``path`` for ``device``: CUDA-only switches (CUDA graphs, fused Adam) are turned off
    elsewhere, and so is compiling where ``torch.compile`` cannot generate code."""
    device_type = torch.device(device).type
    changes: dict = {"device_type": device_type}
    if device_type != "cuda":
        changes.update(cudagraphs=False, fused_adam=False)
    if device_type != "cpu":
        changes["threads"] = None
    if path.compile and not can_compile(device_type):
        changes.update(compile=False, cudagraphs=False)
    if not path.compile:
        changes["cudagraphs"] = False
    fitted = replace(path, **changes)
    if fitted != replace(path, device_type=device_type):
        dropped = [name for name in ("compile", "cudagraphs", "fused_adam")
                   if getattr(path, name) and not getattr(fitted, name)]
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


def module_device(model) -> torch.device:
    """The device of a module's first parameter or buffer (CPU for a plain function)."""
    if isinstance(model, nn.Module):
        for tensor in (*model.parameters(), *model.buffers()):
            return tensor.device
    return torch.device("cpu")


def prepare_model(model, path: FastPath):
    """Apply ``path`` to ``model``; return what to call in its place.

    channels_last converts the module's 4-D weights in place (the parameters stay the same
    objects, so an optimizer built before or after keeps working, and ``state_dict()`` keeps its
    keys); compiling returns a ``torch.compile`` wrapper that shares the module's parameters.
    Plain functions are returned unchanged. Undo channels_last with ``restore_model``.
    """
    if not isinstance(model, nn.Module):
        return model
    if path.channels_last:
        model.to(memory_format=torch.channels_last)
    if path.compile:
        return torch.compile(model, mode=path.compile_mode)
    return model


def restore_model(model, path: FastPath) -> None:
    """Put the weights of a module prepared with ``path`` back in the default (NCHW) layout."""
    if isinstance(model, nn.Module) and path.channels_last:
        model.to(memory_format=torch.contiguous_format)


def autocast(path: FastPath):
    """A context that runs ``torch.autocast`` with the path's dtype (a no-op for float32)."""
    if path.autocast_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=path.device_type, dtype=path.autocast_dtype)


def grad_context(path: FastPath):
    """No gradients for sampling: ``torch.inference_mode`` on the fast path, else ``no_grad``."""
    return torch.inference_mode() if path.inference_mode else torch.no_grad()


@contextlib.contextmanager
def cpu_threads(path: FastPath):
    """Run the block with the path's CPU thread count, then put the previous count back."""
    if path.threads is None or path.threads == torch.get_num_threads():
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(path.threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def mark_step(path: FastPath) -> None:
    """Tell the CUDA-graph runtime that a new iteration starts (needed before each training step)."""
    if path.cudagraphs:
        torch.compiler.cudagraph_mark_step_begin()


def with_switches(path: FastPath, **switches) -> FastPath:
    """A copy of ``path`` with some switches changed, e.g. ``with_switches(p, compile=False)``."""
    return replace(path, **switches)
