"""The grader's small pure pieces: cell markers, the split of a test cell, the choice among copies of an
answer, the check that a file is a notebook, the steps a plan runs as. No kernel, no course files."""
from __future__ import annotations

from pathlib import Path

import pytest

from cell_builders import code_cell, grade_id_only, markdown_cell, notebook
from grader.cells import BEGIN_SOLUTION, CODE_STUB, END_SOLUTION, meta, replace_region, source
from grader.rebuild import Plan, choose_answers
from grader.runner import Step, plan_steps
from grader.spec import AssignmentSpec, split_hidden
from grader.submission import read_notebook


def test_meta_and_source_read_every_stored_form():
    assert meta({"metadata": {"nbgrader": None}}) == {} and meta({}) == {}
    assert meta({"metadata": {"nbgrader": {"grade_id": "g"}}}) == {"grade_id": "g"}
    assert source({"source": ["a\n", "b"]}) == "a\nb" and source({"source": "a\nb"}) == "a\nb" and source({}) == ""


def test_a_solution_region_becomes_the_stub_indented_like_its_marker():
    text = f"def f(x):\n    {BEGIN_SOLUTION}\n    return 2 * x\n    {END_SOLUTION}\nprint(f(1))"
    assert replace_region(text, BEGIN_SOLUTION, END_SOLUTION, CODE_STUB) == \
        "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\nprint(f(1))"
    assert replace_region(text, BEGIN_SOLUTION, END_SOLUTION, None) == "def f(x):\nprint(f(1))"


def test_a_test_cell_splits_into_visible_and_hidden_parts():
    text = "\ncheck(a)\n\n### BEGIN HIDDEN TESTS\ncheck(b)\n### END HIDDEN TESTS\ncheck(c)\n"
    assert split_hidden(text) == ("check(a)\ncheck(c)", "check(b)")
    assert split_hidden("\ncheck(a)\n") == ("check(a)", "")


def _spec(**hidden) -> AssignmentSpec:
    return AssignmentSpec("x", Path("x.ipynb"), {"cells": []}, ["a", "t"], {"t": 1.0}, {"a": "stub"},
                          {"a": ["t"]}, {"t": "check(a)"}, {"t": hidden.get("t", "")})


def test_of_several_copies_of_an_answer_the_last_with_code_is_graded():
    blank_and_code = {"cells": [grade_id_only("a", "stub\n"), grade_id_only("a", "x = 1"), grade_id_only("t", "check(a)")]}
    assert choose_answers(blank_and_code, _spec()) == ({"a": "x = 1"}, [],
                                                       ["answer cell a appears 2 times; graded the one with code"])
    two_codes = {"cells": [grade_id_only("a", "x = 1"), grade_id_only("a", "x = 2")]}
    chosen, flags, notes = choose_answers(two_codes, _spec())
    assert chosen == {"a": "x = 2"} and notes == [] and flags == [
        "duplicate answer cell a: 2 copies with different code; graded the last"]
    assert choose_answers({"cells": [grade_id_only("a", "stub")]}, _spec()) == ({"a": "stub"}, [], [])


@pytest.mark.parametrize("text, error", [
    ("[]", "not a notebook"), ('{"cells": {}}', "not a notebook"),
    ('{"cells": [{"cell_type": "image"}]}', "not a notebook cell"),
    ('{"cells": [{"cell_type": "code", "source": 3}]}', "source is not text"),
    ("{", "Expecting"),
])
def test_what_is_not_a_notebook_is_refused_with_a_reason(tmp_path, text, error):
    path = tmp_path / "x.ipynb"
    path.write_text(text)
    with pytest.raises(ValueError, match=error):
        read_notebook(path)


def test_a_test_cell_with_hidden_tests_runs_as_two_steps():
    nb = notebook(markdown_cell("# x"), code_cell("x = 1"), code_cell("the whole test cell"))
    plan = Plan(nb, ["markdown", "answer", "test"], [None, "a", "t"], [], [], {}, {})
    assert plan_steps(plan, _spec(t="check(b)")) == [Step(1, "all", "x = 1"), Step(2, "visible", "check(a)"),
                                                     Step(2, "hidden", "check(b)")]
    assert plan_steps(plan, _spec())[-1] == Step(2, "all", "the whole test cell")
