"""Grading a whole class (grader.batch, grader.gradebook, grader.report, python -m grader).

The machinery is tested with an instant grader (``batch_helpers.fake_grade``) whose results the
submissions themselves dictate, so the tests know exactly what the gradebook must hold; the real
single-submission grader runs in the slow tests at the end (a few submissions of notebook 01, in
parallel on this machine and on a 2-worker Dask LocalCluster, with identical grades).
"""
from __future__ import annotations

import copy
import csv
import json
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, report
from course_harness import TempCourse, fill_in, graded_test_cells, nbgrader_meta, read, solution_path
from grader.batch import Summary, Row, discover, expected_cost, folder_hash, grade_class, pack
from grader.course_config import course_settings
from grader.gradebook import read_class

A = "01_UNets"
FAKE = "batch_helpers:fake_grade"
POINTS = {k: nbgrader_meta(c)["points"] for k, c in graded_test_cells(read(solution_path(A))).items()}


def test_discover_and_hash(tmp_path):
    for student in ("bob", "amy"):
        (tmp_path / "submitted" / student / A).mkdir(parents=True)
        (tmp_path / "submitted" / student / A / f"{A}.ipynb").write_text(student)
    (tmp_path / "submitted" / "amy" / "02_Diffusion_Models").mkdir()
    (tmp_path / "submitted" / ".hidden" / A).mkdir(parents=True)
    found = discover(tmp_path, [A, "02_Diffusion_Models"])
    assert [(s.student, s.assignment) for s in found] == [("amy", A), ("amy", "02_Diffusion_Models"), ("bob", A)]
    assert [s.student for s in discover(tmp_path, [A], students=["bob"])] == ["bob"]

    folder = tmp_path / "submitted" / "amy" / A
    before = folder_hash(folder)
    (folder / ".ipynb_checkpoints").mkdir()
    (folder / ".ipynb_checkpoints" / "x.ipynb").write_text("autosave")
    assert folder_hash(folder) == before, "an editor's checkpoint copy changed the hash"
    (folder / f"{A}.ipynb").write_text("amy, changed")
    assert folder_hash(folder) != before
    (folder / f"{A}.ipynb").write_text("amy")
    (folder / "extra.py").write_text("")
    assert folder_hash(folder) != before, "a new file did not change the hash"
    assert b"extra.py" in pack(folder) and b"x.ipynb" not in pack(folder)


def test_longest_assignment_is_expected_first(tmp_path):
    # Never graded here: the instructor notebooks' code cells order the assignments.
    for assignment, n_code in (("short", 3), ("long", 9)):
        folder = tmp_path / "solutions" / assignment
        folder.mkdir(parents=True)
        cells = [{"cell_type": "code", "source": ""}] * n_code + [{"cell_type": "markdown", "source": ""}] * 20
        (folder / f"{assignment}.ipynb").write_text(json.dumps({"cells": cells}))
    assert expected_cost(tmp_path, ["short", "long", "missing"]) == {"short": 3.0, "long": 9.0, "missing": 0.0}

    # Logged times of earlier runs win, once every assignment has them: here "short" is the slow one.
    def log(assignment, student, seconds):
        path = tmp_path / "logs" / "autograde" / assignment / f"{student}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"graded on host in {seconds} s, status graded\nmore lines")

    for student, seconds in (("a", 40.0), ("b", 50.5), ("c", 1000.0)):
        log("short", student, seconds)
    assert expected_cost(tmp_path, ["short", "long"]) == {"short": 3.0, "long": 9.0}   # "long" has no log
    log("long", "a", 12.0)
    (tmp_path / "logs" / "autograde" / "long" / "broken.log").write_text("grading failed in the grader")
    assert expected_cost(tmp_path, ["short", "long"]) == {"short": 50.5, "long": 12.0}


def test_table_says_who_failed_and_where_the_log_is():
    rows = [Row("amy", A, "graded", 7, 7, 1.0), Row("bob", A, "timeout", 0, 7, 300.0, ["cell timed out"], "/l/bob.log"),
            Row("cy", A, "skipped")]
    table = Summary(rows, 12.0, 2).table()
    lines = table.splitlines()
    assert "bob" in lines[1] and "timeout" in lines[1] and "/l/bob.log" in lines[1], "failures come first"
    assert "1 graded, 1 failed (1 timeout), 1 unchanged and skipped" in table


# ----------------------------------------------------------------------------------------- a course

@pytest.fixture(scope="module")
def released_course(tmp_path_factory):
    """A course with 01 released (and recorded in its SQLite gradebook) and utils/, copied by each test."""
    root = tmp_path_factory.mktemp("released")
    course = TempCourse(root, [A])
    course.release(A)
    shutil.copytree(ROOT / "utils", root / "utils", ignore=shutil.ignore_patterns("__pycache__"))  # the kernel's
    return root


def make_course(released, tmp_path):
    root = tmp_path / "course"
    shutil.copytree(released, root)  # its nbgrader_config.py places the course wherever it lies
    course = TempCourse.__new__(TempCourse)
    course.root = root
    return course


def fake_submission(course, student, scores, status="graded", sleep=0.0, messages=None, broken=False,
                    regrade=False):
    nb = copy.deepcopy(read(course.root / "notebooks" / A / f"{A}.ipynb"))
    nb["metadata"]["fake"] = {"cells": {k: [s, POINTS[k]] for k, s in scores.items()}, "status": status,
                              "sleep": sleep, "messages": messages or {}, "raise": broken, "regrade": regrade}
    course.submit(student, A, nb)


def gradebook_grades(root):
    """(student -> {grade_id: auto_score}) of the auto-graded checks, read back with nbgrader's own API.

    Written answers graded by hand (Markdown answer cells) are left out: the batch never scores them.
    """
    from nbgrader.api import Gradebook

    with Gradebook(course_settings(root).db_url, "") as gb:
        return {s.student.id: {g.name: g.auto_score for nb in s.notebooks for g in nb.grades if g.name in POINTS}
                for s in gb.find_assignment(A).submissions}


CLASS = {  # student -> (scores, status, sleep): the slowest finish first or last depending on the pool
    "ann": ({"test_down_block": 2, "test_up_block": 2, "test_basic_unet": 3}, "graded", 1.2),
    "ben": ({"test_down_block": 0, "test_up_block": 2, "test_basic_unet": 0}, "graded", 0.0),
    "cat": ({"test_down_block": 2, "test_up_block": 0}, "timeout", 0.6),
    "dan": ({}, "crashed", 0.1),
    "eve": ({"test_down_block": 0, "test_up_block": 0, "test_basic_unet": 0}, "graded", 0.3),
}


def submit_class(course):
    for student, (scores, status, sleep) in CLASS.items():
        failed = {k: f"AssertionError: {k} is wrong" for k in POINTS if scores.get(k, 0) < POINTS[k]}
        fake_submission(course, student, scores, status, sleep, failed)


def expected_grades():
    expected = {}
    for student, (scores, status, _) in CLASS.items():
        expected[student] = {k: float(scores[k]) if k in scores else (None if status == "graded" else 0.0)
                             for k in POINTS}
    return expected


@pytest.mark.slow
def test_parallel_batch_writes_each_grade_once_and_skips_unchanged(released_course, tmp_path):
    course = make_course(released_course, tmp_path)
    submit_class(course)
    fake_submission(course, "fay", {}, broken=True)
    summary = grade_class(course.root, [A], jobs=2, grader=FAKE, progress=False)
    assert {r.student: r.status for r in summary.rows} == {**{s: v[1] for s, v in CLASS.items()},
                                                           "fay": "grader_error"}
    assert gradebook_grades(course.root) == expected_grades(), "a grade was lost, doubled or misplaced"
    assert "fay" not in gradebook_grades(course.root), "a broken grader must not write a grade"
    assert "the grader is broken" in (course.root / "logs" / "autograde" / A / "fay.log").read_text()
    executed = course.root / "autograded" / "ann" / A / f"{A}.ipynb"
    assert read(executed)["metadata"]["fake"]["cells"]["test_basic_unet"] == [3, 3]

    results, _ = read_class(course_settings(course.root).db_url)
    by_student = {r.student: r for r in results}
    # 01's written answers are graded by hand, so every graded submission waits for that, and only that
    assert by_student["ann"].score == 7 and by_student["ann"].status == "graded"
    assert by_student["ann"].flags == ["needs manual grading"]
    assert by_student["cat"].status == "timeout" and "needs manual grading" in by_student["cat"].flags
    assert by_student["ben"].messages["test_down_block"] == "AssertionError: test_down_block is wrong"

    # again: only the broken one is retried; then one changed submission; then everything with force
    fake_submission(course, "fay", {"test_down_block": 2}, status="graded")
    again = grade_class(course.root, [A], jobs=2, grader=FAKE, progress=False)
    assert {r.student for r in again.rows if r.status != "skipped"} == {"fay"}
    fake_submission(course, "ben", {"test_down_block": 2, "test_up_block": 2, "test_basic_unet": 3})
    changed = grade_class(course.root, [A], jobs=2, grader=FAKE, progress=False)
    assert {r.student for r in changed.rows if r.status != "skipped"} == {"ben"}
    assert gradebook_grades(course.root)["ben"] == {k: float(v) for k, v in POINTS.items()}
    forced = grade_class(course.root, [A], jobs=2, grader=FAKE, force=True, progress=False)
    assert forced.count("skipped") == 0 and len(forced.rows) == 6
    assert len(gradebook_grades(course.root)) == 6


@pytest.mark.slow
def test_a_stall_on_every_attempt_is_graded_once_more_on_the_next_run(released_course, tmp_path):
    from grader.gradebook import REGRADE_DONE, REGRADE_NEXT

    course = make_course(released_course, tmp_path)
    partial = {"test_down_block": 2, "test_up_block": 0}
    fake_submission(course, "gil", partial, status="timeout", regrade=True)   # stalls every time
    fake_submission(course, "ivy", partial, status="timeout")                 # a loop that used CPU
    first = grade_class(course.root, [A], jobs=2, grader=FAKE, progress=False)
    flags = {r.student: r.flags for r in first.rows}
    assert REGRADE_NEXT in flags["gil"] and REGRADE_NEXT not in flags["ivy"]
    assert REGRADE_NEXT in first.table(), "the table must say the submission will be graded again"

    # unchanged, gil is graded again (ivy's timeout is its own and is not); the same stall now stands
    second = grade_class(course.root, [A], jobs=2, grader=FAKE, progress=False)
    assert {r.student: r.status for r in second.rows} == {"gil": "timeout", "ivy": "skipped"}
    flags = {r.student: r.flags for r in second.rows}
    assert REGRADE_DONE in flags["gil"] and REGRADE_NEXT not in flags["gil"]
    results, _ = read_class(course_settings(course.root).db_url)
    stored = {r.student: r for r in results}
    assert stored["gil"].status == "timeout" and REGRADE_DONE in stored["gil"].flags

    third = grade_class(course.root, [A], jobs=2, grader=FAKE, progress=False)
    assert {r.student: r.status for r in third.rows} == {"gil": "skipped", "ivy": "skipped"}
    # a forced run grades everyone; the same stall at the same hash stands and does not ask for more
    forced = grade_class(course.root, [A], jobs=2, grader=FAKE, progress=False, force=True)
    flags = {r.student: r.flags for r in forced.rows}
    assert REGRADE_DONE in flags["gil"] and REGRADE_NEXT not in flags["gil"]
    after = grade_class(course.root, [A], jobs=2, grader=FAKE, progress=False)
    assert {r.student: r.status for r in after.rows} == {"gil": "skipped", "ivy": "skipped"}
    # a changed submission starts again: one more chance after its own first stall
    fake_submission(course, "gil", {"test_down_block": 2}, status="timeout", regrade=True)
    fourth = grade_class(course.root, [A], jobs=2, grader=FAKE, progress=False)
    assert REGRADE_NEXT in next(r.flags for r in fourth.rows if r.student == "gil")
    assert gradebook_grades(course.root)["gil"]["test_down_block"] == 2.0


@pytest.mark.slow
def test_dask_local_cluster_gives_the_same_gradebook(released_course, tmp_path):
    from distributed import Client, LocalCluster

    local, remote = make_course(released_course, tmp_path / "a"), make_course(released_course, tmp_path / "b")
    for course in (local, remote):
        submit_class(course)
    grade_class(local.root, [A], jobs=2, grader=FAKE, progress=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        summary = grade_class(remote.root, [A], scheduler=client, grader=FAKE, progress=False)
        hosts = client.run(lambda: __import__("os").getpid())
    assert len(hosts) == 2 and summary.workers == 2
    assert gradebook_grades(remote.root) == gradebook_grades(local.root) == expected_grades()
    a, _ = read_class(course_settings(local.root).db_url)
    b, _ = read_class(course_settings(remote.root).db_url)
    strip = lambda rs: sorted((r.student, r.score, r.status, r.flags, r.messages) for r in rs)  # noqa: E731
    assert strip(a) == strip(b)


@pytest.mark.slow
def test_grades_and_report(released_course, tmp_path):
    from grader.report import check_rows

    course = make_course(released_course, tmp_path)
    submit_class(course)
    grade_class(course.root, [A], jobs=1, grader=FAKE, progress=False)
    from nbgrader.api import Gradebook

    with Gradebook(course_settings(course.root).db_url, "") as gb:  # a student who never handed in
        gb.add_student("zed")
    cli = [sys.executable, "-m", "grader"]
    run = lambda *args: subprocess.run([*cli, *args, "--course", str(course.root)], cwd=tmp_path,  # noqa: E731
                                       capture_output=True, text=True)
    out = run("grades", "--to", str(tmp_path / "grades.csv"))
    assert out.returncode == 0, out.stderr
    nbgrader = subprocess.run([sys.executable, "-m", "nbgrader", "export", "--to", str(tmp_path / "plain.csv")],
                              cwd=course.root, capture_output=True, text=True)
    assert nbgrader.returncode == 0, nbgrader.stderr
    ours = list(csv.DictReader(open(tmp_path / "grades.csv")))
    plain = list(csv.DictReader(open(tmp_path / "plain.csv")))
    assert [{k: v for k, v in r.items() if k not in ("status", "flags")} for r in ours] == plain
    flags = {r["student_id"]: (r["score"], r["status"], r["flags"]) for r in ours}
    assert flags["ann"] == ("7.0", "graded", "needs manual grading")  # 01's written answers
    assert flags["cat"][1] == "timeout" and "needs manual grading" in flags["cat"][2]
    assert flags["dan"][1] == "crashed"
    assert flags["zed"] == ("0.0", "missing", "no submission")

    out = run("report", "--out", str(tmp_path / "report"))
    assert out.returncode == 0, out.stderr
    checks = {r["check"]: r for r in csv.DictReader(open(tmp_path / "report" / "checks.csv"))}
    # failed test_down_block: ben, dan (crashed), eve; cat scored it; zed did not hand in
    assert checks["test_down_block"]["graded"] == "5" and checks["test_down_block"]["failed"] == "3"
    assert checks["test_down_block"]["commonest_message"] == "AssertionError: test_down_block is wrong"
    assert checks["test_down_block"]["message_count"] == "3"
    assert checks["test_basic_unet"]["failed"] == "4"
    students = {r["student"]: r for r in csv.DictReader(open(tmp_path / "report" / "students.csv"))}
    assert students["ann"]["score"] == "7" and students["ben"]["score"] == "2"
    assert students["zed"]["status"] == "missing"
    assert (tmp_path / "report" / "scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "test_down_block is wrong" in (tmp_path / "report" / "index.html").read_text()

    results, cells = read_class(course_settings(course.root).db_url)
    rows = {r["check"]: r for r in check_rows(results, cells)}
    assert rows["test_up_block"]["failed"] == 3  # cat, dan and eve
    assert rows["test_up_block"]["commonest_message"] == "AssertionError: test_up_block is wrong"


def test_each_result_is_stored_once_and_feedback_reads_what_grades_read(released_course, tmp_path):
    """A graded result lives in the gradebook (grades, report) and in one file, the executed notebook under
    autograded/ (feedback): no second copy is written, and both say the same."""
    from grader.feedback import EXCHANGE_FILES, write_all
    from grader.result import read_result

    course = make_course(released_course, tmp_path)
    submit_class(course)
    grade_class(course.root, [A], jobs=1, grader=FAKE, progress=False)
    autograded = course.root / "autograded"
    stored = sorted(p.relative_to(autograded).as_posix() for p in autograded.rglob("*")
                    if p.is_file() and p.name not in EXCHANGE_FILES)
    assert stored == [f"{student}/{A}/{A}.ipynb" for student in sorted(CLASS)], "a result stored twice"
    assert not list(course.root.rglob("result.json"))
    pages = {page.parent.parent.name: page.read_text() for page in write_all(autograded, tmp_path / "feedback")}
    gradebook = {r.student: r for r in read_class(course_settings(course.root).db_url)[0]}
    assert set(pages) == set(gradebook) == set(CLASS)
    for student, row in gradebook.items():
        result = read_result(autograded / student / A / f"{A}.ipynb")
        assert (result.status, result.messages) == (row.status, row.messages), student
        assert {g: s for g, (s, _) in result.cells.items()} == {g: row.cells[g][0] for g in result.cells}, student
        assert f"Score: {row.score:g} / " in pages[student], student


def test_cli_rejects_bad_input(tmp_path):
    run = subprocess.run([sys.executable, "-m", "grader", "autograde", "99_Nothing", "--course", str(ROOT)],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 2 and "no instructor notebook for 99_Nothing" in run.stderr
    run = subprocess.run([sys.executable, "-m", "grader", "grades", "--course", str(tmp_path)],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 2 and "has no nbgrader_config.py" in run.stderr


# ----------------------------------------------------------------------------------------- real grading

REAL_GRADER = "grader.grade_one:grade_in_memory"



@pytest.mark.slow
def test_real_grading_in_parallel_and_on_dask_agree(released_course, tmp_path):
    """Right, blank and partly wrong submissions of 01: 2 local workers and a 2-worker LocalCluster
    give the same grades, and nbgrader's own export and feedback see them."""
    from distributed import Client, LocalCluster

    import time

    local, remote = make_course(released_course, tmp_path / "a"), make_course(released_course, tmp_path / "b")
    released = read(local.root / "notebooks" / A / f"{A}.ipynb")
    right = fill_in(released, read(solution_path(A)))
    partly = copy.deepcopy(right)
    for cell in partly["cells"]:  # a down block that forgets to downsample
        if nbgrader_meta(cell).get("grade_id") == "down_block":
            cell["source"] = "".join(cell["source"]).replace("nn.MaxPool2d(2)", "nn.Identity()")
    assert partly != right, "the partly wrong submission is the right one"
    for course in (local, remote):
        course.submit("right", A, right)
        course.submit("blank", A, released)
        course.submit("partly", A, partly)
    start = time.perf_counter()
    mine = grade_class(local.root, [A], jobs=2, grader=REAL_GRADER, progress=False)
    seconds = time.perf_counter() - start
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        theirs = grade_class(remote.root, [A], scheduler=client, grader=REAL_GRADER, threads=1, progress=False)
    report(f"class grading, 3 submissions of {A} with 2 workers: {seconds:.0f} s here, "
           f"{theirs.wall_seconds:.0f} s on a 2-worker LocalCluster")
    assert {r.status for r in mine.rows + theirs.rows} == {"graded"}, mine.table() + theirs.table()
    grades = gradebook_grades(local.root)
    assert grades == gradebook_grades(remote.root)
    total = {s: sum(v.values()) for s, v in grades.items()}
    assert total["right"] == sum(POINTS.values()) and total["blank"] == 0
    assert 0 < total["partly"] < total["right"], grades["partly"]

    export = subprocess.run([sys.executable, "-m", "nbgrader", "export", "--to", str(tmp_path / "g.csv")],
                            cwd=local.root, capture_output=True, text=True)
    assert export.returncode == 0, export.stderr
    scores = {r["student_id"]: float(r["score"]) for r in csv.DictReader(open(tmp_path / "g.csv"))}
    assert scores == total
    feedback = subprocess.run([sys.executable, "-m", "nbgrader", "generate_feedback", A, "--student", "partly"],
                              cwd=local.root, capture_output=True, text=True)
    assert feedback.returncode == 0, feedback.stderr
    html = (local.root / "feedback" / "partly" / A / f"{A}.html").read_text()
    assert f"Score: {total['partly']:g}" in html.replace(".0 ", " ") or f"{total['partly']:g} / " in html
