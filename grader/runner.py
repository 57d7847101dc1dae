"""Run a rebuilt notebook once in a fresh kernel and report what the trusted side saw.

    outcome = run_plan(plan, spec, course_root, work, use_sandbox=True, limits=limits)

The notebook runs one step at a time: a cell, or the visible and then the hidden part of a test cell
as two requests, so a failure is known to be visible or hidden. After each student cell, and after the
last step of every other cell, the grader's probe reports whether the kernel was tampered with; around
an answer cell and its tests, the watch on the course's finished code reports whether the answer
handed its work to it. The run stops at the first timeout, stall, crash or limit; the outcome says
where and why.
"""
from __future__ import annotations

import copy
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from grader import finished, tamper
from grader.cells import source
from grader.kernel_session import KernelSession
from grader.rebuild import Plan
from grader.result import Status
from grader.sandbox import Limits
from grader.spec import AssignmentSpec
from grader.watchdog import KillReason

WATCH = "the grader's watch on the course's finished code"


@dataclass
class Step:
    index: int          # cell index in the plan's notebook
    part: str           # "all", "visible" or "hidden"
    source: str


@dataclass
class RunOutcome:
    """What the trusted side observed while running a plan."""

    errors: dict[tuple[int, str], str] = field(default_factory=dict)   # (cell, part) -> "Name: message"
    ran: set[tuple[int, str]] = field(default_factory=set)
    tampered_at: int | None = None            # first cell after which the probe saw a change
    tamper_found: list[str] = field(default_factory=list)
    status: str = Status.GRADED
    stopped_at: int | None = None              # cell where the run ended early
    reason: str = ""
    stalled_step: int | None = None
    truncated: bool = False
    probe_seconds: float = 0.0
    nudges: int = 0                            # times a kernel waiting idle was woken
    reached: dict[str, list[str]] = field(default_factory=dict)   # answer cell -> how it reached its finished version

    def add_reached(self, answer: str, seen: list[str]) -> None:
        """Record the ways ``answer`` reached its finished version, each once, in the order first seen."""
        for line in seen:
            if line not in self.reached.setdefault(answer, []):
                self.reached[answer].append(line)


def plan_steps(plan: Plan, spec: AssignmentSpec) -> list[Step]:
    """The requests that run the plan's code cells, in order: test cells with hidden tests give two."""
    steps = []
    for index, cell in enumerate(plan.nb.cells):
        if cell.cell_type != "code":
            continue
        gid = plan.grade_ids[index]
        if plan.kinds[index] == "test" and spec.hidden.get(gid):
            steps.append(Step(index, "visible", spec.visible[gid]))
            steps.append(Step(index, "hidden", spec.hidden[gid]))
        else:
            steps.append(Step(index, "all", source(cell)))
    return steps


def install_watch(session: KernelSession, plan: Plan, spec: AssignmentSpec, course_root: Path,
                  steps: list[Step]) -> dict[int, str]:
    """Install ``grader.reach_kernel`` in the kernel; cell index -> the answer whose finished version is
    watched while that cell runs (the answer cell itself and its test cells). Empty if it did not start."""
    table = finished.answer_table({gid: source(spec.cell(gid)) for gid in spec.answers}, course_root / "utils")
    if not table:
        return {}
    answer_of = {test: gid for gid, tests in spec.tests_of.items() for test in tests}
    trusted = [s.source for s in steps if plan.kinds[s.index] in ("test", "fixed")]
    reply = session.silent(finished.install_code(session.watch_name, table, trusted, tamper.cell_dirs()))
    if reply.get("status") != "ok":
        return {}
    watched = {}
    for index, gid in enumerate(plan.grade_ids):
        answer = gid if plan.kinds[index] == "answer" else answer_of.get(gid) if plan.kinds[index] == "test" else None
        if answer in table:
            watched[index] = answer
    return watched


class _Run:
    """One run of a plan in one session: the loop over its steps, and the outcome it leaves."""

    def __init__(self, session: KernelSession, plan: Plan, spec: AssignmentSpec, limits: Limits,
                 freeze_before: str | None):
        self.session, self.plan, self.spec, self.limits = session, plan, spec, limits
        self.steps = plan_steps(plan, spec)
        self.deadline = time.monotonic() + limits.notebook_timeout   # the kernel's start counts too
        self.freeze_before = freeze_before
        self.outcome = RunOutcome()
        self.current: Step | None = None

    def run(self, course_root: Path) -> None:
        """Run every step until the notebook's time is up; errors of the kernel propagate."""
        outcome, steps = self.outcome, self.steps
        watched = install_watch(self.session, self.plan, self.spec, course_root, steps)
        for position, step in enumerate(steps):
            self.current = step
            remaining = self.deadline - time.monotonic()
            if remaining <= 1:
                outcome.status, outcome.reason = Status.TIMEOUT, "the notebook ran out of time"
                outcome.stopped_at = step.index
                break
            self._run_step(step, max(1, min(self.limits.cell_timeout, remaining)), watched.get(step.index))
            last_of_cell = position == len(steps) - 1 or steps[position + 1].index != step.index
            if (self.plan.kinds[step.index] in ("student", "answer") or last_of_cell) and outcome.tampered_at is None:
                changes = self.session.probe()
                if changes:
                    outcome.tampered_at = step.index
                    outcome.tamper_found = changes

    def _run_step(self, step: Step, timeout: float, answer: str | None) -> None:
        """Run one step (watched for ``answer``'s finished version if given) and keep its outputs in the plan."""
        session, plan, outcome = self.session, self.plan, self.outcome
        cell = plan.nb.cells[step.index]
        kind = plan.kinds[step.index]
        if self.freeze_before and plan.grade_ids[step.index] == self.freeze_before and session.root:
            self.freeze_before = None
            session.freeze()
        work_cell = copy.deepcopy(cell)
        work_cell.source = step.source
        if answer:  # the objects are looked at after the answer cell, and again before each test
            outcome.add_reached(answer, session.ask(finished.begin_expression(
                session.watch_name, answer, inspect=kind == "test" and step.part != "hidden"), WATCH))
        done = session.execute(work_cell, step.index, timeout)
        if answer:
            outcome.add_reached(answer, session.ask(finished.end_expression(
                session.watch_name, answer, inspect=kind == "answer"), WATCH))
        outputs = list(done.get("outputs", []))
        if step.part == "hidden":
            cell.outputs = list(cell.get("outputs", [])) + outputs
        else:
            cell.outputs = outputs
            cell.execution_count = done.get("execution_count")
        plan.nb.cells[step.index] = cell
        outcome.ran.add((step.index, step.part))
        errors = [o for o in outputs if o.get("output_type") == "error"]
        if errors:
            outcome.errors[(step.index, step.part)] = f"{errors[0].get('ename')}: {errors[0].get('evalue')}"

    def timed_out(self) -> None:
        """A cell ran past the cell timeout."""
        self.outcome.status = Status.TIMEOUT
        self.outcome.reason = f"a cell ran longer than {self.limits.cell_timeout:g} s"
        self.outcome.stopped_at = self.current.index if self.current else None

    def stopped(self, error: Exception) -> None:
        """The kernel died, stalled or stopped answering; the watchdog's reason, if any, says why.

        Raises RuntimeError if the kernel never ran a step (it did not start: no fault of the submission's).
        """
        outcome, current, watch, limits = self.outcome, self.current, self.session.watch, self.limits
        outcome.stopped_at = current.index if current else None
        if current is not None and (current.index, current.part) in outcome.ran:
            outcome.stopped_at = current.index + 1
        why = watch.reason
        if why == KillReason.STALLED:
            lost = " after it reported idle: its reply was lost" if watch.last_message == "status idle" else ""
            where = f"cell {self.plan.grade_ids[current.index] or '#' + str(current.index + 1)}" if current else "start"
            outcome.status = Status.STALLED
            outcome.reason = f"the kernel stalled in {where} (no CPU and no output{lost}; last message: " \
                             f"{watch.last_message or 'none'})"
            outcome.stalled_step = self.steps.index(current) if current else -1
        elif why == KillReason.OUT_OF_MEMORY:
            outcome.status, outcome.reason = Status.OUT_OF_MEMORY, f"more than {limits.memory >> 20} MiB of memory"
        elif why == KillReason.PROCESSES:
            outcome.status, outcome.reason = Status.CRASHED, f"more than {limits.processes} processes"
        elif why == KillReason.OUTPUT:
            outcome.status, outcome.reason = Status.CRASHED, f"more than {limits.output_flood >> 20} MiB of output"
        elif current is None:
            raise RuntimeError(f"the grading kernel did not start: {error}") from error
        else:
            text = " ".join(e for e in outcome.errors.values())
            outcome.status = Status.OUT_OF_MEMORY if "MemoryError" in text else Status.CRASHED
            outcome.reason = f"the kernel died ({type(error).__name__}: {error})"

    def failed(self, error: Exception) -> None:
        """nbclient or zmq failed while a step ran."""
        self.outcome.status, self.outcome.reason = Status.CRASHED, f"{type(error).__name__}: {error}"
        self.outcome.stopped_at = self.current.index

    def finish(self) -> RunOutcome:
        """The outcome, with what the session counted and a limit the watchdog hit after the last step."""
        outcome, session = self.outcome, self.session
        outcome.nudges = session.watch.nudges
        outcome.truncated = session.truncated
        outcome.probe_seconds = session.probe_seconds
        if outcome.status == Status.GRADED and session.watch.reason:
            outcome.status = {KillReason.OUT_OF_MEMORY: Status.OUT_OF_MEMORY, KillReason.STALLED: Status.STALLED}.get(
                session.watch.reason, Status.CRASHED)
            outcome.reason = session.watch.reason
        return outcome


def run_plan(plan: Plan, spec: AssignmentSpec, course_root: Path, work: Path, *, use_sandbox: bool,
             limits: Limits, freeze_before: str | None = None) -> RunOutcome:
    """Run the plan once in a fresh kernel (outputs go into ``plan.nb``); report what the trusted side saw.

    ``work`` is the kernel's working folder; ``freeze_before`` (tests only) names a grade id before
    which the kernel is frozen, as a lost message would leave it.

    Raises:
        RuntimeError: the kernel did not start (or its probe did not), before any step ran.
        OSError: the kernel's files could not be prepared.
    """
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    course_root = Path(course_root).resolve()
    session = KernelSession(plan.nb, course_root, work, use_sandbox=use_sandbox, limits=limits)
    run = _Run(session, plan, spec, limits, freeze_before)
    try:
        with session:
            run.run(course_root)
    except CellTimeoutError:
        run.timed_out()
    except (DeadKernelError, RuntimeError, TimeoutError, OSError) as error:
        run.stopped(error)
    except Exception as error:  # nbclient or zmq failures while a submission runs
        if run.current is None:
            raise
        run.failed(error)
    return run.finish()


def check_kernel_starts(course_root: Path, spec: AssignmentSpec, workdir: Path, use_sandbox: bool,
                        limits: Limits) -> None:
    """Start a kernel on an empty notebook in an empty folder under ``workdir``; raise RuntimeError if even
    that fails (then the grader, not the submission, is broken)."""
    import nbformat

    scratch = workdir / "kernel-check"
    scratch.mkdir(parents=True, exist_ok=True)
    empty = Plan(nbformat.v4.new_notebook(), [], [], [], [], {}, {})
    run_plan(empty, spec, course_root, scratch, use_sandbox=use_sandbox, limits=limits)
    shutil.rmtree(scratch, ignore_errors=True)
