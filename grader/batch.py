"""Grade a whole class: every submission in parallel, on this machine or on a Dask cluster.

    python -m grader autograde 01_UNets [more ids] [--jobs N | --scheduler tcp://HOST:PORT] [--force]

The steps, in order:

1. Discover: submissions are found in nbgrader's layout, ``submitted/<student>/<assignment>/``.
2. Plan: a submission unchanged since it was last graded is skipped; each other one is packed (with
   the hash of its folder) into a task, and the tasks are ordered longest first (``expected_cost``:
   earlier runs' times, else the notebooks' size), so that a long one does not run alone at the end
   while the other workers wait.
3. Run (``grader.workers``): a pool of ``jobs`` worker processes on this machine (default: one per
   core), or the workers of a Dask cluster (``scheduler``), each unpacks a task into its own temporary
   working copy and calls ``grader.grade_one.grade_in_memory`` on it, which grades that one submission
   (in its own kernel and sandbox) and never raises for anything the submission does. Dask workers need
   this course folder at the same path (or at ``worker_course_root``) and the course environment.
4. Store: workers return the result, the executed notebook (its bytes, never written on the worker)
   and the log; only this process writes the gradebook (``grader.gradebook``; ``make grades`` and
   ``make report`` read it), the executed notebooks (``autograded/<student>/<assignment>/``: each keeps
   its result in its metadata, the only file that does; ``make feedback`` and ``nbgrader
   generate_feedback`` read it with ``grader.result.read_result``) and the logs
   (``logs/autograde/<assignment>/<student>.log``).

Re-running grades only submissions that are new or changed since they were last graded: the hash
covers the submission folder and the assignment's instructor folder (a changed test regrades
everything). ``force=True`` grades everything again.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import statistics
import tarfile
import time
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from grader.course_config import CourseSettings, course_settings
from grader.feedback import copy_exchange_files
from grader.gradebook import GradebookWriter, ensure_assignment
from grader.result import Status
from grader.workers import DEFAULT_GRADER, Outcome, Task, running

logger = logging.getLogger(__name__)
IGNORED = {".ipynb_checkpoints", "__pycache__", ".DS_Store"}
# The first line of each submission's log, and how the next run reads its time back (expected_cost).
LOG_HEADER = "graded on {host} in {seconds:.1f} s, status {status}"
LOGGED_SECONDS = re.compile(r"graded on \S* in ([\d.]+) s")


# ----------------------------------------------------------------------------------------- discovery

@dataclass(frozen=True)
class Submission:
    """One student's folder for one assignment under ``submitted/``."""

    student: str
    assignment: str
    folder: Path


def discover(course_root: Path, assignments: list[str], students: list[str] | None = None) -> list[Submission]:
    """Every ``submitted/<student>/<assignment>/`` folder for the given assignments, sorted.

    ``students`` limits the search to those students. Folders whose names start with a dot are skipped.
    """
    submitted = Path(course_root) / "submitted"
    found = []
    if not submitted.is_dir():
        return found
    for student_dir in sorted(submitted.iterdir()):
        if not student_dir.is_dir() or student_dir.name.startswith("."):
            continue
        if students and student_dir.name not in students:
            continue
        for assignment in assignments:
            folder = student_dir / assignment
            if folder.is_dir():
                found.append(Submission(student_dir.name, assignment, folder))
    return found


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and not (set(p.relative_to(folder).parts) & IGNORED))


def folder_hash(folder: Path) -> str:
    """SHA-256 over the relative paths and contents of every file under ``folder`` (hex)."""
    digest = hashlib.sha256()
    for path in _files(folder):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def pack(folder: Path) -> bytes:
    """The files of ``folder`` as an uncompressed tar archive (what a task carries to its worker)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in _files(folder):
            tar.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)
    return buffer.getvalue()


# ----------------------------------------------------------------------------------------- the summary

class RunStatus(StrEnum):
    """What a class run says of a submission it did not grade to a result (beside a result's ``Status``)."""

    SKIPPED = "skipped"              # unchanged since it was last graded
    GRADER_ERROR = "grader_error"    # the grader itself failed (not the submission's fault): tried again next run


DONE = (Status.GRADED, RunStatus.SKIPPED)  # a row with another status is a failure the table lists first


@dataclass
class Row:
    """One line of the end-of-run table."""

    student: str
    assignment: str
    status: str          # a ``Status`` of the result, or a ``RunStatus``
    score: float | None = None
    max_score: float | None = None
    seconds: float | None = None
    flags: list[str] = field(default_factory=list)
    log: str | None = None


@dataclass
class Summary:
    rows: list[Row]
    wall_seconds: float
    workers: int

    def count(self, *statuses: str) -> int:
        return sum(r.status in statuses for r in self.rows)

    @property
    def failed(self) -> list[Row]:
        return [r for r in self.rows if r.status not in DONE]

    def table(self) -> str:
        """Who was graded, who failed and why, and where the logs are."""
        header = ("student", "assignment", "status", "score", "seconds", "flags / log")
        lines = [header]
        for r in sorted(self.rows, key=lambda r: (r.status in DONE, r.assignment, r.student)):
            score = "" if r.score is None else f"{r.score:g}/{r.max_score:g}"
            seconds = "" if r.seconds is None else f"{r.seconds:.1f}"
            note = "; ".join(r.flags)
            if r.status not in DONE and r.log:
                note = (note + "; " if note else "") + f"log: {r.log}"
            lines.append((r.student, r.assignment, r.status, score, seconds, note))
        widths = [max(len(line[i]) for line in lines) for i in range(5)]
        out = ["  ".join(cell.ljust(w) for cell, w in zip(line[:5], widths)) + "  " + line[5] for line in lines]
        counts = Counter(r.status for r in self.rows)
        out.append("")
        out.append(f"{counts.get(Status.GRADED, 0)} graded, {len(self.failed)} failed"
                   + "".join(f" ({n} {s})" for s, n in sorted(counts.items()) if s not in DONE)
                   + f", {counts.get(RunStatus.SKIPPED, 0)} unchanged and skipped; {self.wall_seconds:.0f} s with "
                   f"{self.workers} worker(s)")
        return "\n".join(out)


# ----------------------------------------------------------------------------------------- the pipeline

def grade_class(course_root: Path, assignments: list[str], *, jobs: int | None = None, scheduler=None,
                force: bool = False, students: list[str] | None = None, db_url: str | None = None,
                grader: str = DEFAULT_GRADER, sandbox: bool | None = None, worker_course_root: Path | None = None,
                threads: int | None = None, progress: bool = True) -> Summary:
    """Grade every new or changed submission of ``assignments`` and write the gradebook.

    Args:
        course_root: the course folder (nbgrader_config.py, solutions/, submitted/).
        assignments: assignment ids, e.g. ["01_UNets"].
        jobs: worker processes on this machine (default: the number of cores); ignored with ``scheduler``.
        scheduler: a Dask scheduler address ("tcp://HOST:PORT") or a ``distributed.Client``.
        force: grade every submission again, changed or not.
        students: grade only these students.
        db_url: the gradebook (default: the course's ``CourseDirectory.db_url``).
        grader: "module:function" with ``grade_in_memory``'s signature (tests use a stand-in).
        sandbox: passed to the grader (None: its default).
        worker_course_root: where the course folder is on the workers, if not at the same path.
        threads: CPU threads for each submission's kernel (OMP_NUM_THREADS). Default: cores // jobs on
            this machine; on a Dask cluster, whatever the workers' environment says.
        progress: show a progress bar on stderr.

    Returns a Summary (one Row per submission found). Raises ValueError for an empty assignment list
    or jobs < 1.
    """
    if not assignments:
        raise ValueError("name at least one assignment, e.g. 01_UNets")
    jobs = (os.cpu_count() or 1) if jobs is None else jobs
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    settings = course_settings(course_root, db_url)
    start = time.perf_counter()
    for assignment in assignments:
        ensure_assignment(settings, assignment)
    rows: list[Row] = []
    with GradebookWriter(settings.db_url, settings.course_id) as writer:
        tasks = _plan(settings, assignments, students, force, writer, rows, grader, sandbox, worker_course_root)
        cost = expected_cost(settings.root, sorted({t.assignment for t in tasks}))
        tasks.sort(key=lambda t: -cost[t.assignment])  # longest first: no long one left alone at the end
        with running(tasks, jobs=jobs, scheduler=scheduler, threads=threads) as (outcomes, workers):
            _collect(settings, outcomes, tasks, workers, writer, rows, progress)
    return Summary(rows, time.perf_counter() - start, workers)


# ----------------------------------------------------------------------------------------- planning

def expected_cost(course_root: Path, assignments: list[str]) -> dict[str, float]:
    """A number per assignment that orders its submissions by how long one takes to grade, so that
    the longest start first and two workers do not end with one long submission running alone.

    When every assignment has logs of an earlier run (``logs/autograde/<id>/*.log``, which begin with
    "graded on HOST in X s"), the median of their seconds; otherwise, for all of them, the number of
    code cells of the instructor's notebook, which orders the course's notebooks roughly as their
    grading times do. Only the order matters; a wrong guess costs time, never a grade.
    """
    def logged(assignment: str) -> list[float]:
        times = []
        for log in (course_root / "logs" / "autograde" / assignment).glob("*.log"):
            with open(log, encoding="utf-8", errors="replace") as f:
                found = LOGGED_SECONDS.match(f.readline())
            if found:
                times.append(float(found.group(1)))
        return times

    def code_cells(assignment: str) -> float:
        try:
            cells = json.loads((course_root / "solutions" / assignment / f"{assignment}.ipynb").read_text())["cells"]
            return float(sum(c.get("cell_type") == "code" for c in cells))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return 0.0

    times = {a: logged(a) for a in assignments}
    if all(times.values()):
        return {a: statistics.median(t) for a, t in times.items()}
    return {a: code_cells(a) for a in assignments}


def _plan(settings: CourseSettings, assignments, students, force, writer, rows, grader, sandbox,
          worker_course_root) -> list[Task]:
    tasks = []
    for assignment in assignments:
        source_hash = folder_hash(settings.root / "solutions" / assignment)
        known = writer.known_hashes(assignment)
        for sub in discover(settings.root, [assignment], students):
            digest = hashlib.sha256((folder_hash(sub.folder) + source_hash).encode()).hexdigest()
            if not force and known.get(sub.student) == digest:
                rows.append(Row(sub.student, assignment, RunStatus.SKIPPED))
                continue
            tasks.append(Task(sub.student, assignment, pack(sub.folder), digest,
                              str(worker_course_root or settings.root), grader, sandbox))
    return tasks


# ----------------------------------------------------------------------------------------- storing

def _collect(settings: CourseSettings, stream, tasks: list[Task], workers: int, writer: GradebookWriter,
             rows: list[Row], progress: bool) -> None:
    from tqdm.auto import tqdm

    failed = 0
    with tqdm(total=len(tasks), unit="submission", desc="grading", disable=not progress or not tasks) as bar:
        bar.set_postfix_str(f"running {min(workers, len(tasks))}, failed 0")
        for done, outcome in enumerate(stream, start=1):
            row = _store(settings, outcome, writer)
            rows.append(row)
            logger.debug("%d/%d: %s %s %s in %.1f s", done, len(tasks), row.student, row.assignment, row.status,
                         row.seconds or 0.0)
            failed += row.status != Status.GRADED
            bar.update(1)
            bar.set_postfix_str(f"running {min(workers, len(tasks) - done)}, failed {failed}")


def _store(settings: CourseSettings, outcome: Outcome, writer: GradebookWriter) -> Row:
    """Write one outcome: the log, the executed notebook and (unless the grader broke) the gradebook."""
    log_path = settings.root / "logs" / "autograde" / outcome.assignment / f"{outcome.student}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    result = outcome.result
    if result is None:
        log_path.write_text(f"grading {outcome.student}/{outcome.assignment} on {outcome.host or 'a worker'} "
                            f"failed in the grader itself (not the submission's fault; it will be tried again "
                            f"on the next run):\n{outcome.grader_error}")
        return Row(outcome.student, outcome.assignment, RunStatus.GRADER_ERROR,
                   flags=["the grader failed; see the log"], log=str(log_path), seconds=outcome.worker_seconds)
    log_path.write_text(LOG_HEADER.format(host=outcome.host, seconds=result.seconds, status=result.status)
                        + f"\n{result.log}")
    if outcome.executed is not None:  # named as nbgrader names it, so generate_feedback finds it
        folder = settings.root / "autograded" / outcome.student / outcome.assignment
        folder.mkdir(parents=True, exist_ok=True)
        names = writer.notebook_names(outcome.assignment)
        name = f"{names[0] if len(names) == 1 else outcome.assignment}.ipynb"
        (folder / name).unlink(missing_ok=True)  # nbgrader's own converters leave their files read-only
        (folder / name).write_bytes(outcome.executed)
        copy_exchange_files(settings.root / "submitted" / outcome.student / outcome.assignment, folder)
    stamp = settings.root / "submitted" / outcome.student / outcome.assignment / "timestamp.txt"
    timestamp = stamp.read_text().strip() if stamp.is_file() else None
    flags = writer.record(result, outcome.submission_hash, str(log_path), timestamp)
    score = sum(s for s, _ in result.cells.values())
    max_score = sum(m for _, m in result.cells.values())
    return Row(outcome.student, outcome.assignment, result.status, score, max_score, result.seconds, flags,
               str(log_path))
