"""A throw-away nbgrader course for tests: release, submit, autograde and read the scores,
exactly as an instructor would, in a temporary folder. The fast runner for trimmed notebooks
(``run_trimmed``, ``KernelPool``) lives in ``grader.execute``.
"""
from __future__ import annotations

import copy
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from conftest import ROOT
from grader.cells import meta as nbgrader_meta  # the tests' name for the grader's one accessor
from grader.execute import KernelPool, is_slow, run_trimmed  # noqa: F401 (used by the tests)
from grader.release import clean_notebook, run_nbgrader

# The course's own settings: they place the course (and its gradebook) in the folder the file is written to.
CONFIG = (ROOT / "nbgrader_config.py").read_text()


def solution_path(assignment: str) -> Path:
    return ROOT / "solutions" / assignment / f"{assignment}.ipynb"


def released_path(assignment: str) -> Path:
    return ROOT / "notebooks" / assignment / f"{assignment}.ipynb"


def read(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def cells_by_grade_id(nb: dict) -> dict[str, dict]:
    return {nbgrader_meta(c)["grade_id"]: c for c in nb["cells"] if nbgrader_meta(c).get("grade_id")}


def solution_cells(nb: dict) -> dict[str, dict]:
    return {k: c for k, c in cells_by_grade_id(nb).items() if nbgrader_meta(c).get("solution")}


def graded_test_cells(nb: dict) -> dict[str, dict]:
    return {k: c for k, c in cells_by_grade_id(nb).items()
            if nbgrader_meta(c).get("grade") and c["cell_type"] == "code"}


@dataclass
class Grades:
    score: float
    max_score: float
    cells: dict[str, tuple[float, float]]  # grade_id -> (score, max_score)


class TempCourse:
    """An nbgrader course directory under ``root`` holding copies of the given assignments.

    It runs on a copy of the course's own ``nbgrader_config.py``, which places the course (and
    its gradebook) in the folder that holds the file: here, ``root``.
    """

    def __init__(self, root: Path, assignments: list[str]):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "nbgrader_config.py").write_text(CONFIG)
        for a in assignments:
            shutil.copytree(ROOT / "solutions" / a, self.root / "solutions" / a,
                            ignore=shutil.ignore_patterns(".ipynb_checkpoints"))

    def release(self, assignment: str) -> Path:
        run_nbgrader(["generate_assignment", assignment, "--force"], self.root)
        path = self.root / "notebooks" / assignment / f"{assignment}.ipynb"
        clean_notebook(path)
        return path

    def submit(self, student: str, assignment: str, nb: dict) -> None:
        folder = self.root / "submitted" / student / assignment
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{assignment}.ipynb").write_text(json.dumps(nb))

    def autograde(self, assignment: str, student: str) -> Grades:
        run_nbgrader(["autograde", assignment, "--student", student, "--force"], self.root)
        from nbgrader.api import Gradebook

        with Gradebook(f"sqlite:///{self.root}/gradebook.db") as gb:
            submission = gb.find_submission(assignment, student)
            notebook = gb.find_submission_notebook(assignment, assignment, student)
            cells = {g.name: (g.score, g.max_score) for g in notebook.grades}
            return Grades(submission.score, submission.max_score, cells)


def fill_in(student_nb: dict, solution_nb: dict) -> dict:
    """The student notebook with every answer cell replaced by the instructor's answer."""
    nb = copy.deepcopy(student_nb)
    answers = solution_cells(solution_nb)
    for cell in nb["cells"]:
        grade_id = nbgrader_meta(cell).get("grade_id")
        if nbgrader_meta(cell).get("solution") and grade_id in answers:
            cell["source"] = answers[grade_id]["source"]
    return nb
