"""How fast a whole class grades: serially, with 2 local workers, and on a 2-worker Dask LocalCluster.

    python benchmarks/bench_grading.py [--n01 40] [--n03 10] [--quick] [--json FILE]   (make bench-grading)

It builds a throw-away course in a temporary folder (01 and 03 released with nbgrader), generates a
class of submissions (cycling through right, blank and partly wrong: the instructor's answers with one
answer cell put back to its stub), and grades the same class three times from scratch with
``grader.batch.grade_class``:

- serial: one worker process, its kernels on every core (what one-after-another grading does);
- 2 workers: ``JOBS=2``, each kernel on cores // 2 threads;
- Dask: a ``LocalCluster(n_workers=2, processes=True)``, each kernel on cores // 2 threads;
- serial1 (``--modes serial1``, not run by default): one worker whose kernels get one thread, what
  each of the two workers gets, so ``jobs2`` against it shows how well two workers share the machine
  apart from what the serial kernel's extra threads buy.

It prints submissions per minute for each and the ratio to serial in the same run, checks that the
three runs gave identical grades, and measures the per-submission overhead: the time to grade an empty
notebook (no cells: the grader puts the test cells back and they fail at once), i.e. starting the
worker's sandboxed kernel, importing torch and the course, and the grader's own bookkeeping. That is
the median of 5 empty notebooks graded one after another by one worker, after a first one that also
pays the worker's one-time set-up (its matplotlib font list), printed apart.
Figures depend on the machine and its load; the load average is printed with each run.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader.batch import grade_class  # noqa: E402
from grader.cells import meta  # noqa: E402
from grader.gradebook import open_gradebook  # noqa: E402
from grader.release import clean_notebook, run_nbgrader  # noqa: E402
from grader.result import Status  # noqa: E402

def load(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def slow_rows(rows, factor: float = 2.5, margin: float = 20.0) -> list:
    """Rows that took more than ``factor`` times their assignment's median and ``margin`` s more."""
    by_assignment: dict[str, list[float]] = {}
    for row in rows:
        if row.seconds is not None:
            by_assignment.setdefault(row.assignment, []).append(row.seconds)
    medians = {a: statistics.median(seconds) for a, seconds in by_assignment.items()}
    return [row for row in rows if row.seconds is not None
            and row.seconds > max(factor * medians[row.assignment], medians[row.assignment] + margin)]


def keep_log(run: dict, kind: str, row, headline: str, tail: int) -> None:
    """Store ``row`` with its log under ``run[kind]`` and print the headline and the log's last lines."""
    log = Path(row.log).read_text(errors="replace") if row.log and Path(row.log).is_file() else ""
    run.setdefault(kind, []).append({**vars(row), "log_text": log})
    print(f"  {row.student} {row.assignment}: {headline}\n"
          + "".join(f"    {line}\n" for line in log.splitlines()[-tail:]), flush=True)


def kernel_waits(rows) -> dict:
    """How often a grading kernel sat idle while a cell ran, read from each submission's log.

    ``woken``: kernels the grader had to wake (``grader.watchdog.nudge_kernel``: a request left unread);
    ``stalled``: attempts killed after the stall limit and graded again. Both are 0 when no reply is lost.
    """
    waits = {"gradings": 0, "woken": 0, "nudges": 0, "stalled": 0, "where": []}
    for row in rows:
        log = Path(row.log).read_text(errors="replace") if row.log and Path(row.log).is_file() else ""
        waits["gradings"] += 1
        nudges = [int(n) for n in re.findall(r"woke a kernel that waited idle (\d+) time", log)]
        stalls = re.findall(r"attempt \d+: (.*); grading again", log)
        waits["woken"] += bool(nudges)
        waits["nudges"] += sum(nudges)
        waits["stalled"] += len(stalls)
        waits["where"] += [f"{row.student} {row.assignment}: {s}" for s in stalls]
    return waits


def make_course(root: Path, assignments: list[str]) -> dict[str, dict]:
    """A course under ``root`` with ``assignments`` released; returns the released notebooks."""
    root.mkdir(parents=True)
    shutil.copyfile(ROOT / "nbgrader_config.py", root / "nbgrader_config.py")  # places the course in root
    shutil.copytree(ROOT / "utils", root / "utils", ignore=shutil.ignore_patterns("__pycache__"))
    released = {}
    for a in assignments:
        shutil.copytree(ROOT / "solutions" / a, root / "solutions" / a,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        run_nbgrader(["generate_assignment", a, "--force"], root)
        path = root / "notebooks" / a / f"{a}.ipynb"
        clean_notebook(path)
        released[a] = load(path)
    return released


def class_of(assignment: str, released: dict, n: int) -> dict[str, dict]:
    """n submissions: right, blank and partly wrong (one answer left as its stub), in turn."""
    solution = load(ROOT / "solutions" / assignment / f"{assignment}.ipynb")
    answers = {meta(c)["grade_id"]: c["source"] for c in solution["cells"] if meta(c).get("solution")}
    right = copy.deepcopy(released)
    for cell in right["cells"]:
        if meta(cell).get("solution") and meta(cell).get("grade_id") in answers:
            cell["source"] = answers[meta(cell)["grade_id"]]
    answer_ids = list(answers)
    out = {}
    for i in range(n):
        kind = ("right", "blank", "partly")[i % 3]
        nb = copy.deepcopy(right if kind != "blank" else released)
        if kind == "partly":
            stub_id = answer_ids[(i // 3) % len(answer_ids)]
            stub = next(c for c in released["cells"] if meta(c).get("grade_id") == stub_id)
            next(c for c in nb["cells"] if meta(c).get("grade_id") == stub_id)["source"] = stub["source"]
        out[f"s{i:03d}-{kind}"] = nb
    return out


def submit(root: Path, assignment: str, submissions: dict[str, dict]) -> None:
    for student, nb in submissions.items():
        folder = root / "submitted" / student / assignment
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{assignment}.ipynb").write_text(json.dumps(nb))


def grades(root: Path) -> dict:
    with open_gradebook(f"sqlite:///{root}/gradebook.db") as gb:
        return {(s.assignment.name, s.student.id): {g.name: g.auto_score for nb in s.notebooks for g in nb.grades}
                for a in gb.assignments for s in a.submissions}


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n01", type=int, default=40, help="submissions of 01_UNets (default: %(default)s)")
    parser.add_argument("--n03", type=int, default=10, help="submissions of 03_Optimizations (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="6 of 01 and 2 of 03")
    parser.add_argument("--modes", default="serial,jobs2,dask",
                        help="which runs, of serial, jobs2, dask, serial1 (default: %(default)s)")
    parser.add_argument("--overhead-runs", type=int, default=5, help="empty notebooks to grade after a first one (default: %(default)s)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.n01, args.n03 = 6, 2
    return args


def _overhead(tmp: Path, template: Path, released: dict, runs: int, figures: dict) -> None:
    """Per-submission overhead: ``runs`` empty notebooks of 01 graded by one worker, after a first one."""
    empty = tmp / "empty"
    shutil.copytree(template, empty, ignore=shutil.ignore_patterns("submitted"))
    blank = {**released["01_UNets"], "cells": []} if "01_UNets" in released else None
    if blank is None or runs <= 0:
        return
    # One more than asked: the worker's first submission also builds its matplotlib font list
    # (once per worker process), so it is reported apart from the per-submission figure.
    submit(empty, "01_UNets", {f"empty{i:02d}": blank for i in range(runs + 1)})
    summary = grade_class(empty, ["01_UNets"], jobs=1, progress=False)
    by_student = {r.student: r.seconds for r in summary.rows if r.seconds is not None}
    first, *seconds = [by_student[s] for s in sorted(by_student)]
    figures["overhead_s"] = {"median": statistics.median(seconds), "all": seconds, "first": first,
                             "statuses": sorted({r.status for r in summary.rows}), "load": loadavg()}
    print(f"per-submission overhead (empty notebook, {len(seconds)} runs after the worker's first): "
          f"median {statistics.median(seconds):.1f} s, all {', '.join(f'{s:.1f}' for s in seconds)}; "
          f"the worker's first {first:.1f} s; load {loadavg()}", flush=True)


def _grade_as(mode: str, course: Path, assignments: list[str], cores: int):
    """Grade the class in ``course`` one way: serial, two jobs, a two-worker dask cluster, or serial on one thread."""
    if mode == "serial":
        return grade_class(course, assignments, jobs=1)
    if mode == "jobs2":
        return grade_class(course, assignments, jobs=2)
    if mode == "serial1":  # one worker whose kernels get one thread: what each of the two workers gets
        return grade_class(course, assignments, jobs=1, threads=1)
    if mode == "dask":
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) \
                as cluster, Client(cluster) as client:
            return grade_class(course, assignments, scheduler=client, threads=max(1, cores // 2))
    raise SystemExit(f"unknown mode {mode!r}; choose from serial, jobs2, dask, serial1")


def _timed_run(mode: str, course: Path, sizes: dict[str, int], cores: int, figures: dict) -> dict:
    """Grade the class in ``course`` as ``mode``; record its figures; the grades it gave."""
    total = sum(sizes.values())
    before = loadavg()
    start = time.perf_counter()
    summary = _grade_as(mode, course, list(sizes), cores)
    wall = time.perf_counter() - start
    graded = grades(course)
    statuses = {s: summary.count(s) for s in {r.status for r in summary.rows}}
    waits = kernel_waits(summary.rows)
    figures["runs"][mode] = {"seconds": wall, "per_minute": 60 * total / wall, "statuses": statuses,
                             "load_before": before, "load_after": loadavg(), "kernel_waits": waits}
    print(f"{mode}: {wall:.0f} s, {60 * total / wall:.2f} submissions/min, statuses {statuses}; "
          f"kernels woken {waits['woken']}, stalled attempts {waits['stalled']}; "
          f"load {before} -> {loadavg()}", flush=True)
    # a run's outliers and failures say why, before the course folder and its logs go
    for row in slow_rows(summary.rows):
        keep_log(figures["runs"][mode], "slow", row, f"slow: {row.seconds:.0f} s", tail=12)
    for row in summary.failed:
        keep_log(figures["runs"][mode], "failed", row, f"{row.status}; {'; '.join(row.flags)}", tail=25)
    return graded


def _print_table(runs: dict, identical: bool) -> None:
    print("\n| run | wall time | submissions/min | vs serial | kernels woken / stalled attempts |"
          "\n|---|---:|---:|---:|---:|")
    for mode, run in runs.items():
        failed = sum(n for status, n in run["statuses"].items() if status != Status.GRADED)
        ratio = f"{run['speedup']:.2f}x" if "speedup" in run and not failed else ""
        if failed:
            ratio = f"not valid: {failed} not graded"
        waits = run["kernel_waits"]
        print(f"| {mode} | {run['seconds']:.0f} s | {run['per_minute']:.2f} | {ratio} | "
              f"{waits['woken']} / {waits['stalled']} of {waits['gradings']} |")
    gradings = sum(run["kernel_waits"]["gradings"] for run in runs.values())
    print(f"\nkernel waits over all {gradings} gradings: "
          f"{sum(run['kernel_waits']['woken'] for run in runs.values())} woken, "
          f"{sum(run['kernel_waits']['stalled'] for run in runs.values())} stalled attempts")
    print(f"\nidentical grades across runs: {identical}")


def main(argv: list[str]) -> int:
    args = _parse(argv)
    cores = os.cpu_count() or 1
    sizes = {a: n for a, n in (("01_UNets", args.n01), ("03_Optimizations", args.n03)) if n > 0}
    total = sum(sizes.values())
    print(f"class: {', '.join(f'{n} of {a}' for a, n in sizes.items())} ({total} submissions); "
          f"{cores} cores; load average {loadavg()}", flush=True)
    figures: dict = {"cores": cores, "sizes": sizes, "runs": {}}
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        template = Path(tmp) / "template"
        released = make_course(template, list(sizes))
        for a, n in sizes.items():
            submit(template, a, class_of(a, released[a], n))
        _overhead(Path(tmp), template, released, args.overhead_runs, figures)
        results = {}
        for mode in [m for m in args.modes.split(",") if m]:
            course = Path(tmp) / mode
            shutil.copytree(template, course)
            results[mode] = _timed_run(mode, course, sizes, cores, figures)

    runs = figures["runs"]
    if "serial" in runs:
        for mode, run in runs.items():
            run["speedup"] = runs["serial"]["seconds"] / run["seconds"]
    identical = len({json.dumps(sorted(map(str, r.items()))) for r in results.values()}) <= 1
    figures["identical_grades"] = identical
    _print_table(runs, identical)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
