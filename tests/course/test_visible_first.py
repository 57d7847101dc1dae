"""No hidden surprise: a mistake the hidden tests charge is shown first by a visible check.

``test_notebooks.py::test_wrong_answers_lose_points`` enforces the rule on every wrong answer of
grader/answer_sets/mutants/: it runs each test cell as its visible part and then its hidden part
(``split_hidden``) and fails when only the hidden part catches the mistake. The tests here make that run mean what it
says: the visible part is exactly what the released student notebook holds, a wrong answer that only
the hidden part catches is reported as such, and every graded answer cell has wrong answers to try.
"""
from __future__ import annotations

import pytest

from cell_builders import answer_cell, notebook, test_cell
from conftest import ROOT
from course_harness import (graded_test_cells, nbgrader_meta, read, released_path, run_trimmed, solution_cells,
                            solution_path)
from grader.answer_sets.mutants import hidden_id, load, split_hidden, split_source

ASSIGNMENTS = sorted(p.name for p in (ROOT / "solutions").iterdir() if (p / f"{p.name}.ipynb").exists())


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_visible_part_is_what_the_student_gets(assignment):
    """The visible part of each test cell equals that cell in the released notebook, and the two parts
    together are the whole cell."""
    solution = read(solution_path(assignment))
    released = {nbgrader_meta(c).get("grade_id"): "".join(c["source"]) for c in read(released_path(assignment))["cells"]}
    split = {nbgrader_meta(c).get("grade_id"): "".join(c["source"]) for c in split_hidden(solution)["cells"]}
    tests = graded_test_cells(solution)
    assert tests
    for grade_id, cell in tests.items():
        assert split[grade_id] == released[grade_id], f"{grade_id}: the visible part differs from the release"
        hidden = split[hidden_id(grade_id)]
        assert hidden.strip(), f"{grade_id}: no hidden part"
        whole = "".join(cell["source"])
        assert all(line in whole for line in hidden.splitlines()), grade_id


def test_split_refuses_a_hidden_block_it_cannot_run_on_its_own():
    inside = "try:\n    check(1)\n    ### BEGIN HIDDEN TESTS\n    check(2)\n    ### END HIDDEN TESTS\nfinally:\n    pass"
    with pytest.raises(ValueError, match="left margin"):
        split_source(inside)
    followed = "check(1)\n### BEGIN HIDDEN TESTS\ncheck(2)\n### END HIDDEN TESTS\ncheck(3)"
    with pytest.raises(ValueError, match="end the cell"):
        split_source(followed)
    assert split_source("check(1)\n### BEGIN HIDDEN TESTS\ncheck(2)\n### END HIDDEN TESTS\n") == \
        ("check(1)\n", "check(2)")


def test_a_mistake_only_the_hidden_part_catches_is_seen(tmp_path):
    """The run that enforces the rule tells a visible failure from a hidden-only one."""
    nb = notebook(
        answer_cell("double", "def double(x):\n    return 2 if x == 1 else 0"),  # fitted to x = 1
        test_cell("test_double", "assert double(1) == 2, 'visible'\n### BEGIN HIDDEN TESTS\n"
                                 "assert double(3) == 6, 'hidden'\n### END HIDDEN TESTS"),
        test_cell("test_double_more", "assert double(0) == 0\n### BEGIN HIDDEN TESTS\n"
                                      "assert double(-1) == -2, 'hidden 2'\n### END HIDDEN TESTS"))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    results = run_trimmed(split_hidden(nb), hidden_id("test_double_more"), tmp_path)
    assert results["test_double"] is None and "hidden" in results[hidden_id("test_double")]
    assert results["test_double_more"] is None and "hidden 2" in results[hidden_id("test_double_more")]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_answer_cell_has_wrong_answers(assignment):
    """Every graded code answer cell has at least one mutant, and each mutant names cells that exist."""
    nb = read(solution_path(assignment))
    answers = {k for k, c in solution_cells(nb).items() if c["cell_type"] == "code"}
    tests = set(graded_test_cells(nb))
    mutants = load(assignment)
    missing = sorted(answers - {m.cell for m in mutants})
    assert not missing, (f"answer cells of {assignment} with no wrong answer in "
                         f"grader/answer_sets/mutants/{assignment}.py: {missing}")
    for m in mutants:
        assert m.cell in answers and m.fails and set(m.fails) <= tests, m
