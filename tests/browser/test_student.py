"""A student in notebook 01 (grade profile): types an answer, runs all cells, reads the check under
the answer, and presses Validate. Each test works on its own copy of the student notebook."""
from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from grader.answer_sets.mutants import apply, load

from .ui import Notebook, answer_cells, check_cells, graded_cells, nbgrader, solved, source, success_message, without_solution_markers

pytestmark = pytest.mark.browser
ASSIGNMENT = "01_UNets"


def notebooks(lab) -> tuple[dict, dict]:
    """The student and the instructor version of 01, as stored in the course."""
    student = json.loads((lab.course / "notebooks" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text())
    instructor = json.loads((lab.course / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text())
    return student, instructor


def test_check_under_an_answer_shows_the_result(page, lab):
    student, instructor = notebooks(lab)
    path = lab.write_notebook(f"student-checks/{ASSIGNMENT}.ipynb", student)
    answer = answer_cells(student, "code")[0]
    check = next(i for i in check_cells(student) if i > answer)
    grade_id = nbgrader(student["cells"][answer])["grade_id"]
    right = solved(student, instructor)["cells"][answer]
    instructor_cell = next(c for c in instructor["cells"] if nbgrader(c).get("grade_id") == grade_id)
    mutant = next(m for m in load(ASSIGNMENT) if m.cell == grade_id)  # a plausible wrong answer
    wrong = without_solution_markers(apply(mutant, source(instructor_cell)))

    notebook = Notebook(page, lab, path)
    notebook.type_into(answer, wrong)
    page.steps.shot("wrong-answer-typed", notebook.cell(answer))
    notebook.run_all()
    output = notebook.expect_output(check, "expected")
    for part in ("got", "Hint"):
        expect(output).to_contain_text(part)
    page.steps.shot("check-shows-expected-got-hint", output, end=True)

    notebook.type_into(answer, source(right))
    page.steps.shot("right-answer-typed", notebook.cell(answer))
    notebook.run_all()
    output = notebook.expect_output(check, success_message(student["cells"][check]))
    expect(output).not_to_contain_text("Traceback")
    page.steps.shot("check-shows-success", output)


def test_validate_reports_failing_cells_then_success(page, lab):
    student, instructor = notebooks(lab)
    path = lab.write_notebook(f"student-validate/{ASSIGNMENT}.ipynb", student)
    notebook = Notebook(page, lab, path)

    results = notebook.validate()
    page.steps.shot("validate-blank")
    expect(results).to_have_class(re.compile(r"\bvalidation-failed\b"))
    # Every check fails on the blank notebook and every written answer is missing; the dialog lists each.
    expect(results.get_by_text("The following cell failed")).to_have_count(len(graded_cells(student)))
    expect(results.get_by_text("You did not provide a response")).to_have_count(
        len(graded_cells(student)) - len(check_cells(student)))
    notebook.close_dialog()

    answers = solved(student, instructor)
    for index in answer_cells(student):
        notebook.type_into(index, source(answers["cells"][index]))
    page.steps.shot("all-answers-typed")
    results = notebook.validate()  # saves the notebook first, then nbgrader runs it
    expect(results).to_have_class(re.compile(r"\bvalidation-success\b"))
    page.steps.shot("validate-solved")
