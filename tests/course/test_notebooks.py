"""Every course notebook: stored clean, released from its instructor version, graded honestly.

For each assignment with an instructor notebook in solutions/:
- both versions are stored without outputs, and notebooks/ equals a fresh nbgrader release;
- a real ``nbgrader autograde`` gives the instructor's answers full marks, the untouched student
  version zero, and runs in the grade profile (its time is printed);
- the visible tests pass on the right answers (nbgrader's Validator, as a student's Validate);
- every plausible wrong answer in grader/answer_sets/mutants/<id>.py fails the test cells it should,
  in their visible part (what the student runs before handing in) whenever their hidden part charges
  it, and several wrong answers at once (ISOLATION_RUNS) fail their own test cells and no other;
- every right answer written differently in grader/answer_sets/equivalents/<id>.py passes them;
- every code cell of both versions parses.
"""
from __future__ import annotations

import copy
import json
import re
import shutil
import time

import pytest

from assessment_support import submission_files
from conftest import ROOT, report
from course_harness import (KernelPool, TempCourse, cells_by_grade_id, fill_in, nbgrader_meta, read, released_path,
                            run_trimmed, solution_cells, solution_path, graded_test_cells)
from grader.answer_sets.equivalents import apply as apply_equivalent
from grader.answer_sets.equivalents import load as load_equivalents
from grader.answer_sets.equivalents import own_test_cells
from grader.answer_sets.mutants import apply as apply_mutant
from grader.answer_sets.mutants import load as load_mutants
from grader.answer_sets.mutants import hidden_id, load_isolation_runs, split_hidden

ASSIGNMENTS = sorted(p.name for p in (ROOT / "solutions").iterdir()
                     if (p / f"{p.name}.ipynb").exists())
MUTANTS = [pytest.param(a, m, id=f"{a}-{m.name}") for a in ASSIGNMENTS for m in load_mutants(a)]
EQUIVALENTS = [pytest.param(a, e, id=f"{a}-{e.name}") for a in ASSIGNMENTS for e in load_equivalents(a)]
# Known student-version syntax errors still to fix; strict, so the fix makes this list shrink.
DOES_NOT_COMPILE_YET: dict[str, str] = {}
ISOLATION_RUNS = [pytest.param(a, cells, id=f"{a}-{'+'.join(cells)}") for a in ASSIGNMENTS
                  for cells in load_isolation_runs(a)]


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    pool = KernelPool()

    def get(key):
        folder = tmp_path_factory.mktemp(f"kernel-{key}")
        hand_in(key, folder)
        return pool.get(key, folder)

    yield get
    pool.shutdown()


def hand_in(assignment, folder):
    """Put the files a student hands in beside the notebook (06: the trained weights) into ``folder``."""
    for path in submission_files(assignment):
        shutil.copy(path, folder)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_stored_without_outputs(assignment):
    for path in (solution_path(assignment), released_path(assignment)):
        assert path.exists(), f"{path} is missing; run `make release`"
        ids = [cell.get("id") for cell in read(path)["cells"]]
        assert None not in ids and len(set(ids)) == len(ids), f"{path}: every cell needs an id of its own (nbformat 4.5)"
        for cell in read(path)["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, path


CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # ASCII controls other than tab and newline


def _strings(value):
    """Every string of a decoded JSON document, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_no_control_characters_in_notebooks_or_rubrics():
    r"""LaTeX written in JSON with one backslash ("\bar", "\varepsilon") turns into control characters."""
    paths = sorted([*ROOT.glob("solutions/*/*.ipynb"), *ROOT.glob("notebooks/*/*.ipynb"),
                    *(p for p in (ROOT / "instructor").rglob("*") if p.is_file())])
    assert paths
    found = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        texts = [text, *_strings(json.loads(text))] if path.suffix in (".ipynb", ".json") else [text]
        for piece in texts:
            for match in CONTROL_CHARACTER.finditer(piece):
                found.append(f"{path.relative_to(ROOT)}: {match.group()!r} in "
                             f"{piece[max(0, match.start() - 30):match.end() + 30]!r}")
    assert not found, ("control characters (write a LaTeX backslash as \\\\ in JSON):\n"
                       + "\n".join(found[:20]))


def _compile_params():
    for a in ASSIGNMENTS:
        for version in ("student", "instructor"):
            marks = ([pytest.mark.xfail(strict=True, reason=DOES_NOT_COMPILE_YET[a])]
                     if version == "student" and a in DOES_NOT_COMPILE_YET else [])
            yield pytest.param(a, version, id=f"{a}-{version}", marks=marks)


@pytest.mark.parametrize("assignment, version", list(_compile_params()))
def test_every_code_cell_compiles(assignment, version):
    """*Run All* must not stop at a SyntaxError: every code cell parses (IPython magics allowed)."""
    from IPython.core.inputtransformer2 import TransformerManager

    transform = TransformerManager().transform_cell
    path = released_path(assignment) if version == "student" else solution_path(assignment)
    broken = []
    for number, cell in enumerate(read(path)["cells"]):
        if cell["cell_type"] != "code":
            continue
        try:
            compile(transform("".join(cell["source"])), f"cell {number}", "exec")
        except SyntaxError as error:
            broken.append(f"cell {number} ({cell.get('id')}), line {error.lineno}: {error.msg}: {error.text!r}")
    assert not broken, f"{path.relative_to(ROOT)} has code cells that do not parse:\n" + "\n".join(broken)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_answer_cell_is_graded(assignment):
    nb = read(solution_path(assignment))
    tests = graded_test_cells(nb)
    # answers graded by hand (markdown answer cells with points) grade themselves
    answers = {k: c for k, c in solution_cells(nb).items() if not nbgrader_meta(c).get("grade")}
    assert answers and tests
    for grade_id, cell in solution_cells(nb).items():
        if nbgrader_meta(cell).get("grade"):
            # a written answer worth points, or (0 points) the "answers" cell of ungraded questions: nbgrader
            # makes every Markdown answer a grade cell, so model answers the instructor version alone shows get 0
            points = nbgrader_meta(cell).get("points")
            assert cell["cell_type"] == "markdown", grade_id
            assert isinstance(points, (int, float)) and (points > 0 or (points == 0 and grade_id == "answers")), \
                f"written answer {grade_id}: points {points!r}, expected a positive number"
            assert "### BEGIN SOLUTION" in "".join(cell["source"]), f"{grade_id} has no model answer"
    assert all(nbgrader_meta(c).get("points", 0) > 0 for c in tests.values())
    ids = [nbgrader_meta(c).get("grade_id") for c in nb["cells"]]
    for grade_id in answers:  # the next graded cell after each answer tests it
        if nbgrader_meta(answers[grade_id]).get("grade"):
            continue  # a written answer graded by hand (questions with model answers) is its own grade cell
        following = [i for i in ids[ids.index(grade_id) + 1:] if i in tests]
        assert following, f"answer cell {grade_id} has no test cell after it"
    for cell in tests.values():
        source = "".join(cell["source"])
        assert "### BEGIN HIDDEN TESTS" in source, f"test cell {nbgrader_meta(cell)['grade_id']} has no hidden tests"


# Notebooks whose wrong answers' messages are still being captured; strict, so capturing them shrinks this.
RUBRIC_NOT_CAPTURED_YET: dict[str, str] = {}


@pytest.mark.parametrize("assignment", [
    pytest.param(a, marks=[pytest.mark.xfail(strict=True, reason=RUBRIC_NOT_CAPTURED_YET[a])]
                 if a in RUBRIC_NOT_CAPTURED_YET else []) for a in ASSIGNMENTS])
def test_instructor_rubric_is_up_to_date(assignment):
    """instructor/<id>.md matches the notebook, its wrong answers and the messages captured for them."""
    from grader import rubric

    stale = rubric.stale_captures(assignment)
    assert not stale, (
        f"the messages of the wrong answers {stale} (grader/answer_sets/mutants/{assignment}.py) are missing or "
        f"out of date: they, their answer cell or the visible checks they meet changed. Run `COURSE_DATA_DIR=../shared/data "
        f"python -m grader.rubric --capture {assignment}` (minutes; only the stale ones run) and commit instructor/")
    path = rubric.rubric_path(assignment)
    assert path.exists() and path.read_text() == rubric.render(assignment), (
        f"{path.relative_to(ROOT)} is out of date; run `python -m grader.rubric {assignment}` and commit instructor/")


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_is_up_to_date(assignment, tmp_path):
    fresh = TempCourse(tmp_path, [assignment]).release(assignment)
    assert read(fresh) == read(released_path(assignment)), (
        f"notebooks/{assignment} differs from a fresh release of solutions/{assignment}; run `make release`")
    hidden = [c for c in read(fresh)["cells"] if "BEGIN HIDDEN TESTS" in "".join(c["source"])
              or "BEGIN SOLUTION" in "".join(c["source"])]
    assert not hidden, "the student version leaks solutions or hidden tests"


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_autograde_full_marks_and_zero(assignment, tmp_path):
    course = TempCourse(tmp_path, [assignment])
    released = read(course.release(assignment))
    course.submit("right", assignment, fill_in(released, read(solution_path(assignment))))
    hand_in(assignment, course.root / "submitted" / "right" / assignment)
    course.submit("blank", assignment, released)
    start = time.perf_counter()
    right = course.autograde(assignment, "right")
    seconds = time.perf_counter() - start
    blank = course.autograde(assignment, "blank")
    report(f"autograde {assignment} (grade profile): {seconds:.1f} s for one submission, "
           f"score {right.score:g}/{right.max_score:g}; blank student version {blank.score:g}")
    auto = set(graded_test_cells(read(solution_path(assignment))))
    assert right.max_score > 0 and auto <= set(right.cells)
    lost = {k: v for k, v in right.cells.items() if k in auto and v[0] != v[1]}
    assert not lost, f"the instructor's answers lost points in {lost}"
    manual = {k: v for k, v in right.cells.items() if k not in auto}
    assert right.score == sum(right.cells[k][1] for k in auto), f"points before any hand grading: {manual}"
    assert blank.score == 0, f"the untouched student version scored in { {k: v for k, v in blank.cells.items() if v[0]} }"


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_visible_checks_pass_on_right_answers(assignment, tmp_path):
    from nbgrader.validator import Validator
    from traitlets.config import Config

    config = Config()
    config.Execute.timeout = 300  # as in nbgrader_config.py, which a student's Validate uses (default: 30 s)
    released = read(released_path(assignment))
    path = tmp_path / f"{assignment}.ipynb"
    path.write_text(json.dumps(fill_in(released, read(solution_path(assignment)))))
    hand_in(assignment, tmp_path)
    results = Validator(config=config).validate(str(path))
    assert "failed" not in results and "changed" not in results, json.dumps(results, indent=1)[:3000]
    blank = tmp_path / "blank.ipynb"
    blank.write_text(json.dumps(released))
    assert "failed" in Validator(config=config).validate(str(blank)), "the untouched student version passes validation"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_trimmed_solution_passes_every_test(assignment, tmp_path, kernels):
    """The quick path the mutants use (slow cells skipped) is itself green on the right answers."""
    nb = read(solution_path(assignment))
    last = list(graded_test_cells(nb))[-1]
    results = run_trimmed(nb, last, tmp_path, km=kernels(assignment))
    assert set(results) == set(graded_test_cells(nb))
    assert all(r is None for r in results.values()), {k: v for k, v in results.items() if v}


@pytest.mark.parametrize("assignment, mutant", MUTANTS)
def test_wrong_answers_lose_points(assignment, mutant, tmp_path, kernels):
    """Each wrong answer fails its test cells, and fails them in their visible part: a mistake the hidden
    tests charge is shown to the student, with a hint, before handing in. One run tells both apart: each
    test cell runs as its visible part (as released) and then its hidden part (``split_hidden``)."""
    nb = copy.deepcopy(read(solution_path(assignment)))
    cell = cells_by_grade_id(nb)[mutant.cell]
    cell["source"] = apply_mutant(mutant, "".join(cell["source"]))
    order = [nbgrader_meta(c).get("grade_id") for c in nb["cells"]]
    last = max(mutant.fails, key=order.index)
    results = run_trimmed(split_hidden(nb), hidden_id(last), tmp_path, km=kernels(assignment))
    passed = [g for g in mutant.fails if results.get(g) is None and results.get(hidden_id(g)) is None]
    assert not passed, f"wrong answer {mutant.name!r} still passes {passed}"
    unseen = {g: results[hidden_id(g)] for g in order if g and results.get(hidden_id(g)) and results.get(g) is None}
    assert not unseen, (f"wrong answer {mutant.name!r} passes every visible check of {sorted(unseen)} and then "
                        f"loses their hidden points: {unseen}. Add a visible check, with a hint, that shows it")


@pytest.mark.parametrize("assignment, equivalent", EQUIVALENTS)
def test_right_answers_written_differently_get_full_marks(assignment, equivalent, tmp_path, kernels):
    nb = copy.deepcopy(read(solution_path(assignment)))
    cell = cells_by_grade_id(nb)[equivalent.cell]
    cell["source"] = apply_equivalent(equivalent, "".join(cell["source"]))
    passes = equivalent.passes or own_test_cells(nb["cells"], equivalent.cell)
    assert passes, f"no graded test cell follows {equivalent.cell}"
    order = [nbgrader_meta(c).get("grade_id") for c in nb["cells"]]
    results = run_trimmed(nb, max(passes, key=order.index), tmp_path, km=kernels(assignment))
    failed = {g: results.get(g, "did not run") for g in passes if results.get(g, "did not run") is not None}
    assert not failed, f"right answer {equivalent.name!r} loses points: {failed}"


@pytest.mark.parametrize("assignment, broken", ISOLATION_RUNS)
def test_a_mistake_costs_only_its_own_cell(assignment, broken, tmp_path, kernels):
    """Break several answer cells at once (the first mutant of each): exactly their own test cells fail,
    no later one, so a mistake is not charged twice."""
    first = {}
    for m in load_mutants(assignment):
        first.setdefault(m.cell, m)
    wrong = [first[cell] for cell in broken]
    nb = copy.deepcopy(read(solution_path(assignment)))
    cells = cells_by_grade_id(nb)
    for m in wrong:
        cells[m.cell]["source"] = apply_mutant(m, "".join(cells[m.cell]["source"]))
    results = run_trimmed(nb, list(graded_test_cells(nb))[-1], tmp_path, km=kernels(assignment))
    failed = {k for k, v in results.items() if v}
    charged = {g for m in wrong for g in m.fails}
    assert failed == charged, (f"wrong answers {[m.name for m in wrong]} failed {sorted(failed)}, "
                               f"expected only {sorted(charged)}: {results}")
