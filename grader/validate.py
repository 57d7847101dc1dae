"""Validate a notebook before handing it in: run it top to bottom with its visible checks.

    python -m grader.validate notebooks/01_UNets/01_UNets.ipynb [more notebooks]   (``make validate``)

Runs each notebook in a fresh kernel in the ``grade`` profile, with the checks of the student
version (``notebooks/<id>/<id>.ipynb``) put back in place, prints every check's result and
message, and exits 1 when any check fails or the notebook cannot be run to the end (0 when all
pass). Hidden tests are not run: they stay the grader's.
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from grader.grade_one import grade_submission, graded_cells  # noqa: F401 (graded_cells: for callers)
from grader.log import setup
from grader.result import Status

COURSE = Path(__file__).resolve().parent.parent
logger = logging.getLogger("grader.validate")


def assignment_of(notebook: Path, course: Path) -> str:
    """The assignment a notebook belongs to: its folder's name, else the id its file name starts with."""
    released = sorted(p.name for p in (course / "notebooks").iterdir() if p.is_dir()) \
        if (course / "notebooks").is_dir() else []
    for candidate in (notebook.parent.name, notebook.stem):
        if candidate in released:
            return candidate
    matches = [a for a in released if notebook.stem.startswith(a.split("_")[0])]
    if len(matches) == 1:
        return matches[0]
    raise SystemExit(f"cannot tell which assignment {notebook} is; pass --assignment ID (one of {released})")


def validate(notebook: Path, course: Path = COURSE, assignment: str | None = None, timeout: float | None = None) -> bool:
    """Run ``notebook`` with its visible checks; print the report; True when every check passed."""
    from grader.sandbox import Limits

    assignment = assignment or assignment_of(notebook, course)
    release = course / "notebooks" / assignment / f"{assignment}.ipynb"
    with tempfile.TemporaryDirectory(prefix="validate-") as tmp:
        submission = Path(tmp) / "submission"
        submission.mkdir()
        (submission / f"{assignment}.ipynb").write_bytes(notebook.read_bytes())
        for extra in notebook.parent.iterdir():  # files handed in beside it (weights, ...)
            if extra.is_file() and extra.suffix != ".ipynb" and extra.stat().st_size < (1 << 30):
                (submission / extra.name).write_bytes(extra.read_bytes())
        limits = Limits()
        if timeout:
            limits.cell_timeout = timeout
        result = grade_submission(course, assignment, "you", submission_dir=submission, workdir=Path(tmp) / "work",
                                  sandbox=False, limits=limits, source=release)
    print(f"{notebook}: {assignment}")
    failed = 0
    for gid, (score, max_score) in result.cells.items():
        if score == max_score:
            print(f"  ok      {gid}")
        else:
            failed += 1
            message = result.messages.get(gid, "failed").replace("\n", "\n          ")
            print(f"  FAILED  {gid}: {message}")
    for flag in result.flags:
        print(f"  note    {flag}")
    if result.status != Status.GRADED:
        print(f"  the notebook did not run to the end: {result.status}")
    passed = failed == 0 and result.status == Status.GRADED
    print(f"  {'all checks passed' if passed else f'{failed} of {len(result.cells)} checks failed'}")
    return passed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Run notebooks with their visible checks; exit 1 on any failure.")
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--assignment", help="assignment id (default: from the folder or file name)")
    parser.add_argument("--timeout", type=float, help="seconds per cell (default: 300)")
    parser.add_argument("--verbose", "-v", action="store_true", help="say more of what is done")
    args = parser.parse_args(argv)
    setup(args.verbose)
    ok = True
    for notebook in args.notebooks:
        if not notebook.exists():
            logger.error("%s: no such notebook", notebook)
            ok = False
            continue
        ok = validate(notebook, COURSE, args.assignment, args.timeout) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
