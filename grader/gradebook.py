"""The one writer of nbgrader's gradebook for class grading, on SQLite or PostgreSQL.

Grading workers never touch the gradebook: they return a ``SubmissionResult`` and the parent process
writes it here, one submission at a time, so no grade is lost or doubled whatever order workers finish
in. What is written is what ``nbgrader autograde`` would write (student, submission, one ``Grade`` per
graded cell with its ``auto_score``), so ``nbgrader export``, the Formgrader and ``nbgrader
generate_feedback`` see it. Beside nbgrader's tables, one table of our own, ``class_grading``, keeps
per submission the status (graded, timeout, crashed, ...), the flags for review, the messages the
student saw for failed checks, the hash of the graded folder (so a re-run skips unchanged submissions)
and where the log is.

The database is nbgrader's ``CourseDirectory.db_url`` from the course's ``nbgrader_config.py``
(``grader.course_config``; ``sqlite:///.../gradebook.db`` by default) or any SQLAlchemy URL given instead, e.g.
``postgresql://user@host/dbname`` for a cluster (driver: psycopg2). Several writers may share a
PostgreSQL gradebook at once: each submission is written in its own transactions and retried when a
concurrent writer created the same student or submission first.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Column, DateTime, Float, MetaData, String, Table, Text, delete, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError, SAWarning

from grader.course_config import CourseSettings
from grader.result import Status

METADATA = MetaData()
# One row per (assignment, student): the latest grading of that submission.
CLASS_GRADING = Table(
    "class_grading", METADATA,
    Column("assignment", String(128), primary_key=True),
    Column("student", String(128), primary_key=True),
    Column("status", String(32), nullable=False),
    Column("flags", Text, nullable=False),       # JSON list of strings
    Column("messages", Text, nullable=False),    # JSON object grade_id -> message
    Column("seconds", Float),
    Column("submission_hash", String(64)),
    Column("log_path", Text),
    Column("graded_at", DateTime),
)
# A kernel that waited without CPU or output on every attempt stopped either because a message was
# lost (the grader's fault: rare, by chance) or because the submission waits for ever (its own fault,
# every time). The first time, the submission is graded once more on the next run; the second time at
# the same hash, the result stands (a forced run does not start the cycle again). The flags are matched
# by their tag, so the sentences after it can be reworded without losing the state of stored rows.
REGRADE_NEXT_TAG = "regrade next:"
REGRADE_DONE_TAG = "regrade done:"
REGRADE_NEXT = (f"{REGRADE_NEXT_TAG} the kernel stalled (no CPU, no output) on every attempt; graded once more "
                "on the next run (a lost message and the submission's own wait look the same)")
REGRADE_DONE = f"{REGRADE_DONE_TAG} the kernel stalled again on the next run; the wait is taken as the submission's own"


def has_flag(flags: list[str] | str | None, tag: str | tuple[str, ...]) -> bool:
    """Whether ``flags`` (a list, or its JSON as stored) hold a flag that starts with ``tag`` (or one of them)."""
    if isinstance(flags, str) or flags is None:
        try:
            flags = json.loads(flags or "[]")
        except ValueError:
            return False
    return isinstance(flags, list) and any(isinstance(flag, str) and flag.startswith(tag) for flag in flags)


def open_gradebook(db_url: str, course_id: str = ""):
    """nbgrader's ``Gradebook`` on ``db_url``. On a new database nbgrader runs the ``alembic`` command
    to stamp the schema version, so this Python's bin/ (where pip put alembic) goes on PATH if needed."""
    from nbgrader.api import Course, Gradebook

    if shutil.which("alembic") is None:
        os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    gb = Gradebook(db_url, course_id)
    if gb.db.get(Course, course_id) is None:
        # nbgrader adds no course row for the empty course id (its default); SQLite does not mind the
        # missing row, PostgreSQL's foreign keys refuse every assignment without it.
        try:
            gb.db.add(Course(id=course_id))
            gb.db.commit()
        except Exception:
            gb.db.rollback()
            if gb.db.get(Course, course_id) is None:  # not a concurrent writer adding it first
                gb.close()
                raise
    return gb


def _retry(action, attempts: int = 8):
    """Run ``action()``; on a conflict with a concurrent writer (or a lock), try again."""
    for attempt in range(attempts):
        try:
            return action()
        except (IntegrityError, DBAPIError) as error:  # nbgrader's InvalidEntry wraps IntegrityError
            last = error
        except Exception as error:
            if type(error).__name__ != "InvalidEntry":
                raise
            last = error
        time.sleep(0.05 * (attempt + 1))
    raise RuntimeError(f"the gradebook kept refusing a write after {attempts} attempts: {last}")


def ensure_assignment(settings: CourseSettings, assignment: str) -> None:
    """Record ``assignment`` (its notebooks and cells) in the gradebook if it is not there yet.

    On a new database (a fresh PostgreSQL one) this runs ``nbgrader generate_assignment`` against it,
    releasing into a temporary folder so the course's student notebooks are left alone.
    Raises RuntimeError if nbgrader fails (e.g. no instructor notebook for ``assignment``).
    """
    from nbgrader.api import MissingEntry

    with open_gradebook(settings.db_url, settings.course_id) as gb:
        try:
            if gb.find_assignment(assignment).notebooks:
                return
        except MissingEntry:
            pass
    with tempfile.TemporaryDirectory(prefix="release-") as release:
        result = subprocess.run(
            [sys.executable, "-m", "nbgrader", "generate_assignment", assignment, "--force",
             f"--CourseDirectory.db_url={settings.db_url}", f"--CourseDirectory.release_directory={release}",
             f"--CourseDirectory.root={settings.root}"],
            cwd=settings.root, capture_output=True, text=True,
            env={**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")})
    if result.returncode != 0:
        raise RuntimeError(f"could not record {assignment} in the gradebook:\n{result.stdout}\n{result.stderr}")


class GradebookWriter:
    """Writes grading results into nbgrader's gradebook; use one per process, as a context manager."""

    def __init__(self, db_url: str, course_id: str = ""):
        self.db_url = db_url
        self.gb = _retry(lambda: open_gradebook(db_url, course_id))
        _retry(lambda: METADATA.create_all(self.gb.engine, checkfirst=True))

    def __enter__(self) -> GradebookWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.gb.close()

    def notebook_names(self, assignment: str) -> list[str]:
        """The names of ``assignment``'s notebooks in the gradebook (without .ipynb)."""
        return [nb.name for nb in self.gb.find_assignment(assignment).notebooks]

    def known_hashes(self, assignment: str) -> dict[str, str]:
        """student -> hash of the submission folder last graded, for ``assignment``."""
        rows = self.gb.db.execute(select(CLASS_GRADING.c.student, CLASS_GRADING.c.submission_hash,
                                         CLASS_GRADING.c.flags)
                                  .where(CLASS_GRADING.c.assignment == assignment)).all()
        self.gb.db.commit()
        # a submission waiting for its second try is not known: the next run grades it again
        return {student: digest for student, digest, flags in rows if digest and not has_flag(flags, REGRADE_NEXT_TAG)}

    def record(self, result, submission_hash: str | None = None, log_path: str | None = None,
               timestamp: str | None = None) -> list[str]:
        """Write one ``SubmissionResult`` (see grader.grade_one); return the flags stored with it.

        Every grade cell the result scores gets that ``auto_score``; a grade cell it does not score gets
        none (needs manual grading) after a clean run, and 0 (needs manual grading) after a timeout or
        crash. Writing the same submission again replaces it (no grade is counted twice).
        """
        flags = list(result.flags)

        def write() -> list[str]:
            try:
                with warnings.catch_warnings():  # nbgrader's add_submission autoflushes half-built rows
                    warnings.filterwarnings("ignore", category=SAWarning)
                    return self._write(result, submission_hash, log_path, timestamp, list(flags))
            except BaseException:
                self.gb.db.rollback()
                raise

        return _retry(write)

    def _write(self, result, submission_hash, log_path, timestamp, flags) -> list[str]:
        from nbgrader.utils import parse_utc

        gb = self.gb
        gb.update_or_create_student(result.student)
        extra = {}
        if timestamp:
            try:
                extra["timestamp"] = parse_utc(timestamp)
            except (ValueError, OverflowError, TypeError):
                flags.append(f"unreadable timestamp.txt: {timestamp[:40]!r}")
        submission = gb.update_or_create_submission(result.assignment, result.student, **extra)
        scored = set()
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                if grade.name in result.cells:
                    score, max_score = result.cells[grade.name]
                    if abs(float(max_score) - grade.max_score) > 1e-9:
                        flags.append(f"{grade.name}: graded out of {max_score:g}, the gradebook says "
                                     f"{grade.max_score:g}")
                    grade.auto_score = min(float(score), grade.max_score)
                    grade.needs_manual_grade = grade.manual_score is not None
                    scored.add(grade.name)
                elif result.status == Status.GRADED:
                    grade.auto_score = None
                    grade.needs_manual_grade = True
                else:
                    grade.auto_score = 0.0
                    grade.needs_manual_grade = True
        unknown = sorted(set(result.cells) - scored)
        if unknown:
            flags.append(f"cells not in the gradebook: {', '.join(unknown)}")
        key = (CLASS_GRADING.c.assignment == result.assignment) & (CLASS_GRADING.c.student == result.student)
        if getattr(result, "regrade", False):
            previous = gb.db.execute(select(CLASS_GRADING.c.submission_hash, CLASS_GRADING.c.flags)
                                     .where(key)).first()
            second = previous is not None and submission_hash is not None and \
                previous[0] == submission_hash and has_flag(previous[1], (REGRADE_NEXT_TAG, REGRADE_DONE_TAG))
            flags.append(REGRADE_DONE if second else REGRADE_NEXT)
        gb.db.execute(delete(CLASS_GRADING).where(key))
        gb.db.execute(insert(CLASS_GRADING).values(
            assignment=result.assignment, student=result.student, status=result.status,
            flags=json.dumps(flags), messages=json.dumps(result.messages), seconds=float(result.seconds),
            submission_hash=submission_hash, log_path=log_path,
            graded_at=dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)))
        gb.db.commit()
        return flags


@dataclass
class StoredResult:
    """One row of the class view: a student's submission of an assignment as the gradebook has it."""

    assignment: str
    student: str
    score: float
    max_score: float
    status: str
    flags: list[str]
    cells: dict[str, tuple[float, float]]  # grade_id -> (score, max_score)
    messages: dict[str, str]
    log_path: str | None


def read_class(db_url: str, course_id: str = "") -> tuple[list[StoredResult], dict[str, list[tuple[str, float]]]]:
    """Everything the report needs: one StoredResult per student and assignment the gradebook knows
    (status "missing" where a student has no submission), and per assignment its graded cells in
    notebook order as (grade_id, max_score)."""
    from nbgrader.api import MissingEntry

    results, cells_of = [], {}
    with open_gradebook(db_url, course_id) as gb:
        METADATA.create_all(gb.engine, checkfirst=True)
        extra = {(a, s): row for a, s, *row in gb.db.execute(select(
            CLASS_GRADING.c.assignment, CLASS_GRADING.c.student, CLASS_GRADING.c.status, CLASS_GRADING.c.flags,
            CLASS_GRADING.c.messages, CLASS_GRADING.c.log_path)).all()}
        for assignment in gb.assignments:
            cells_of[assignment.name] = [(cell.name, cell.max_score) for nb in assignment.notebooks
                                         for cell in nb.grade_cells]
            for student in gb.students:
                status, flags, messages, log_path = extra.get((assignment.name, student.id),
                                                              (Status.GRADED, "[]", "{}", None))
                try:
                    submission = gb.find_submission(assignment.name, student.id)
                except MissingEntry:
                    if (assignment.name, student.id) not in extra:
                        status, flags = Status.MISSING, '["no submission"]'
                    results.append(StoredResult(assignment.name, student.id, 0.0, assignment.max_score, status,
                                                json.loads(flags), {}, json.loads(messages), log_path))
                    continue
                cells = {g.name: (g.score, g.max_score) for nb in submission.notebooks for g in nb.grades}
                flags = json.loads(flags)
                if submission.needs_manual_grade and "needs manual grading" not in flags:
                    flags.append("needs manual grading")
                results.append(StoredResult(assignment.name, student.id, submission.score, submission.max_score,
                                            status, flags, cells, json.loads(messages), log_path))
    return results, cells_of
