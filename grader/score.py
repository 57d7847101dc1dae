"""Points from what a run showed: pure, no kernel, no files.

A test cell earns its points if every part of it ran to the end with no error, nothing zeroed it
(edited, its answer's metadata changed, its answer copied from or handing its work to the course's
``utils``), and nothing reached for the grader before it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from grader.rebuild import Plan
from grader.result import Status
from grader.runner import RunOutcome
from grader.spec import AssignmentSpec

HIDDEN_FAILED = ("A hidden test of this cell failed: your code passes the visible checks but not on the other "
                 "inputs the grader tries. Check that it works for any sizes and in both training and "
                 "evaluation mode, not only for the example above.")
TAINTED = "scored 0: code before this check reached for the grader (flagged for review)"


@dataclass
class Score:
    cells: dict[str, tuple[float, float]]                  # grade_id -> (score, max_score), every graded cell
    messages: dict[str, str] = field(default_factory=dict)  # grade_id -> what the student sees
    flags: list[str] = field(default_factory=list)          # reasons for review found while scoring


def message(error: str) -> str:
    """What the student sees for a failed check, from the error's ``"Name: text"``."""
    name, _, text = error.partition(": ")
    if name == "NotImplementedError":
        return "not answered yet: the cell above still raises NotImplementedError"
    return text.strip() if name in ("CheckFailed", "AssertionError") and text.strip() else error.strip()


def _taint_start(plan: Plan, outcome: RunOutcome, course_changed: bool) -> int | None:
    """Index of the first cell that reached for the grader (tests after it score 0); -1 for all; None: none."""
    if course_changed:
        return -1
    found = list(plan.taint_from) + ([outcome.tampered_at] if outcome.tampered_at is not None else [])
    return min(found, default=None)


def _zeroed(plan: Plan, spec: AssignmentSpec, outcome: RunOutcome, flags: list[str]) -> dict[str, str]:
    """The plan's zeroed tests, plus those of answers that handed their work to the finished version."""
    zeroed = dict(plan.zeroed)
    for answer, how in outcome.reached.items():
        flags.append(f"the answer in cell {answer} reaches the course's finished version: {'; '.join(how[:3])}")
        for test in spec.tests_of.get(answer, []):
            zeroed.setdefault(test, f"your answer in {answer} hands its work to the course's finished version "
                                    f"in utils ({how[0]}); write it yourself")
    return zeroed


def score(plan: Plan, spec: AssignmentSpec, outcome: RunOutcome, course_changed: bool = False) -> Score:
    """The points and messages of every graded cell of ``spec`` after ``outcome``, and the flags to raise.

    ``plan`` is the plan that ran (its ``grade_ids`` and ``kinds`` give the test cells' places);
    ``course_changed`` True (the course's files changed during the run) scores every test 0. Flags come
    in this order: the kernel's tampering, answers that reached their finished version, the status
    when it is not "graded". ``plan`` and ``outcome`` are not changed.
    """
    result = Score({gid: (0.0, pts) for gid, pts in spec.points.items()})
    if outcome.tamper_found:
        where = plan.grade_ids[outcome.tampered_at] or f"#{outcome.tampered_at + 1}"
        result.flags.append(f"tampering: the kernel changed in cell {where}: {'; '.join(outcome.tamper_found[:4])}")
    zeroed = _zeroed(plan, spec, outcome, result.flags)
    taint_at = _taint_start(plan, outcome, course_changed)
    for index, gid in enumerate(plan.grade_ids):
        if plan.kinds[index] != "test":
            continue
        parts = ["visible", "hidden"] if spec.hidden.get(gid) else ["all"]
        ran = all((index, p) in outcome.ran for p in parts)
        error = next((outcome.errors[(index, p)] for p in parts if (index, p) in outcome.errors), None)
        if error:
            hidden_failed = (index, "hidden") in outcome.errors and (index, "visible") not in outcome.errors
            result.messages[gid] = HIDDEN_FAILED if hidden_failed else message(error)
        elif not ran:
            result.messages[gid] = f"not graded: {outcome.reason or 'the notebook stopped before this cell'}"
        if gid in zeroed:
            result.messages[gid] = f"scored 0: {zeroed[gid]} (flagged for review)"
        elif taint_at is not None and index > taint_at:
            result.messages[gid] = TAINTED
        elif ran and not error:
            result.cells[gid] = (spec.points[gid], spec.points[gid])
    if outcome.status != Status.GRADED:
        result.flags.append(f"{outcome.status}: {outcome.reason}")
    return result
