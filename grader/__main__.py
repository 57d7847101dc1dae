"""The instructor's grading commands (what ``make autograde``, ``make grades`` and ``make report`` run).

    python -m grader autograde 01_UNets [...] [--jobs N | --scheduler tcp://HOST:PORT] [--force]
    python -m grader grades [--to grades.csv]
    python -m grader report [--out report]

Every command works on the course folder (``--course``, default: this one) and its gradebook
(``--db-url``, default: ``CourseDirectory.db_url`` in its nbgrader_config.py).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from grader.log import setup

COURSE_ROOT = Path(__file__).resolve().parent.parent
logger = logging.getLogger("grader.__main__")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m grader", description=__doc__.split("\n\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--course", type=Path, default=COURSE_ROOT, help="the course folder (default: %(default)s)")
    common.add_argument("--db-url", default=None,
                        help="the gradebook, e.g. postgresql://user@host/db (default: the course's db_url)")
    common.add_argument("--verbose", "-v", action="store_true", help="say more of what is done")
    commands = parser.add_subparsers(dest="command", required=True)

    grade = commands.add_parser("autograde", parents=[common], help="grade new or changed submissions")
    grade.add_argument("assignments", nargs="+", help="assignment ids, e.g. 01_UNets")
    grade.add_argument("--jobs", "-j", type=int, default=None, help="worker processes here (default: cores)")
    grade.add_argument("--scheduler", default=None, help="a Dask scheduler address, tcp://HOST:PORT")
    grade.add_argument("--force", action="store_true", help="grade unchanged submissions again")
    grade.add_argument("--student", action="append", default=None, help="grade only this student (repeatable)")
    grade.add_argument("--threads", type=int, default=None,
                       help="CPU threads per submission's kernel (default: cores // jobs here; on a cluster the "
                            "workers' OMP_NUM_THREADS)")
    grade.add_argument("--worker-course", type=Path, default=None,
                       help="where the course folder is on the Dask workers, if not at the same path")
    grade.add_argument("--no-progress", action="store_true", help="no progress bar")

    grades = commands.add_parser("grades", parents=[common], help="export scores with flags to CSV")
    grades.add_argument("--to", type=Path, default=Path("grades.csv"), help="the CSV file (default: %(default)s)")

    report = commands.add_parser("report", parents=[common], help="write the class report")
    report.add_argument("--out", type=Path, default=Path("report"), help="the folder (default: %(default)s)")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    setup(args.verbose)
    from grader.course_config import course_settings

    try:
        settings = course_settings(args.course, args.db_url)
    except FileNotFoundError as error:
        logger.error("%s", error)
        return 2
    if args.command == "autograde":
        from grader.batch import RunStatus, grade_class

        missing = [a for a in args.assignments if not (settings.root / "solutions" / a / f"{a}.ipynb").exists()]
        if missing:
            logger.error("no instructor notebook for %s under %s", ", ".join(missing), settings.root / "solutions")
            return 2
        if args.jobs is not None and args.jobs < 1:
            logger.error("--jobs must be at least 1")
            return 2
        summary = grade_class(settings.root, args.assignments, jobs=args.jobs, scheduler=args.scheduler,
                              force=args.force, students=args.student, db_url=settings.db_url,
                              worker_course_root=args.worker_course, threads=args.threads,
                              progress=not args.no_progress)
        print(summary.table())
        return 1 if summary.count(RunStatus.GRADER_ERROR) else 0
    if args.command == "grades":
        from grader.report import export_grades

        print(f"grades written to {export_grades(settings.db_url, args.to, settings.course_id)}")
        return 0
    from grader.report import write_report

    paths = write_report(settings.db_url, args.out, settings.course_id)
    print("report written: " + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
