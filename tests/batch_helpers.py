"""Graders with ``grade_submission``'s signature for the class-grading tests.

- ``fake_grade``: grades instantly from instructions stored in the submitted notebook's metadata
  (``metadata.fake``: status, cells, messages, sleep, raise), for tests of the batch machinery itself.
- ``standin_grade``: runs the real ``nbgrader autograde`` for one student in a private copy of the course
  and reads the scores back; used while ``grader.grade_one`` is not there.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

try:
    from grader.grade_one import SubmissionResult
except ImportError:  # the single-submission grader has not landed yet: its contract
    @dataclass
    class SubmissionResult:
        student: str
        assignment: str
        status: str
        cells: dict
        messages: dict
        flags: list
        seconds: float
        log: str
        executed_notebook: Path | None


def fake_grade(course_root: Path, assignment: str, student: str, *, submission_dir: Path, workdir: Path,
               sandbox: bool | None = None) -> SubmissionResult:
    notebook = Path(submission_dir) / f"{assignment}.ipynb"
    nb = json.loads(notebook.read_text())
    fake = nb["metadata"]["fake"]
    time.sleep(fake.get("sleep", 0))
    if fake.get("raise"):
        raise RuntimeError("the grader is broken")
    workdir.mkdir(parents=True, exist_ok=True)
    executed = workdir / f"{assignment}.ipynb"
    executed.write_text(json.dumps(nb))
    cells = {k: tuple(v) for k, v in fake["cells"].items()}
    return SubmissionResult(student, assignment, fake.get("status", "graded"), cells, fake.get("messages", {}),
                            list(fake.get("flags", [])), float(fake.get("seconds", 0.1)), f"fake log of {student}",
                            executed)


CONFIG = """\
c = get_config()
c.CourseDirectory.root = {root!r}
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.db_url = "sqlite:///{root}/gradebook.db"
c.Execute.timeout = 300
c.Execute.interrupt_on_timeout = True
c.Execute.allow_errors = True
"""
_TEMPLATES: dict[tuple[str, str], Path] = {}


def standin_grade(course_root: Path, assignment: str, student: str, *, submission_dir: Path, workdir: Path,
                  sandbox: bool | None = None) -> SubmissionResult:
    from nbgrader.api import Gradebook

    from grader.release import run_nbgrader

    start = time.perf_counter()
    course = Path(workdir) / "course"
    course.mkdir(parents=True)
    (course / "nbgrader_config.py").write_text(CONFIG.format(root=str(course)))
    shutil.copytree(Path(course_root) / "solutions" / assignment, course / "solutions" / assignment)
    key = (str(course_root), assignment)
    if key not in _TEMPLATES or not _TEMPLATES[key].exists():  # the private gradebook, made once per process
        run_nbgrader(["generate_assignment", assignment, "--force"], course)
        template = Path(tempfile.mkdtemp(prefix="standin-")) / "gradebook.db"
        shutil.copyfile(course / "gradebook.db", template)
        _TEMPLATES[key] = template
    else:
        shutil.copyfile(_TEMPLATES[key], course / "gradebook.db")
    shutil.copytree(submission_dir, course / "submitted" / student / assignment)
    run = run_nbgrader(["autograde", assignment, "--student", student, "--force"], course, check=False)
    executed = course / "autograded" / student / assignment / f"{assignment}.ipynb"
    if run.returncode != 0 or not executed.exists():
        return SubmissionResult(student, assignment, "unreadable", {}, {}, ["nbgrader could not grade it"],
                                time.perf_counter() - start, run.stdout + run.stderr, None)
    with Gradebook(f"sqlite:///{course}/gradebook.db") as gb:
        notebook = gb.find_submission_notebook(assignment, assignment, student)
        cells = {g.name: (g.score, g.max_score) for g in notebook.grades}
    messages = {}
    for cell in json.loads(executed.read_text())["cells"]:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if grade_id in cells and errors:
            messages[grade_id] = f"{errors[0]['ename']}: {errors[0]['evalue']}".strip().splitlines()[-1]
    return SubmissionResult(student, assignment, "graded", cells, messages, [], time.perf_counter() - start,
                            run.stdout + run.stderr, executed)


def _points(assignment: str) -> dict[str, float]:
    nb = json.loads((Path(__file__).resolve().parent.parent / "solutions" / assignment / f"{assignment}.ipynb")
                    .read_text())
    metas = [c.get("metadata", {}).get("nbgrader", {}) for c in nb["cells"] if c["cell_type"] == "code"]
    return {m["grade_id"]: m["points"] for m in metas if m.get("grade")}


POINTS_01 = _points("01_UNets")


def pg_result(student: str, k: int) -> SubmissionResult:
    """The k-th made-up result for ``student`` in 01 (scores vary with k; every 7th timed out)."""
    cells = {grade_id: (float((k + i) % (points + 1)), float(points)) for i, (grade_id, points) in
             enumerate(POINTS_01.items())}
    status = "graded" if k % 7 else "timeout"
    return SubmissionResult(student, "01_UNets", status, cells,
                            {g: f"{g} failed" for g, (s, m) in cells.items() if s < m},
                            ["flagged"] if k % 5 == 0 else [], 1.0, "", None)


def pg_writer(db_url: str, students: list[int], barrier) -> None:
    """One writer process: wait for the other, then record the results of ``students``."""
    from grader.gradebook import GradebookWriter

    with GradebookWriter(db_url) as writer:
        barrier.wait(timeout=120)
        for k in students:
            writer.record(pg_result(f"s{k:03d}", k), submission_hash=f"hash{k}")
