"""Fitting a training run to the machine: fewer steps where a step is slow (the fast profile).

The fast profile's step counts were chosen on a 2-core CPU with native bfloat16 (AVX-512 BF16), where
notebook 03's U-Net takes 183 ms a step at batch 64. A CPU without it runs the same step in float32:
748 ms on a 2-core AVX2 CPU, so the planned steps would take four times as long. A ``TimeBudget`` times
the first steps of the run and then keeps the planned steps if they fit its seconds, else as many as
fit, but never fewer than ``min_steps``: the fewest with which the notebook still shows what it
promises (measured; README, "What a student gets"). A run that needs more than its budget even then
says how long it will take before it takes it.

``COURSE_TIME_BUDGET=off`` (or ``0``, ``false``, ``no``) in the environment trains every planned step
whatever the machine (``utils.profiles.train_plan`` reads it); a run a budget cut earlier then goes on
from its checkpoint to the planned steps.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

ROUND_TO = 50  # steps are cut to a multiple of this, so close timings give the same run
clock = time.perf_counter  # seconds; the tests replace it with a fake clock


@dataclass(frozen=True)
class TimeBudget:
    """How long a training run may take, and the fewest steps worth taking.

    Attributes:
        seconds: wall time the run's steps may take (seconds, > 0).
        min_steps: never train fewer steps than this (0: no floor).
        warmup: steps left untimed at the start (first calls allocate memory and choose kernels).
        timed: steps timed after the warm-up to estimate the time of one step.
    """

    seconds: float
    min_steps: int = 0
    warmup: int = 5
    timed: int = 20

    def __post_init__(self):
        if not self.seconds > 0:
            raise ValueError(f"a time budget must be a positive number of seconds, got {self.seconds!r}")


def fitted_steps(planned: int, step_seconds: float, budget: TimeBudget) -> int:
    """The steps a run of ``planned`` steps keeps when each takes ``step_seconds``.

    ``planned`` if they fit ``budget.seconds``; else the largest multiple of ``ROUND_TO`` that fits,
    but never below ``budget.min_steps`` or ``ROUND_TO`` (nor above ``planned``).
    """
    if planned * step_seconds <= budget.seconds:
        return planned
    fit = int(budget.seconds / step_seconds) // ROUND_TO * ROUND_TO
    return min(planned, max(fit, budget.min_steps, ROUND_TO))


class StepLimit:
    """The step a run stops at: ``max_steps``, cut to ``budget`` once the first steps are timed.

    ``observe(steps_done)`` is called whenever the run knows how many steps are done (on a GPU only
    after the device has finished them: the loss is read back then). Counting from ``steps_done`` at
    creation (a resumed run's earlier steps), the first call at or past ``warmup`` more steps starts the
    clock and the first at or past ``warmup + timed`` decides; the decision never stops the run before
    the steps already done. ``decided``: a decision kept from an earlier session of the same run.
    """

    def __init__(self, max_steps: int | None, budget: TimeBudget | None, decided: int | None = None,
                 steps_done: int = 0):
        self.max_steps = max_steps if decided is None else decided
        self.budget = budget if decided is None and max_steps is not None else None
        self.note = ""
        self._first = steps_done
        self._start: tuple[int, float] | None = None

    @property
    def undecided(self) -> bool:
        return self.budget is not None

    def observe(self, steps_done: int, now: float | None = None) -> None:
        if self.budget is None:
            return
        now = clock() if now is None else now
        if self._start is None:
            if steps_done - self._first >= self.budget.warmup:
                self._start = (steps_done, now)
            return
        first, began = self._start
        if steps_done - first < self.budget.timed:
            return
        step_seconds = (now - began) / (steps_done - first)
        self.note = self._decide(step_seconds, steps_done)
        self.budget = None

    def _decide(self, step_seconds: float, steps_done: int) -> str:
        planned, budget = self.max_steps, self.budget
        kept = max(fitted_steps(planned, step_seconds, budget), steps_done)
        self.max_steps = kept
        per_step = f"{1000 * step_seconds:.0f} ms a step here"
        if kept == planned and planned * step_seconds <= budget.seconds:
            return ""
        if kept == planned:
            return (f"time budget: {per_step}; the {planned:,} steps take about {_minutes(planned * step_seconds)} "
                    f"(the budget is {_minutes(budget.seconds)}, but fewer steps do not show this notebook's "
                    f"result). A GPU, or a CPU with native bfloat16, takes a fraction of that")
        if kept == budget.min_steps and kept * step_seconds > budget.seconds:
            return (f"time budget: {per_step}, so {planned:,} steps would take {_minutes(planned * step_seconds)}; "
                    f"training {kept:,}, the fewest that show this notebook's result (about "
                    f"{_minutes(kept * step_seconds)}, over the budget of {_minutes(budget.seconds)}). "
                    "COURSE_TIME_BUDGET=off trains them all")
        return (f"time budget: {per_step}, so {planned:,} steps would take {_minutes(planned * step_seconds)}; "
                f"training {kept:,} (about {_minutes(kept * step_seconds)}, the budget of this run). "
                "COURSE_TIME_BUDGET=off trains them all")


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"
