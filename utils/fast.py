"""How a training run or a sampler runs: the fastest path that is correct on the device at hand.

The maths never changes; a *path* is a handful of switches applied around an unchanged model:

- ``channels_last``: store 4-D weights (and so activations) as NHWC, the layout convolution
  libraries (cuDNN, oneDNN) run fastest on.
- ``compile``: ``torch.compile`` the model (Inductor fuses GroupNorm, GELU and adds into few kernels).
- ``cudagraphs``: compile mode ``"reduce-overhead"``: record the kernels of one step once and
  replay them, so launching a few hundred tiny kernels costs one launch (CUDA only).
- ``autocast_dtype``: run matrix products and convolutions in bfloat16 under ``torch.autocast``;
  weights, optimizer state and the loss stay float32, so no loss scaling is needed.
- ``inference_mode``: sample under ``torch.inference_mode`` (no autograd bookkeeping at all).
- ``fused_adam``: one fused optimizer kernel for all parameters (CUDA only).
- ``threads``: run with this many CPU threads (``torch.set_num_threads``), restored afterwards.

Two entries apply a path, one per job; each prepares the model, hands back what to call, and puts
everything back on exit (weights in NCHW, thread count, training mode):

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
  autocast never on a CPU without native bfloat16 (4 to 16 times slower on AVX2).
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
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Literal

import torch
from torch import nn

from .runtime import eval_mode

Purpose = Literal["train", "sample"]

# Compiling the U-Net's forward and backward takes tens of seconds on a GPU machine (84 s to minutes
# on a small CPU) and saves a few milliseconds per step on a GPU, so it pays off only over thousands
# of steps (one full-profile epoch of 70,000 images at batch 128 is 546 steps).
MIN_COMPILE_STEPS = 2000
MEASURE_REASON = "native bfloat16: timed on the model's first call"
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
        measure: not decided yet: time ``cpu_candidates`` on the model's first real call and run
            the fastest (``utils.path_probe``); the other switches are ignored until then.
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
    measure: bool = False
    reason: str = ""

    @property
    def is_eager(self) -> bool:
        """True when the maths runs as plain float32 eager PyTorch (the thread count aside)."""
        return not (self.channels_last or self.compile or self.autocast_dtype is not None
                    or self.inference_mode or self.fused_adam or self.measure)

    @property
    def compile_mode(self) -> str | None:
        """The ``mode`` argument for ``torch.compile``."""
        return "reduce-overhead" if self.cudagraphs else None

    @property
    def switches(self) -> str:
        """The switches alone, e.g. ``channels_last + bfloat16 autocast`` (``eager float32``)."""
        parts = [name for on, name in ((self.channels_last, "channels_last"),
                                       (self.autocast_dtype is not None, "bfloat16 autocast"))
                 if on]
        return " + ".join(parts) or "float32"

    @property
    def description(self) -> str:
        """A one-line summary for notebooks and logs, e.g. ``cpu: eager float32, 2 threads (...)``."""
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
        text = " + ".join(parts) if parts else "eager float32"
        if self.measure:
            text = "the fastest of " + " | ".join(c.switches for c in cpu_candidates(self))
        if self.threads is not None:
            text += f", {self.threads} thread{'s' if self.threads > 1 else ''}"
        return f"{self.device_type}: {text}" + (f" ({self.reason})" if self.reason else "")


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


def cpu_candidates(path: FastPath) -> list[FastPath]:
    """The CPU paths worth timing where bfloat16 is native: float32 and bfloat16 autocast, each
    with and without channels_last (which one wins depends on the network: measured 1.97x for
    bfloat16 alone on notebook 03's U-Net, 1.45x for bfloat16 + channels_last on 02's)."""
    base = replace(path, measure=False, compile=False, cudagraphs=False, fused_adam=False, reason="")
    return [replace(base, channels_last=cl, autocast_dtype=dtype)
            for dtype in (None, torch.bfloat16) for cl in (False, True)]


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


# -- applying a path -----------------------------------------------------------------------------
def module_device(model) -> torch.device:
    """The device of a module's first parameter or buffer (CPU for a plain function)."""
    if isinstance(model, nn.Module):
        for tensor in (*model.parameters(), *model.buffers()):
            return tensor.device
    return torch.device("cpu")


def module_dtype(model) -> torch.dtype | None:
    """The dtype of a module's first floating-point parameter (None for a plain function)."""
    if isinstance(model, nn.Module):
        for p in model.parameters():
            if p.is_floating_point():
                return p.dtype
    return None


@contextlib.contextmanager
def _applied(model, path: FastPath) -> Iterator[Callable]:
    """Prepare ``model`` for ``path``; yield what to call in its place; undo it all on exit.

    channels_last converts the module's 4-D weights in place (the parameters stay the same
    objects, so an optimizer keeps working and ``state_dict()`` keeps its keys); compiling wraps
    the module in ``torch.compile``, which shares its parameters. Plain functions pass through.
    """
    module = model if isinstance(model, nn.Module) else None
    call = model
    if module is not None and path.channels_last:
        module.to(memory_format=torch.channels_last)
    if module is not None and path.compile:
        call = torch.compile(module, mode=path.compile_mode)
    hooks = _norms_in_float32(module) if module is not None and path.autocast_dtype is not None else []
    try:
        with _threads(path.threads):
            yield call
    finally:
        for hook in hooks:
            hook.remove()
        if module is not None and path.channels_last:
            module.to(memory_format=torch.contiguous_format)


NORMS = (nn.GroupNorm, nn.LayerNorm, nn.modules.batchnorm._BatchNorm)


def _norms_in_float32(module: nn.Module) -> list:
    """Make every normalisation layer of ``module`` compute in float32 under autocast, as CUDA's
    autocast does by its own rules and CPU autocast does not (it runs GroupNorm in bfloat16): a
    hook casts the layer's input to the layer's own dtype (float32 for a float32 model), so its
    statistics and output are float32 and the next convolution casts back. Returns the hook
    handles, to remove them."""
    def to_float32(layer, args):
        # the layer's own dtype: float32 for a float32 model; a bfloat16 model keeps bfloat16
        weight = getattr(layer, "weight", None)
        dtype = weight.dtype if weight is not None else torch.float32
        return tuple(a.to(dtype) if torch.is_tensor(a) and a.is_floating_point() else a for a in args)

    return [m.register_forward_pre_hook(to_float32) for m in module.modules() if isinstance(m, NORMS)]


@contextlib.contextmanager
def _threads(threads: int | None) -> Iterator[None]:
    """Run with ``threads`` CPU threads (None: as now); the count is restored on exit."""
    before = torch.get_num_threads()
    if threads is not None and threads != before:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _autocast(path: FastPath):
    if path.autocast_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=path.device_type, dtype=path.autocast_dtype)


def _fastest_path(model, path: FastPath, purpose: Purpose, step: Callable[[FastPath, Callable], None],
                  inputs, twin=None) -> FastPath:
    """Time ``step(candidate, call)`` on each of ``cpu_candidates(path)`` (on ``twin`` where given,
    a copy of ``model`` whose state may change) and return the fastest, its reason giving the times."""
    from .path_probe import fastest, probe_key, with_reason

    target = model if twin is None else twin

    def time_one(candidate: FastPath) -> float:
        with _applied(target, candidate) as call:
            start = time.perf_counter()
            step(candidate, call)
            return time.perf_counter() - start

    winner, best = fastest(cpu_candidates(path), time_one, probe_key(model, purpose, inputs, path.threads))
    return with_reason(winner, best, "" if path.reason == MEASURE_REASON else path.reason)


@contextlib.contextmanager
def sampling(model, device: torch.device | str, fast: bool | FastPath | None = None, *,
             steps: int | None = None) -> Iterator[Callable[..., torch.Tensor]]:
    """Run a sampler's block on the chosen path; yield ``predict(x_t, t, *model_args) -> e_t``.

    Inside the block no gradients are kept (``inference_mode`` on a fast path, else ``no_grad``)
    and a module is in eval mode (BatchNorm on running statistics); on exit the model's mode,
    weight layout and the thread count are restored. ``predict`` calls the model in its own
    dtype (a bfloat16 or float16 model gets its input cast) and returns e_t in x_t's dtype, so the
    reverse chain stays in float32 under bfloat16 autocast. A path still to be measured is timed
    on the first call (``utils.path_probe``). Tensors made inside are inference tensors on a fast
    path: use ``.clone()`` on what leaves. ``predict.path`` is the path in use.

    Args:
        model: called as ``model(x_t, t, *model_args)``; a module or a plain function.
        device: where sampling runs (the schedule's device).
        fast: as in ``resolve_path``: None chooses, False is eager, a FastPath is used as given.
        steps: how many model calls the run makes (for the compile decision).
    """
    path = resolve_path(fast, device, "sample", steps=steps)
    if path.measure and not isinstance(model, nn.Module):
        path = replace(cpu_candidates(path)[0], reason="a plain function: nothing to time")
    dtype = module_dtype(model)
    grad = torch.inference_mode() if path.inference_mode else torch.no_grad()
    with eval_mode(model), contextlib.ExitStack() as stack, grad:
        def run(candidate: FastPath, call, x_t, t, model_args):
            if candidate.cudagraphs:
                torch.compiler.cudagraph_mark_step_begin()
            with _autocast(candidate):
                return call(x_t if dtype is None else x_t.to(dtype), t, *model_args)

        def predict(x_t: torch.Tensor, t: torch.Tensor, *model_args) -> torch.Tensor:
            if predict.call is None:
                predict.path = _fastest_path(model, predict.path, "sample",
                                             lambda c, call: run(c, call, x_t, t, model_args), (x_t, t, *model_args))
                predict.call = stack.enter_context(_applied(model, predict.path))
            return run(predict.path, predict.call, x_t, t, model_args).to(x_t.dtype)

        predict.path = path
        predict.call = None if path.measure else stack.enter_context(_applied(model, path))
        stack.enter_context(_threads(path.threads))
        yield predict


class TrainingRun:
    """What ``training`` hands back: the model call for the loss, the optimizer and the path.

    A path still to be measured is settled by the first ``loss`` call: the candidates are timed on
    a copy of the model with that batch (the random state restored afterwards), then the fastest
    is applied to the model itself.
    """

    def __init__(self, model: nn.Module, path: FastPath, stack: contextlib.ExitStack):
        self.model, self.path, self._stack = model, path, stack
        self.call = None if path.measure else stack.enter_context(_applied(model, path))

    @property
    def description(self) -> str:
        return self.path.description

    def adam(self, lr: float) -> torch.optim.Adam:
        """Adam over the model's parameters (one fused kernel where the path says so)."""
        return torch.optim.Adam(self.model.parameters(), lr=lr,
                                **({"fused": True} if self.path.fused_adam else {}))

    def loss(self, loss_fn: Callable, batch) -> torch.Tensor:
        """``loss_fn(model, batch)`` on the path: the scalar loss, ready for ``.backward()``."""
        if self.call is None:
            self._settle(loss_fn, batch)
        if self.path.cudagraphs:
            torch.compiler.cudagraph_mark_step_begin()
        with _autocast(self.path):
            return loss_fn(self.call, batch)

    def _settle(self, loss_fn: Callable, batch) -> None:
        import copy

        twin = copy.deepcopy(self.model)

        def step(candidate: FastPath, call) -> None:
            with _autocast(candidate):
                loss = loss_fn(call, batch)
            loss.backward()
            twin.zero_grad(set_to_none=True)

        # timing draws timesteps and noise: put the random state back, so the run stays as reproducible
        with torch.random.fork_rng(devices=[]):
            self.path = _fastest_path(self.model, self.path, "train", step, batch, twin=twin)
        self.call = self._stack.enter_context(_applied(self.model, self.path))


@contextlib.contextmanager
def training(model: nn.Module, fast: bool | FastPath | None = None, *,
             steps: int | None = None) -> Iterator[TrainingRun]:
    """Run a training loop's block on the chosen path for the model's device; yield a TrainingRun.

    On exit the weights are back in the default (NCHW) layout and the thread count restored.

    Args:
        model: the network, on its device.
        fast: as in ``resolve_path``: None chooses, False is eager, a FastPath is used as given.
        steps: how many optimizer steps the run makes, if known (for the compile decision).
    """
    path = resolve_path(fast, module_device(model), "train", steps=steps)
    with contextlib.ExitStack() as stack:
        stack.enter_context(_threads(path.threads))
        yield TrainingRun(model, path, stack)
