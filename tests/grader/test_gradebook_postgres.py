"""The gradebook on a real PostgreSQL server: nbgrader's schema, our table, two writers at once.

The fixture starts a private server (Debian's postgresql package: ``initdb`` into a temporary folder,
listening only on a Unix socket in that folder) and stops it at the end. As root, the server runs as
the ``postgres`` user (or ``nobody``), since PostgreSQL refuses to run as root.
"""
from __future__ import annotations

import csv
import glob
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from batch_helpers import POINTS_01 as POINTS
from batch_helpers import pg_result as _result
from batch_helpers import pg_writer as _writer
from course_harness import TempCourse

A = "01_UNets"


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


@pytest.fixture(scope="module")
def postgres_url():
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (apt-get install -y postgresql; .ci/run does it)")
    prefix = []
    folder = Path(tempfile.mkdtemp(prefix="gradebook-pg-"))
    if os.geteuid() == 0:
        user = "postgres" if subprocess.run(["id", "postgres"], capture_output=True).returncode == 0 else "nobody"
        shutil.chown(folder, user)
        prefix = ["runuser", "-u", user, "--"]
    data, log = folder / "data", folder / "server.log"

    def pg(tool, *args):
        return subprocess.run([*prefix, str(bindir / tool), *args], capture_output=True, text=True, timeout=120)

    init = pg("initdb", "-D", str(data), "-U", "grader", "--auth=trust", "-E", "UTF8", "--no-locale")
    assert init.returncode == 0, init.stderr
    start = pg("pg_ctl", "-D", str(data), "-l", str(log), "-w", "-t", "90", "start",
               "-o", f"-k {folder} -c listen_addresses='' -p 5432 -c max_connections=50")
    assert start.returncode == 0, start.stderr + (log.read_text() if log.exists() else "")
    try:
        made = pg("createdb", "-h", str(folder), "-p", "5432", "-U", "grader", "gradebook")
        assert made.returncode == 0, made.stderr
        yield f"postgresql+psycopg2://grader@/gradebook?host={folder}&port=5432"
    finally:
        pg("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_two_writers_at_once_each_grade_arrives_exactly_once(postgres_url, tmp_path):
    from collections import Counter

    from nbgrader.api import Grade, Gradebook
    from sqlalchemy import text

    from grader.course_config import course_settings
    from grader.gradebook import GradebookWriter, ensure_assignment, read_class

    course = TempCourse(tmp_path / "course", [A])
    settings = course_settings(course.root, postgres_url)
    ensure_assignment(settings, A)  # nbgrader generate_assignment against PostgreSQL
    ensure_assignment(settings, A)  # the second time finds it there
    with GradebookWriter(postgres_url):  # creates our table before the writers race
        pass

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    first, second = list(range(0, 40)), list(range(20, 60))  # s020..s039 are written by both
    writers = [ctx.Process(target=_writer, args=(postgres_url, part, barrier)) for part in (first, second)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=600)
    assert [w.exitcode for w in writers] == [0, 0]

    with Gradebook(postgres_url, "") as gb:
        # the auto-graded checks; 01's written answers (graded by hand) have grade rows of their own
        per_cell = Counter((g.notebook.assignment.student_id, g.cell.name) for g in gb.db.query(Grade)
                           if g.cell.name in POINTS)
        submissions = gb.db.execute(text("select count(*) from submitted_assignment")).scalar()
        ours = gb.db.execute(text("select count(*) from class_grading")).scalar()
        scores = {s.student.id: {g.name: g.auto_score for nb in s.notebooks for g in nb.grades if g.name in POINTS}
                  for s in gb.find_assignment(A).submissions}
    assert submissions == 60 and ours == 60
    assert len(per_cell) == 60 * len(POINTS) and set(per_cell.values()) == {1}, "a grade arrived twice"
    assert scores == {f"s{k:03d}": {g: s for g, (s, _) in _result("", k).cells.items()} for k in range(60)}

    results, _ = read_class(postgres_url)
    stored = {r.student: r for r in results}
    assert stored["s007"].status == "timeout" and "flagged" in stored["s010"].flags
    assert stored["s021"].messages == _result("", 21).messages

    out = subprocess.run([sys.executable, "-m", "grader", "grades", "--course", str(course.root),
                          "--db-url", postgres_url, "--to", str(tmp_path / "grades.csv")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    rows = {r["student_id"]: r for r in csv.DictReader(open(tmp_path / "grades.csv"))}
    assert len(rows) == 60 and float(rows["s013"]["score"]) == sum(_result("", 13).cells[g][0] for g in POINTS)
    assert rows["s007"]["status"] == "timeout"
