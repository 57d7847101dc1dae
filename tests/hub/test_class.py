"""A class on the course's JupyterHub (`make hub`), in a real browser, each person in a tab of their own:
the instructor releases 01 in the Formgrader; two students log in, fetch it, fill it in (one right, one
with a wrong answer), validate and submit; neither can open the other's work or the instructor's files,
on the file system nor through the hub; the instructor collects, grades with the course's `make
autograde` and releases the feedback; each student fetches their own page, with their own score and no
line of a hidden test. Step times go to artifacts/hub/timings.json."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request

import pytest
from playwright.sync_api import expect

from browser.ui import Notebook, check_cells, graded_cells, nbgrader, points, solved, source, without_solution_markers
from grader.answer_sets.mutants import apply, load
from grader.grade_one import load_spec
from page_checks import assert_no_hidden_test

from .conftest import make
from .people import (ASSIGNMENT, UserLab, assignment_list, log_in, nbgrader_menu, open_formgrader,
                     press_for_assignment, submission_scores, what_user_can_open)

pytestmark = pytest.mark.hub
NOTEBOOK = f"{ASSIGNMENT}/{ASSIGNMENT}.ipynb"


def course_notebooks(server) -> tuple[dict, dict]:
    """01 as students get it and the instructor's version, from the instructor's course."""
    return (json.loads((server.course / "notebooks" / NOTEBOOK).read_text()),
            json.loads((server.course / "solutions" / NOTEBOOK).read_text()))


def partly_wrong(student_nb: dict, instructor_nb: dict) -> tuple[dict, str]:
    """01 with every answer right but one, a plausible wrong one from grader/answer_sets/mutants; and that cell's id."""
    mutant = next(m for m in load(ASSIGNMENT) if m.name == "down block with average pooling")
    nb = solved(student_nb, instructor_nb)
    right = next(c for c in instructor_nb["cells"] if nbgrader(c).get("grade_id") == mutant.cell)
    for cell in nb["cells"]:
        if nbgrader(cell).get("grade_id") == mutant.cell:
            cell["source"] = without_solution_markers(apply(mutant, source(right)))
    return nb, mutant.cell


def put_answers(server, student: str, nb: dict) -> None:
    """The student's answers in their fetched copy, owned by them (what typing and saving leaves)."""
    path = server.home(student) / NOTEBOOK
    path.write_text(json.dumps(nb, indent=1))
    shutil.chown(path, user=student, group=student)


def release(page, server) -> None:
    formgrader = open_formgrader(page)
    text = press_for_assignment(page, formgrader, "release", "released-01")
    expect(formgrader.locator("tbody tr", has_text=ASSIGNMENT).locator("td.status")).to_have_text(re.compile("released"))
    assert (server.exchange / "outbound" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").is_file(), text


def student_works(page, server, student: str, answers: dict, passes: bool) -> None:
    """Log in, see no Formgrader, fetch 01, put the answers in, validate, submit."""
    log_in(page, server.url, student, server.password)
    entries = nbgrader_menu(page)
    assert "Assignment List" in entries and not any(e.startswith("Formgrader") for e in entries), entries
    assert page.request.get(f"{server.url}/user/{student}/formgrader").status == 404
    page.steps.shot("logged-in-no-formgrader")
    listed = assignment_list(page)
    listed.locator(".list_item", has_text=ASSIGNMENT).get_by_role("button", name="Fetch").click()
    fetched = page.locator("#fetched_assignments_list > .list_item", has_text=ASSIGNMENT)
    expect(fetched.get_by_role("button", name="Submit")).to_be_visible()
    page.steps.shot("fetched")
    put_answers(server, student, answers)
    notebook = Notebook(page, UserLab(server.url, student, server.home(student)), NOTEBOOK)
    results = notebook.validate()
    page.steps.shot("validated")
    expect(results).to_have_class(re.compile(r"\bvalidation-success\b" if passes else r"\bvalidation-failed\b"))
    notebook.close_dialog()
    listed = assignment_list(page)
    page.locator("#fetched_assignments_list > .list_item", has_text=ASSIGNMENT).get_by_role("button", name="Submit").click()
    expect(page.locator("#submitted_assignments_list > .list_item", has_text=ASSIGNMENT)).to_be_visible()
    page.steps.shot("submitted")


def autograde(server) -> str:
    """`make autograde` for 01, typed by the instructor in their course (their login, their terminal's
    environment: the class environment's commands and the data folder)."""
    command = ["runuser", "-u", server.instructor, "--", "env", "-i", f"HOME={server.home(server.instructor)}",
               f"PATH={server.prefix / 'env' / 'bin'}:/usr/bin:/bin", f"VENV={server.prefix / 'env'}",
               f"COURSE_DATA_DIR={server.data}", "LANG=C.UTF-8",
               "make", "--no-print-directory", "autograde", f"ASSIGNMENTS={ASSIGNMENT}", "GRADE_ARGS=--no-progress"]
    done = subprocess.run(command, cwd=server.course, capture_output=True, text=True, timeout=1800)
    logs = "".join(f"\n{log}:\n{log.read_text(errors='replace')[-3000:]}"
                   for log in sorted((server.course / "logs" / "autograde" / ASSIGNMENT).glob("*.log")))
    assert done.returncode == 0, f"make autograde failed:\n{done.stdout}\n{done.stderr}{logs}"
    return done.stdout


def check_isolation(server, page, student: str, other: str, feedback_released: bool = False) -> None:
    """``student`` cannot list the exchange's submissions or feedback, nor open ``other``'s home or the
    instructor's course, on disk; in the browser, the hub refuses them ``other``'s server."""
    course, inbound = server.course, server.exchange / "inbound"
    denied = [inbound, server.home(other), server.home(other) / NOTEBOOK, course, course / "solutions" / NOTEBOOK,
              course / "gradebook.db"] + ([server.exchange / "feedback"] if feedback_released else [])
    seen = what_user_can_open(student, denied + [server.exchange / "outbound" / ASSIGNMENT])
    assert all(seen[str(p)] == "denied" for p in denied), seen
    assert f"{ASSIGNMENT}.ipynb" in seen[str(server.exchange / "outbound" / ASSIGNMENT)], seen  # released: open
    for path in (f"/user/{other}/api/contents/{NOTEBOOK}", f"/user/{server.instructor}/api/contents/solutions"):
        reply = page.request.get(server.url + path, max_redirects=0)
        assert reply.status in (302, 403, 404), (path, reply.status)
        assert ASSIGNMENT not in reply.text() or reply.status != 200
    reply = page.goto(f"{server.url}/user/{other}/lab")
    assert reply.status == 403 or f"/user/{student}/" in page.url, (reply.status, page.url)
    page.steps.shot(f"refused-{other}")


def feedback_of(page, server, student: str) -> str:
    """Fetch Feedback in the student's Assignment List; the page they got, also opened in the browser."""
    page.goto(f"{server.url}/user/{student}/lab")  # back from the other student's refused address
    expect(page.locator(".lm-MenuBar-itemLabel", has_text="Nbgrader")).to_be_visible()
    assignment_list(page)
    handed_in = page.locator("#submitted_assignments_list > .list_item", has_text=ASSIGNMENT)
    handed_in.get_by_role("button", name="Fetch Feedback").click()
    expect(handed_in.get_by_text("(view feedback)")).to_be_visible()
    page.steps.shot("fetched-feedback")
    pages = list((server.home(student) / ASSIGNMENT / "feedback").rglob(f"{ASSIGNMENT}.html"))
    assert len(pages) == 1, pages
    relative = pages[0].relative_to(server.home(student))
    page.goto(f"{server.url}/user/{student}/files/{relative}")
    expect(page.get_by_text(re.compile(r"Score: [\d.]+ / [\d.]+")).first).to_be_visible()
    page.steps.shot("feedback-page")
    return pages[0].read_text()


def score_on(page_html: str) -> tuple[float, float]:
    found = re.search(r"Score: ([\d.]+) / ([\d.]+)", page_html)
    assert found, "the feedback page shows no score"
    return float(found[1]), float(found[2])


def test_a_class_on_jupyterhub(class_server, tabs, artifacts):
    server, timings, began = class_server, class_server.timings, time.monotonic()
    alice, bob = server.students
    student_nb, instructor_nb = course_notebooks(server)
    autograded, total = points(student_nb, check_cells(student_nb)), points(student_nb, graded_cells(student_nb))
    wrong_nb, _ = partly_wrong(student_nb, instructor_nb)

    teacher = tabs(server.instructor)
    log_in(teacher, server.url, server.instructor, server.password)
    assert any(e.startswith("Formgrader") for e in nbgrader_menu(teacher))
    release(teacher, server)
    timings["instructor logs in and releases 01"] = time.monotonic() - began

    pages = {alice: tabs(alice), bob: tabs(bob)}
    for student, answers, passes in ((alice, solved(student_nb, instructor_nb), True), (bob, wrong_nb, False)):
        step = time.monotonic()
        student_works(pages[student], server, student, answers, passes)
        timings[f"{student} logs in, fetches, validates, submits"] = time.monotonic() - step
    check_isolation(server, pages[bob], bob, alice)
    check_isolation(server, pages[alice], alice, bob)

    step = time.monotonic()
    teacher.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="Formgrader").click()
    formgrader = teacher.frame_locator(".jp-MainAreaWidget iframe")
    assert "collected" in press_for_assignment(teacher, formgrader, "collect", "collected")
    graded = autograde(server)
    assert re.search(r"\b2 graded, 0 failed\b", graded), graded
    timings["instructor collects and runs make autograde"] = time.monotonic() - step
    teacher.reload()
    formgrader = open_formgrader(teacher)
    scores = submission_scores(teacher, formgrader, [alice, bob])
    assert scores[alice] == (autograded, total), scores
    assert scores[bob][0] < autograded and scores[bob][1] == total, scores
    formgrader.get_by_role("link", name="Manage Assignments").click()
    for button in ("generate-feedback", "release-feedback"):
        text = press_for_assignment(teacher, formgrader, button, button)
        assert "error" not in text.lower(), text

    step = time.monotonic()
    spec = load_spec(server.course, ASSIGNMENT)
    for student, full in ((alice, True), (bob, False)):
        page_html = feedback_of(pages[student], server, student)
        got, out_of = score_on(page_html)
        assert out_of == autograded and (got == autograded) == full, (student, got, out_of)
        assert got == scores[student][0], (student, got, scores)  # the Formgrader's score, the page's
        assert_no_hidden_test(page_html, spec, student_nb)
    check_isolation(server, pages[bob], bob, alice, feedback_released=True)
    timings["students fetch their feedback"] = time.monotonic() - step
    timings["whole class, in the browser"] = time.monotonic() - began
    timings["make hub, to a usable login"] = server.startup_s

    # `make hub-stop`: the hub and every server stop; the students' work and the course stay.
    stopped = make("hub-stop", server.prefix)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stdout + stopped.stderr
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{server.url}/hub/login", timeout=10)
    for path in (server.home(alice) / NOTEBOOK, server.course / "gradebook.db",
                 server.course / "submitted" / bob / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"):
        assert path.is_file(), f"{path} is gone after make hub-stop"
    (artifacts / "timings.json").write_text(json.dumps({k: round(v, 1) for k, v in timings.items()}, indent=1))
