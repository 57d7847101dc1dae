"""Grade one submission, whatever it contains, from the instructor's own test cells.

    grade_submission(course_root, "01_UNets", "alice", submission_dir=..., workdir=...)

What happens, in order (the module that does each step in brackets; this one only strings them together):

0. The assignment is read from the instructor notebook, ``solutions/<id>/<id>.ipynb`` (``grader.spec``).
1. The notebook is the one ``.ipynb`` in the submission folder, whatever its name
   (``01_UNets (1).ipynb`` is fine). None: status "missing"; not a notebook: "unreadable"
   (``grader.submission``).
2. The trusted side rebuilds it from the instructor notebook (``grader.rebuild``): the
   student's answer cells are kept, every locked cell (setup, tests) is the instructor's, test
   cells the student deleted are put back, duplicated answer cells are resolved, and nothing the
   submission's metadata claims (points, grade ids, locks) is believed. Hand-edited metadata and
   edited tests are flagged.
3. The student's code is read for anything that reaches for the grader (``grader.tamper``) and
   compared with the course's ``utils`` code (``grader.rebuild``).
4. The rebuilt notebook runs (``grader.runner``) in a fresh kernel in the sandbox
   (``grader.kernel_session``, ``grader.sandbox``, ``grader.watchdog``), one cell at
   a time; the hidden part of each test cell runs as a separate request, so the grader knows
   whether a failure was visible or hidden. After each cell a probe reports what changed in the
   kernel. A kernel with no CPU and no message for ``Limits.stall_seconds`` has stalled: it is
   killed and the submission graded again from the start. A stall on every attempt gives status
   "timeout" (the same cell each time) or "stalled" with ``result.regrade`` set: the gradebook has
   the next run grade it once more, and only a second such result at the same hash stands.
5. Each test cell scores its points if it ran without an error and no tampering came before it,
   else 0. A kernel that dies, runs out of time or memory keeps the points of the cells before
   (``grader.score``).

The result is a ``SubmissionResult`` with a ``Status`` (``grader.result``), returned to the caller.
When the notebook ran, ``workdir`` receives ``executed.ipynb``: the rebuilt notebook with its outputs
and, in its metadata, the result (``grader.result.attach_result``; instructor-only: it holds the hidden
tests; ``grader.feedback`` makes the student's page from it without them). That notebook is the one
file that keeps the result; nothing else is written beside it, and nothing to the gradebook.
``grade_in_memory`` grades the same way but hands the executed notebook back as the bytes of its file
instead of writing it (what the class-wide runner's workers call: the notebook is written once, where
it is kept). Neither raises for anything a submission does.

For the class-wide runner: store the result in the gradebook and the executed notebook under
``autograded/<student>/<id>/`` (``make feedback`` reads the result back with
``grader.result.read_result``), and get an assignment's graded cells and points, without a kernel,
from ``graded_cells(course_root, assignment)``.
"""

from __future__ import annotations

import copy
import logging
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import nbformat

from grader import sandbox as sb
from grader.cells import BEGIN_HIDDEN, END_HIDDEN  # noqa: F401 (names of this module, see __all__)
from grader.course_config import cell_timeout
from grader.log import setup
from grader.rebuild import Plan, rebuild
from grader.result import Status, SubmissionResult, attach_result
from grader.runner import RunOutcome, check_kernel_starts, run_plan
from grader.sandbox import Limits
from grader.score import HIDDEN_FAILED, score  # noqa: F401 (HIDDEN_FAILED: for callers)
from grader.spec import AssignmentSpec, graded_cells, load_spec, load_spec_file  # noqa: F401 (graded_cells)
from grader.submission import changed_files, course_state, find_notebook, read_notebook, shadowing_modules

__all__ = ["grade_submission", "grade_in_memory", "default_limits", "main", "SubmissionResult", "Status",
           "HIDDEN_FAILED", "BEGIN_HIDDEN", "END_HIDDEN", "AssignmentSpec", "load_spec", "graded_cells",
           "find_notebook", "Plan", "rebuild", "run_plan", "FREEZE_ONCE"]

_LOUD = "WARNING: GRADED WITHOUT A SANDBOX"
logger = logging.getLogger("grader.grade_one")  # ``log``: each grading's own lines

# Fault injection for the test suite only: student -> grade id of a cell before which the grader
# freezes the kernel (SIGSTOP) on the first attempt, as a lost message would leave it.
FREEZE_ONCE: dict[str, str] = {}


def _choose_sandbox(sandbox: bool | None, student: str, assignment: str, log: list[str]) -> bool:
    """Whether to use the sandbox (see ``grade_submission``); says loudly in ``log`` (and in the grader's
    log, a warning, when the sandbox was wanted) when grading goes without it. Raises RuntimeError if
    required but unavailable."""
    available, why = sb.sandbox_available()
    if sandbox is None:
        use_sandbox = available
    elif sandbox and not available:
        raise RuntimeError(f"the sandbox was required but cannot run: {why}")
    else:
        use_sandbox = bool(sandbox)
    if not use_sandbox:
        log.append(f"{_LOUD}: {why if not available else 'turned off by the caller'}; the submission "
                   f"could read and write anything this user can")
        if sandbox is None:  # wanted but impossible: say so where the instructor will see it
            logger.warning("%s (%s, %s): %s", _LOUD, student, assignment, why)
    return use_sandbox


def _flag_shadowing(submission_dir: Path, spec: AssignmentSpec, plan: Plan, flags: list[str]) -> None:
    """Flag modules shipped beside the notebook under a course's or library's name; every test scores 0."""
    shadowing = shadowing_modules(submission_dir)
    if shadowing:
        flags.append(f"tampering: the submission ships modules named like the course's or a library's: "
                     f"{', '.join(shadowing)} (the course's own were used)")
        for gid in spec.points:
            plan.zeroed.setdefault(gid, "the submission ships modules that shadow the course's")


def _run_attempts(plan: Plan, spec: AssignmentSpec, course_root: Path, submission_dir: Path, workdir: Path, *,
                  use_sandbox: bool, limits: Limits, student: str, log: list[str]) -> tuple[RunOutcome, Plan, bool]:
    """Run the plan, again after a stall (up to ``limits.retries`` more times); (outcome, plan run, regrade).

    A stall at the same step twice running becomes a timeout; a stall on every attempt, or that timeout,
    sets ``regrade``. A kernel that does not start in the submission's folder is a crash, unless it
    does not start in an empty one either: then RuntimeError (the grader is broken).
    """
    work = workdir / "work"
    last_stall = None
    for attempt in range(1 + max(0, limits.retries)):
        # A retry runs in the same folder (files the first attempt wrote, such as checkpoints, stay),
        # with the submitted files copied over again.
        shutil.copytree(submission_dir, work, symlinks=True, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        attempt_plan = copy.deepcopy(plan)
        try:
            outcome = run_plan(attempt_plan, spec, course_root, work, use_sandbox=use_sandbox, limits=limits,
                               freeze_before=FREEZE_ONCE.get(student) if attempt == 0 else None)
        except RuntimeError as error:
            # Whose fault? A kernel that starts in an empty folder means the submission's files stop it.
            check_kernel_starts(course_root, spec, workdir, use_sandbox, limits)
            crashed = RunOutcome(status=Status.CRASHED, stopped_at=0,
                                 reason=f"the kernel did not start in the submission's folder ({error})")
            return crashed, attempt_plan, False
        if outcome.status != Status.STALLED:
            return outcome, attempt_plan, False
        log.append(f"attempt {attempt + 1}: {outcome.reason}; grading again")
        if last_stall is not None and last_stall == outcome.stalled_step:
            outcome.status = Status.TIMEOUT
            outcome.reason = "the same cell waited without CPU or output on every attempt"
            return outcome, attempt_plan, True
        last_stall = outcome.stalled_step
    # stalled at different cells on every attempt: no fault of the submission
    return outcome, attempt_plan, True


def _flag_course_changes(before: dict, after: dict, flags: list[str], log: list[str]) -> bool:
    """Flag the course's files that changed between two ``course_state`` results; whether any did."""
    changed = changed_files(before, after)
    if changed:
        flags.append(f"tampering: files of the course changed while this submission ran: {', '.join(changed[:5])}")
        log.append("course files changed: " + ", ".join(changed[:20]))
    return bool(changed)


def _log_run(log: list[str], outcome: RunOutcome, cells: dict[str, tuple[float, float]], use_sandbox: bool) -> None:
    """Add the run's summary lines to ``log``: output cut, probe time, kernels woken, status and score."""
    if outcome.truncated:
        log.append("output was cut at the limit")
    log.append(f"integrity probe: {outcome.probe_seconds:.1f} s")
    if outcome.nudges:
        log.append(f"woke a kernel that waited idle {outcome.nudges} time(s) (a request left unread)")
    log.append(f"status {outcome.status}; score {sum(s for s, _ in cells.values()):g}/"
               f"{sum(m for _, m in cells.values()):g}; {'sandboxed' if use_sandbox else 'NOT sandboxed'}")


def _read_submission(submission_dir: Path, assignment: str, log: list[str], flags: list[str]) -> dict | Status:
    """The submitted notebook, or the status when there is none (MISSING) or it is not one (UNREADABLE)."""
    path, notes = find_notebook(submission_dir, assignment)
    log.extend(notes)
    if path is None:
        flags.append(f"missing: {notes[0]}")
        return Status.MISSING
    try:
        return read_notebook(path)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        flags.append(f"unreadable notebook {path.name}: {error}")
        log.append(f"unreadable: {error}")
        return Status.UNREADABLE


def grade_submission(course_root: Path, assignment: str, student: str, *, submission_dir: Path,
                     workdir: Path, sandbox: bool | None = None, limits: Limits | None = None,
                     source: Path | None = None) -> SubmissionResult:
    """Grade one student's submission of ``assignment``; never raises for anything the submission does.

    Args:
        course_root: the course folder (``solutions/<assignment>/<assignment>.ipynb``, ``utils/``).
        submission_dir: the student's folder (the notebook and any files handed in beside it).
        workdir: an empty or new folder for this grading: ``work/`` (a copy of the submission folder,
            the kernel's only writable place) and ``executed.ipynb`` (the result in its metadata).
        sandbox: True requires bubblewrap, False runs without it, None uses it when it works.
        limits: resource limits (``grader.sandbox.Limits``); the default cell timeout comes from
            ``c.Execute.timeout`` in ``nbgrader_config.py`` when set there.
        source: the notebook whose locked cells are trusted (default: the instructor notebook;
            ``grader.validate`` passes the student version, so only visible checks run).

    Raises:
        FileNotFoundError: no instructor notebook for ``assignment`` (the grader's setup is broken).
        RuntimeError: ``sandbox=True`` but bubblewrap cannot run, or no kernel can start at all.
    """
    result, notebook = grade_in_memory(course_root, assignment, student, submission_dir=submission_dir,
                                       workdir=workdir, sandbox=sandbox, limits=limits, source=source)
    if notebook is None:
        return result
    executed = Path(workdir).resolve() / "executed.ipynb"
    executed.write_bytes(notebook)
    return replace(result, executed_notebook=executed)


def grade_in_memory(course_root: Path, assignment: str, student: str, *, submission_dir: Path,
                    workdir: Path, sandbox: bool | None = None, limits: Limits | None = None,
                    source: Path | None = None) -> tuple[SubmissionResult, bytes | None]:
    """Grade as ``grade_submission`` does (same arguments), but hand the executed notebook back instead
    of writing ``executed.ipynb``: (result, notebook), ``notebook`` the bytes of the ``.ipynb`` file with
    the result in its metadata, or None when nothing ran; ``result.executed_notebook`` is None.
    """
    started = time.monotonic()
    course_root, workdir, submission_dir = Path(course_root).resolve(), Path(workdir).resolve(), Path(submission_dir)
    spec = load_spec(course_root, assignment) if source is None else \
        load_spec_file(str(Path(source).resolve()), Path(source).stat().st_mtime)
    limits = limits or default_limits(course_root)
    workdir.mkdir(parents=True, exist_ok=True)
    log: list[str] = []
    flags: list[str] = []
    use_sandbox = _choose_sandbox(sandbox, student, assignment, log)

    def finish(status: str, cells: dict | None = None, messages: dict | None = None,
               regrade: bool = False) -> SubmissionResult:
        cells = {gid: (0.0, pts) for gid, pts in spec.points.items()} if cells is None else cells
        return SubmissionResult(student, assignment, status, cells, messages or {}, flags,
                                round(time.monotonic() - started, 2), "\n".join(log), None, regrade)

    raw = _read_submission(submission_dir, assignment, log, flags)
    if isinstance(raw, Status):
        return finish(raw), None
    plan = rebuild(raw, spec, course_root / "utils", check_copies=source is None)
    flags.extend(plan.flags)
    _flag_shadowing(submission_dir, spec, plan, flags)
    log.extend(plan.notes)
    before = course_state(course_root, [workdir])
    outcome, plan, regrade = _run_attempts(plan, spec, course_root, submission_dir, workdir, use_sandbox=use_sandbox,
                                           limits=limits, student=student, log=log)
    changed = _flag_course_changes(before, course_state(course_root, [workdir]), flags, log)
    scored = score(plan, spec, outcome, course_changed=changed)
    flags.extend(scored.flags)
    _log_run(log, outcome, scored.cells, use_sandbox)
    result = finish(outcome.status, scored.cells, scored.messages, regrade=regrade)
    attach_result(plan.nb, result)  # the one stored copy: feedback reads it back from the notebook
    return result, notebook_bytes(plan.nb)


def notebook_bytes(nb) -> bytes:
    """The file ``nbformat.write`` makes of notebook ``nb``, as bytes (UTF-8 JSON ending in a newline)."""
    text = nbformat.writes(nb)
    return (text if text.endswith("\n") else text + "\n").encode("utf-8")


def default_limits(course_root: Path) -> Limits:
    """Limits, with the cell timeout of ``c.Execute.timeout`` in the course's nbgrader_config.py when it sets one."""
    limits = Limits()
    timeout = cell_timeout(course_root)
    if timeout is not None:
        limits.cell_timeout = timeout
    return limits


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Grade one submission (prints the result as JSON).")
    parser.add_argument("assignment")
    parser.add_argument("student")
    parser.add_argument("submission_dir", type=Path)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--course", type=Path, default=Path.cwd())
    parser.add_argument("--no-sandbox", action="store_true")
    parser.add_argument("--verbose", "-v", action="store_true", help="say more of what is done")
    args = parser.parse_args(argv)
    setup(args.verbose)
    try:
        result = grade_submission(args.course, args.assignment, args.student, submission_dir=args.submission_dir,
                                  workdir=args.workdir, sandbox=False if args.no_sandbox else None)
    except Exception:
        logger.exception("the grader failed on %s's %s (not the submission's fault)",
                         args.student, args.assignment)
        return 1
    print(result.to_json())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
