"""A small training loop with progress bars, a loss history and checkpoints.

A checkpoint holds the model, the optimizer, the averaged weights (if kept) and the history; it is
written after every epoch
(to a temporary file, then renamed, so an interrupted save never destroys the previous one).
Running the same cell again after a kernel restart loads a finished run instead of retraining.

By default a run takes the fastest path that is correct on the model's device
(``utils.fast.training``; on a CUDA GPU a compiled, CUDA-graph, bfloat16-autocast step).
``train(..., fast=False)`` or ``COURSE_EAGER=1`` forces plain eager mode; ``History.path``
records which path ran.

``train(..., averaged=AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.99), use_buffers=True))``
also keeps an exponential moving average of the weights, updated after every step (notebooks 03 and
04 sample from it, as the DDPM paper does: Ho et al. 2020, appendix B).
"""
from __future__ import annotations

import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

import torch
from torch import nn

from .fast import training
from .profiles import Profile
from .runtime import COURSE_ROOT
from .time_budget import StepLimit, TimeBudget

if TYPE_CHECKING:
    from torch.optim.swa_utils import AveragedModel

    from .fast import FastPath, TrainingRun

LossFn = Callable[[nn.Module, object], torch.Tensor]


@dataclass
class History:
    """What a training run did. losses: one value per optimizer step."""

    losses: list[float] = field(default_factory=list)
    epoch_losses: list[float] = field(default_factory=list)
    epochs_done: int = 0
    seconds: float = 0.0
    completed: bool = False
    resumed_from_checkpoint: bool = False
    path: str = ""  # FastPath.description of the path the (last) training session ran on
    planned_steps: int | None = None  # the max_steps asked for
    step_limit: int | None = None  # the steps kept after fitting a time budget (None: not cut)

    @property
    def steps(self) -> int:
        return len(self.losses)

    def summary(self) -> str:
        if not self.losses:
            return "no training steps yet"
        source = "loaded from checkpoint; " if self.resumed_from_checkpoint else ""
        cut = (f" (of {self.planned_steps:,} planned: time budget)"
               if self.step_limit is not None and self.step_limit != self.planned_steps else "")
        return (f"{source}{self.steps:,} steps{cut} in {self.epochs_done} epoch(s), {self.seconds:.1f} s, "
                f"final loss {self.losses[-1]:.4f}" + (f"; path {self.path}" if self.path else ""))


def checkpoint_path(name: str, profile: Profile) -> Path | None:
    """Where run ``name`` keeps its checkpoint under ``profile``, or None when graded.

    The folder is ``$COURSE_CHECKPOINT_DIR`` if set, else ``checkpoints/`` at the top of the course.
    Graded runs keep no checkpoint: they are short, and must not pick up a file from elsewhere.
    """
    if profile.name == "grade":
        return None
    folder = Path(os.environ.get("COURSE_CHECKPOINT_DIR") or COURSE_ROOT / "checkpoints")
    return folder.expanduser() / f"{name}-{profile.name}.pt"


def _save(path: Path, model: nn.Module, optimizer, history: History, config: dict,
          averaged: AveragedModel | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict() if optimizer else None,
                "averaged": averaged.state_dict() if averaged is not None else None,
                "history": asdict(history), "config": config}, tmp)
    os.replace(tmp, path)


def load_checkpoint(model: nn.Module, path: Path | str, optimizer=None,
                    averaged: AveragedModel | None = None) -> History | None:
    """Load weights (and optimizer state, and the averaged weights) saved by ``train``; return its
    History, or None if absent.

    Raises:
        ValueError: ``averaged`` is given but the checkpoint kept no averaged weights.
    """
    path = Path(path)
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    if optimizer is not None and state.get("optimizer"):
        optimizer.load_state_dict(state["optimizer"])
    if averaged is not None:
        if not state.get("averaged"):
            raise ValueError(f"{path} holds no averaged weights: it was saved by a run without "
                             "averaged=...; delete it to train again")
        averaged.load_state_dict(state["averaged"])
    history = History(**state["history"])
    history.resumed_from_checkpoint = True
    return history


def _planned_steps(batches, epochs: int, max_steps: int | None) -> int | None:
    """How many optimizer steps the run will make, or None when the batches have no length."""
    try:
        planned = len(batches) * epochs
    except TypeError:
        return max_steps
    return planned if max_steps is None else min(planned, max_steps)


def train(model: nn.Module, loss_fn: LossFn, batches: Iterable, *, epochs: int, lr: float,
          checkpoint: Path | str | None = None, max_steps: int | None = None,
          progress: bool = True, desc: str = "training", fast: bool | FastPath | None = None,
          sync_every: int | None = None, averaged: AveragedModel | None = None,
          time_budget: TimeBudget | None = None) -> History:
    """Train ``model`` with Adam on ``loss_fn(model, batch)`` for each batch of each epoch.

    Args:
        model: the network, already on its device; batches must be on the same device.
        loss_fn: returns a scalar loss for one batch. It is called with the model prepared for
            the chosen path (possibly a ``torch.compile`` wrapper sharing the model's weights).
        batches: re-iterable (a DataLoader or TensorBatches), one pass per epoch.
        epochs, lr: as in the notebook's plan. max_steps: stop early after this many steps.
        checkpoint: file to resume from and save to after each epoch; None keeps none.
        fast: how the model runs (``utils.fast.training``): None (default) the fastest correct
            path for the model's device, False plain eager float32, a ``FastPath`` as given.
        sync_every: read the loss back from the device every this many steps (default: every
            step on a CPU, every 50 on a GPU, where waiting for each value stalls the GPU).
        averaged: a ``torch.optim.swa_utils.AveragedModel`` of ``model``, made before training
            (e.g. ``multi_avg_fn=get_ema_multi_avg_fn(0.99), use_buffers=True``: an exponential
            moving average that also averages BatchNorm's statistics). ``update_parameters(model)``
            runs after every optimizer step, the checkpoint keeps it, and it ends in eval mode.
            None (default) keeps no average.
        time_budget: fit the run to the machine (``utils.time_budget``): after its first steps are
            timed, keep ``max_steps`` if they fit the budget's seconds, else as many as fit, not
            fewer than its ``min_steps``; the decision is printed. None (default): no limit but
            ``max_steps``. Ignored without ``max_steps``.

    Returns:
        The History, also of the epochs done before a restart when resuming; ``History.path``
        names the path this call trained on.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    config = _run_config(model, epochs, lr, max_steps, averaged)
    from tqdm.auto import tqdm

    with training(model, fast, steps=_planned_steps(batches, epochs, max_steps)) as run:
        if sync_every is None:
            sync_every = 1 if run.path.device_type == "cpu" else 50
        optimizer = run.adam(lr)
        history = _resume(checkpoint, config, model, optimizer, averaged)
        if time_budget is None and history.step_limit is not None and history.steps < (max_steps or 0):
            history.completed, history.step_limit = False, None  # no budget now: train the steps one cut
        if history.completed:
            _eval(model, averaged)
            return history
        history.path = run.description
        history.planned_steps = max_steps
        limit = StepLimit(max_steps, time_budget, decided=history.step_limit, steps_done=history.steps)
        start = time.perf_counter() - history.seconds
        model.train()
        for epoch in range(history.epochs_done, epochs):
            bar = tqdm(batches, desc=f"{desc} {epoch + 1}/{epochs}", total=_epoch_total(batches, limit, history.steps),
                       disable=not progress, leave=False)
            history.epoch_losses.append(_train_epoch(run, optimizer, loss_fn, bar, history, limit, sync_every,
                                                     averaged))
            history.epochs_done = epoch + 1
            history.path = run.description  # a measured path is known after the first step
            history.seconds = time.perf_counter() - start
            if not limit.undecided and time_budget is not None:
                history.step_limit = limit.max_steps
            stop = limit.max_steps is not None and history.steps >= limit.max_steps
            history.completed = stop or history.epochs_done == epochs
            if checkpoint is not None:
                _save(Path(checkpoint), model, optimizer, history, config, averaged)
            if stop:
                break
    _eval(model, averaged)
    return history


def _run_config(model: nn.Module, epochs: int, lr: float, max_steps: int | None,
                averaged: AveragedModel | None) -> dict:
    """What a checkpoint must match to be resumed: the plan and the network's class and size."""
    config = {"epochs": epochs, "lr": lr, "max_steps": max_steps, "model": type(model).__name__,
              "parameters": sum(p.numel() for p in model.parameters())}
    if averaged is not None:  # only then: checkpoints of runs without an average stay valid
        config["averaged"] = True
    return config


def _eval(model: nn.Module, averaged: AveragedModel | None) -> None:
    """Leave the trained network (and its average) in eval mode: BatchNorm on running statistics."""
    model.eval()
    if averaged is not None:
        averaged.eval()


def _train_epoch(run: TrainingRun, optimizer, loss_fn: LossFn, bar, history: History,
                 limit: StepLimit, sync_every: int, averaged: AveragedModel | None) -> float:
    """One pass over ``bar`` (the batches, behind a progress bar), stopping once the history holds
    ``limit.max_steps`` steps; the losses go into ``history``, read back from the device every
    ``sync_every`` steps (and the limit told of them), and ``averaged`` (if any) follows the weights.
    Returns the epoch's mean loss."""
    total, count, pending, first = 0.0, 0, [], history.steps
    for batch in bar:
        optimizer.zero_grad(set_to_none=True)
        loss = run.loss(loss_fn, batch)
        loss.backward()
        optimizer.step()
        if averaged is not None:
            averaged.update_parameters(run.model)
        pending.append(loss.detach())
        stop = limit.max_steps is not None and history.steps + len(pending) >= limit.max_steps
        if len(pending) >= sync_every or stop:
            values = _flush(pending, history)
            total, count = total + sum(values), count + len(values)
            bar.set_postfix(loss=f"{values[-1]:.4f}")
            _observe(limit, history.steps, bar, first)
            stop = limit.max_steps is not None and history.steps >= limit.max_steps  # a cut may stop it now
        if stop:
            break
    values = _flush(pending, history)
    total, count = total + sum(values), count + len(values)
    _observe(limit, history.steps, bar, first)
    return total / max(count, 1)


def _epoch_total(batches, limit: StepLimit, steps_done: int) -> int | None:
    """The progress bar's length for the next epoch: its batches, or fewer where the run stops first."""
    try:
        n_batches = len(batches)
    except TypeError:
        return None
    return _bar_length(n_batches, limit, steps_done)


def _bar_length(n_batches: int, limit: StepLimit, epoch_start: int) -> int:
    """An epoch of ``n_batches`` begun after ``epoch_start`` steps: how many of them the run will take."""
    return n_batches if limit.max_steps is None else max(0, min(n_batches, limit.max_steps - epoch_start))


def _observe(limit: StepLimit, steps_done: int, bar, epoch_start: int) -> None:
    """Tell ``limit`` the steps done; when that decides a cut, print why (above the progress bar,
    which then ends where the run will stop; ``epoch_start``: the steps done before this epoch)."""
    if not limit.undecided:
        return
    limit.observe(steps_done)
    if not limit.undecided:
        if limit.note:
            bar.write(limit.note)
        if bar.total is not None:  # the bar counts this epoch's batches: show where the run now stops
            bar.total = _bar_length(bar.total, limit, epoch_start)
            bar.refresh()


def _resume(checkpoint: Path | str | None, config: dict, model: nn.Module, optimizer,
            averaged: AveragedModel | None) -> History:
    """The History of a saved run of the same config (its weights and optimizer state loaded),
    else a fresh one; a checkpoint of another config is ignored with a warning."""
    if checkpoint is None or not Path(checkpoint).exists():
        return History()
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True).get("config")
    if saved != config:
        warnings.warn(f"{checkpoint} was saved for a different run ({saved}); training from scratch",
                      stacklevel=3)
        return History()
    return load_checkpoint(model, checkpoint, optimizer, averaged)


def _flush(pending: list[torch.Tensor], history: History) -> list[float]:
    """Move the losses waiting on the device into the history (one transfer); return them."""
    if not pending:
        return []
    values = torch.stack(pending).float().tolist()
    pending.clear()
    history.losses.extend(values)
    return values
