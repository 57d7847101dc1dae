"""Applying a decided execution path around a model: prepare it, hand back what to call, undo it.

One entry per job; each prepares the model, hands back what to call, and puts everything back on
exit (weights in NCHW, thread count, training mode):

- ``sampling_on(model, path)``: ``with sampling_on(...) as predict:`` then
  ``e_t = predict(x_t, t, *model_args)`` in each reverse step.
- ``training_on(model, path)``: ``with training_on(...) as run:`` then ``run.adam(lr)``,
  ``loss = run.loss(loss_fn, batch)`` in each step.

A path still to be measured (``FastPath.measure``) is settled on the model's first real call by
timing ``cpu_candidates`` (``utils.path_probe``). ``utils.fast.sampling`` and
``utils.fast.training`` decide the path for the device and call these.
"""
from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import replace
from typing import Callable, Iterator

import torch
from torch import nn

from .fast_path import MEASURE_REASON, FastPath, Purpose, cpu_candidates
from .path_probe import fastest, probe_key, with_reason
from .runtime import eval_mode

NORMS = (nn.GroupNorm, nn.LayerNorm, nn.modules.batchnorm._BatchNorm)


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


# -- the switches around one model --------------------------------------------------------------
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
    hooks = _norm_hooks(module, path) if module is not None else []
    try:
        with _threads(path.threads):
            yield call
    finally:
        for hook in hooks:
            hook.remove()
        if module is not None and path.channels_last:
            module.to(memory_format=torch.contiguous_format)


def _norm_hooks(module: nn.Module, path: FastPath) -> list:
    """Where the normalisation layers of ``module`` need help under ``path``'s autocast; the hook handles.

    - CPU, training: statistics in float32, output back in bfloat16 (``_norms_in_float32``). CPU
      autocast runs the norms in bfloat16; their kernels accumulate the statistics in float32 all the
      same, but LayerNorm's weight gradient came out 10 times further from float32's (1.8% against
      0.17%), and the hooks cost nothing measurable (a step of 03's U-Net: 1.90x eager float32 with
      them, 1.87x without).
    - CPU, sampling (``inference_mode``): none. Forward values only: 03's U-Net called in bfloat16 is
      as far from float32 with them as without (largest error 0.034 both ways), and 8% slower with them.
    - CUDA: the input cast alone, as before: CUDA's autocast already runs GroupNorm and LayerNorm in
      float32 (and leaves their output float32); BatchNorm then runs in float32 too.
    """
    if path.autocast_dtype is None or (path.device_type == "cpu" and path.inference_mode):
        return []
    return _norms_in_float32(module, path.autocast_dtype if path.device_type == "cpu" else None)


def _norms_in_float32(module: nn.Module, output_dtype: torch.dtype | None) -> list:
    """Make every normalisation layer of ``module`` compute in float32 under autocast, as CUDA's
    autocast does by its own rules and CPU autocast does not: a pre-hook casts the layer's input to
    the model's own dtype (float32 for a float32 model). Where ``output_dtype`` is given, a hook after
    the layer casts its output back to it: the next convolution would round it there anyway, and the
    activations and additions in between then move half the bytes (a training step of 03's U-Net:
    1.58x eager float32 with the output left in float32, 1.90x cast back). Returns the hook handles."""
    def to_own_dtype(layer, args):
        # the model's own dtype: float32 for a float32 model; a bfloat16 model keeps bfloat16
        return tuple(a.to(model_dtype) if torch.is_tensor(a) and a.is_floating_point() else a for a in args)

    def to_output_dtype(layer, args, out):
        return out.to(output_dtype) if torch.is_tensor(out) and out.is_floating_point() else out

    model_dtype = module_dtype(module) or torch.float32
    norms = [m for m in module.modules() if isinstance(m, NORMS)]
    hooks = [m.register_forward_pre_hook(to_own_dtype) for m in norms]
    if output_dtype is not None:
        hooks += [m.register_forward_hook(to_output_dtype) for m in norms]
    return hooks


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
    target = model if twin is None else twin

    def time_one(candidate: FastPath) -> float:
        with _applied(target, candidate) as call:
            start = time.perf_counter()
            step(candidate, call)
            return time.perf_counter() - start

    winner, best = fastest(cpu_candidates(path), time_one, probe_key(model, purpose, inputs, path.threads))
    return with_reason(winner, best, "" if path.reason == MEASURE_REASON else path.reason)


# -- the two jobs -------------------------------------------------------------------------------
@contextlib.contextmanager
def sampling_on(model, path: FastPath) -> Iterator[Callable[..., torch.Tensor]]:
    """Run a sampler's block on ``path``; yield ``predict(x_t, t, *model_args) -> e_t``.

    Inside the block no gradients are kept (``inference_mode`` on a fast path, else ``no_grad``)
    and a module is in eval mode (BatchNorm on running statistics); on exit the model's mode,
    weight layout and the thread count are restored. ``predict`` calls the model in its own
    dtype (a bfloat16 or float16 model gets its input cast) and returns e_t in x_t's dtype, so the
    reverse chain stays in float32 under bfloat16 autocast. A path still to be measured is timed
    on the first call (``utils.path_probe``). Tensors made inside are inference tensors on a fast
    path: use ``.clone()`` on what leaves. ``predict.path`` is the path in use.

    Args:
        model: called as ``model(x_t, t, *model_args)``; a module or a plain function.
        path: the path, already fitted to the device (``utils.fast.resolve_path``).
    """
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
    """What ``training_on`` hands back: the model call for the loss, the optimizer and the path.

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
def training_on(model: nn.Module, path: FastPath) -> Iterator[TrainingRun]:
    """Run a training loop's block on ``path``; yield a TrainingRun.

    On exit the weights are back in the default (NCHW) layout and the thread count restored.

    Args:
        model: the network, on its device.
        path: the path, already fitted to the device (``utils.fast.resolve_path``).
    """
    with contextlib.ExitStack() as stack:
        stack.enter_context(_threads(path.threads))
        yield TrainingRun(model, path, stack)
