"""A grader with ``grade_in_memory``'s signature for the class-grading tests, and their shared data.

- ``fake_grade``: grades instantly from instructions stored in the submitted notebook's metadata
  (``metadata.fake``: status, cells, messages, sleep, raise, regrade), for tests of the batch machinery itself.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from grader.cells import meta
from grader.grade_one import SubmissionResult
from grader.result import Status, attach_result


def fake_grade(course_root: Path, assignment: str, student: str, *, submission_dir: Path, workdir: Path,
               sandbox: bool | None = None) -> tuple[SubmissionResult, bytes]:
    notebook = Path(submission_dir) / f"{assignment}.ipynb"
    nb = json.loads(notebook.read_text())
    fake = nb["metadata"]["fake"]
    time.sleep(fake.get("sleep", 0))
    if fake.get("raise"):
        raise RuntimeError("the grader is broken")
    cells = {k: tuple(v) for k, v in fake["cells"].items()}
    result = SubmissionResult(student, assignment, fake.get("status", Status.GRADED), cells, fake.get("messages", {}),
                              list(fake.get("flags", [])), float(fake.get("seconds", 0.1)), f"fake log of {student}",
                              None, bool(fake.get("regrade", False)))
    attach_result(nb, result)  # as grade_in_memory keeps it: in the executed notebook, nowhere else
    return result, json.dumps(nb).encode()


def _points(assignment: str) -> dict[str, float]:
    nb = json.loads((Path(__file__).resolve().parent.parent / "solutions" / assignment / f"{assignment}.ipynb")
                    .read_text())
    metas = [meta(c) for c in nb["cells"] if c["cell_type"] == "code"]
    return {m["grade_id"]: m["points"] for m in metas if m.get("grade")}


POINTS_01 = _points("01_UNets")


def pg_result(student: str, k: int) -> SubmissionResult:
    """The k-th made-up result for ``student`` in 01 (scores vary with k; every 7th timed out)."""
    cells = {grade_id: (float((k + i) % (points + 1)), float(points)) for i, (grade_id, points) in
             enumerate(POINTS_01.items())}
    status = Status.GRADED if k % 7 else Status.TIMEOUT
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
