"""``grader.score``: points, messages and flags from a run's outcome, on a made-up assignment (no kernel).

The notebook: answer ``a`` (cell 0), its tests ``t1`` (cell 1, with hidden tests, 2 points) and ``t2``
(cell 2, 1 point), a student cell (3), and answer ``b`` (cell 4) with its test ``t3`` (cell 5, 3 points).
"""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

from cell_builders import notebook
from grader.rebuild import Plan
from grader.result import Status
from grader.runner import RunOutcome
from grader.score import HIDDEN_FAILED, TAINTED, message, score
from grader.spec import AssignmentSpec

POINTS = {"t1": 2.0, "t2": 1.0, "t3": 3.0}
KINDS = ["answer", "test", "test", "student", "answer", "test"]
GIDS = ["a", "t1", "t2", None, "b", "t3"]


def _spec() -> AssignmentSpec:
    return AssignmentSpec("made_up", Path("made_up.ipynb"), {"cells": []}, ["a", "t1", "t2", "b", "t3"],
                          dict(POINTS), {"a": "stub", "b": "stub"}, {"a": ["t1", "t2"], "b": ["t3"]},
                          {"t1": "check()", "t2": "check()", "t3": "check()"}, {"t1": "hidden()", "t2": "", "t3": ""})


def _plan(**changes) -> Plan:
    plan = Plan(notebook(), list(KINDS), list(GIDS), [], [], {}, {})
    for name, value in changes.items():
        setattr(plan, name, value)
    return plan


def _ran_all() -> RunOutcome:
    return RunOutcome(ran={(0, "all"), (1, "visible"), (1, "hidden"), (2, "all"), (3, "all"), (4, "all"),
                           (5, "all")})


def test_a_clean_run_earns_every_point():
    result = score(_plan(), _spec(), _ran_all())
    assert result.cells == {"t1": (2.0, 2.0), "t2": (1.0, 1.0), "t3": (3.0, 3.0)}
    assert result.messages == {} and result.flags == []


def test_a_hidden_failure_is_told_apart_from_a_visible_one():
    outcome = _ran_all()
    outcome.errors = {(1, "hidden"): "AssertionError: wrong for odd sizes", (2, "all"): "CheckFailed: shape (2, 3)",
                      (5, "all"): "NotImplementedError: "}
    result = score(_plan(), _spec(), outcome)
    assert result.cells == {"t1": (0.0, 2.0), "t2": (0.0, 1.0), "t3": (0.0, 3.0)}
    assert result.messages["t1"] == HIDDEN_FAILED
    assert result.messages["t2"] == "shape (2, 3)"
    assert result.messages["t3"].startswith("not answered yet")
    # a visible failure is reported as such, even when the hidden part failed too
    outcome.errors[(1, "visible")] = "AssertionError: wrong shape"
    assert score(_plan(), _spec(), outcome).messages["t1"] == "wrong shape"


def test_a_test_whose_hidden_part_did_not_run_scores_nothing():
    outcome = _ran_all()
    outcome.ran -= {(1, "hidden"), (5, "all")}
    outcome.status, outcome.reason = Status.TIMEOUT, "a cell ran longer than 5 s"
    result = score(_plan(), _spec(), outcome)
    assert result.cells == {"t1": (0.0, 2.0), "t2": (1.0, 1.0), "t3": (0.0, 3.0)}
    assert result.messages == {"t1": "not graded: a cell ran longer than 5 s",
                               "t3": "not graded: a cell ran longer than 5 s"}
    assert result.flags == ["timeout: a cell ran longer than 5 s"]


def test_tests_after_tampering_score_nothing_and_those_before_keep_their_points():
    outcome = _ran_all()
    outcome.tampered_at, outcome.tamper_found = 3, ["builtins.print was replaced"]
    result = score(_plan(), _spec(), outcome)
    assert result.cells == {"t1": (2.0, 2.0), "t2": (1.0, 1.0), "t3": (0.0, 3.0)}
    assert result.messages == {"t3": TAINTED}
    assert result.flags == ["tampering: the kernel changed in cell #4: builtins.print was replaced"]
    # tampering found by reading the code counts from its own cell on, the earlier of the two wins
    result = score(_plan(taint_from={1: "exec of built code"}), _spec(), outcome)
    assert result.cells == {"t1": (2.0, 2.0), "t2": (0.0, 1.0), "t3": (0.0, 3.0)}
    assert set(result.messages) == {"t2", "t3"}, "the tainted cell itself is not after the taint"


def test_changed_course_files_zero_every_test():
    result = score(_plan(), _spec(), _ran_all(), course_changed=True)
    assert all(points == 0 for points, _ in result.cells.values())
    assert result.messages == {gid: TAINTED for gid in POINTS}


def test_zeroed_tests_and_answers_that_reach_the_finished_version():
    plan = _plan(zeroed={"t2": "test cell t2 was edited"})
    outcome = _ran_all()
    outcome.reached = {"b": ["calls utils.unet_utils:UNet", "imports utils.unet_utils"]}
    before = copy.deepcopy(plan.zeroed)
    result = score(plan, _spec(), outcome)
    assert result.cells == {"t1": (2.0, 2.0), "t2": (0.0, 1.0), "t3": (0.0, 3.0)}
    assert result.messages["t2"] == "scored 0: test cell t2 was edited (flagged for review)"
    assert "calls utils.unet_utils:UNet" in result.messages["t3"] and "write it yourself" in result.messages["t3"]
    assert result.flags == ["the answer in cell b reaches the course's finished version: "
                            "calls utils.unet_utils:UNet; imports utils.unet_utils"]
    assert plan.zeroed == before, "scoring does not change the plan"


@pytest.mark.parametrize("error, expected", [
    ("AssertionError: the output has shape (1, 2)", "the output has shape (1, 2)"),
    ("AssertionError: ", "AssertionError:"),
    ("ValueError: too many values", "ValueError: too many values"),
    ("NotImplementedError: ", "not answered yet: the cell above still raises NotImplementedError"),
])
def test_the_message_for_a_failed_check(error, expected):
    assert message(error) == expected


def test_status_is_its_string():
    assert Status.OUT_OF_MEMORY == "out_of_memory" and f"{Status.STALLED}" == "stalled"
    assert [s.value for s in Status] == ["graded", "timeout", "crashed", "out_of_memory", "unreadable", "stalled",
                                         "missing"]
