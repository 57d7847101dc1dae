"""Timing the candidate execution paths on the model at hand (``utils.fast``'s ``measure``).

Where no rule is safe (on a CPU with native bfloat16, bfloat16 autocast won 1.97x on one U-Net and
channels_last + bfloat16 1.45x on another), ``utils.fast`` times each candidate on the model's first
real call and keeps the fastest. The candidates run interleaved, after one warm-up call each, and
each keeps its quickest round, so a burst of other work on the machine hurts every candidate alike.
Candidates come in order of preference (float32 before bfloat16): going through them in that order, a
candidate replaces the one kept so far only if it is more than ``margin`` (10%) faster, so timing noise
on a small model never trades float32's precision for nothing.
The choice is kept for the rest of the process, per network, input shapes and thread count, so a
notebook pays for it once per model (a few seconds against minutes of training).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, TypeVar

import torch

P = TypeVar("P")
_CHOSEN: dict[tuple, object] = {}


def probe_key(model, purpose: str, inputs, threads: int | None) -> tuple:
    """What makes two timings interchangeable: the network (class and size), the purpose, the
    shapes and dtypes of the inputs (a nested batch is flattened) and the thread count."""
    def shapes(value):
        if torch.is_tensor(value):
            return (tuple(value.shape), str(value.dtype))
        if isinstance(value, (list, tuple)):
            return tuple(shapes(v) for v in value)
        return type(value).__name__

    size = sum(p.numel() for p in model.parameters()) if isinstance(model, torch.nn.Module) else 0
    return type(model).__name__, size, purpose, shapes(inputs), threads or torch.get_num_threads()


def fastest(candidates: list[P], time_one: Callable[[P], float], key: tuple, *,
            rounds: int = 2, margin: float = 0.1) -> tuple[P, dict[P, float]]:
    """The candidate kept (see ``margin``), and each candidate's best time in seconds.

    Args:
        candidates: the paths to compare (hashable), the preferred (most exact) first.
        time_one: runs one call on a candidate and returns its duration in seconds.
        key: from ``probe_key``; a key timed before in this process returns its choice at once.
        rounds: timed calls per candidate after its warm-up call.
        margin: how much faster (0.1 = 10%) a candidate must be than the one kept so far, taking
            the candidates in order, to be kept instead.
    """
    if key in _CHOSEN:
        return _CHOSEN[key]
    for candidate in candidates:
        time_one(candidate)  # warm-up: first calls allocate and pick kernels
    best = {c: float("inf") for c in candidates}
    for _ in range(rounds):
        for candidate in candidates:
            best[candidate] = min(best[candidate], time_one(candidate))
    winner = candidates[0]
    for candidate in candidates[1:]:
        if best[candidate] * (1 + margin) < best[winner]:
            winner = candidate
    _CHOSEN[key] = winner, best
    return winner, best


def forget() -> None:
    """Drop every choice made so far (tests; a machine whose load changed a lot)."""
    _CHOSEN.clear()


def with_reason(winner, best: dict, why: str = ""):
    """``winner`` with a reason: ``why`` (if any), then each candidate's measured time."""
    times = ", ".join(f"{c.switches} {1000 * s:.0f} ms" for c, s in sorted(best.items(), key=lambda kv: kv[1]))
    return replace(winner, reason=(f"{why}; " if why else "") + f"timed here: {times}")
