"""The exchange round trip on one machine, all in the browser: the instructor releases 01 in the
Formgrader, the student fetches and submits it from the Assignment List, the instructor collects
and autogrades it, the Formgrader shows full marks, and its Generate Feedback and Release Feedback
buttons hand the student the course's feedback page (no hidden test in it), which the student fetches.

Every Formgrader button that grades or gives feedback runs the course's grader (nbgrader_config.py,
grader/nbgrader_hooks.py): a second test presses Autograde on a submission that reaches for the
grader, which nbgrader's own autograde would score 7 / 7, and sees it flagged and scored 0."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from playwright.sync_api import expect

from conftest import ROOT
from grader.grade_one import load_spec
from page_checks import TAMPER, assert_no_hidden_test

from .ui import RUN_TIMEOUT_MS, check_cells, graded_cells, menu, nbgrader, open_lab, points, solved

pytestmark = pytest.mark.browser
ASSIGNMENT = "01_UNets"


def exact(text: str) -> re.Pattern:
    return re.compile(rf"^\s*{re.escape(text)}\s*$")


def make_release(lab) -> None:
    """What the README tells the instructor to run first: `make release` (records it in the gradebook)."""
    venv = sys.prefix
    result = subprocess.run(["make", "--no-print-directory", "release", f"ASSIGNMENTS={ASSIGNMENT}",
                             f"VENV={venv}", "-o", f"{venv}/.installed"],
                            cwd=lab.course, env=lab.env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"make release failed:\n{result.stdout}\n{result.stderr}"


def close_modal(formgrader) -> None:
    formgrader.locator(".modal.in .modal-footer button", has_text="OK").click()
    expect(formgrader.locator(".modal.in")).to_have_count(0)


def press(page, formgrader, submission, button: str, shot: str) -> str:
    """Press one of a submission's Formgrader buttons (td.autograde, td.generate-feedback,
    td.release-feedback), wait for nbgrader's dialog, check it says Success; return its text (the log)."""
    submission.locator(f"td.{button} a").click()
    dialog = formgrader.locator(".modal.in")
    expect(dialog.locator(".modal-title")).to_be_visible(timeout=RUN_TIMEOUT_MS)  # nbgrader has finished
    page.steps.shot(shot)
    text = dialog.inner_text()
    assert dialog.locator(".modal-title").inner_text().strip() == "Success", text
    close_modal(formgrader)
    return text


def score_of(submission) -> tuple[float, float]:
    scored = submission.locator("td.score")
    expect(scored).to_contain_text("/")
    score, out_of = (float(x) for x in re.findall(r"[\d.]+", scored.text_content()))
    return score, out_of


def open_submissions(page, formgrader):
    """The Formgrader's list of 01's submissions (Manage Assignments, the number of submissions)."""
    row = formgrader.locator("tbody tr", has=formgrader.locator("td.name", has_text=exact(ASSIGNMENT)))
    row.locator("td.num-submissions a").click()
    expect(formgrader.locator("#main-table tr").first).to_be_visible()


def submission_row(formgrader, student: str):
    return formgrader.locator("#main-table tr", has=formgrader.locator("td.student-id", has_text=exact(student)))


def test_release_fetch_submit_collect_autograde(page, lab):
    make_release(lab)
    student_nb = json.loads((lab.course / "notebooks" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text())
    instructor_nb = json.loads((lab.course / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text())
    # Autograding gives the checks' points; the written answers wait for the instructor's hand.
    autograded, total = points(student_nb, check_cells(student_nb)), points(student_nb, graded_cells(student_nb))
    assert 0 < autograded <= total

    # Instructor: release.
    open_lab(page, lab)
    menu(page, "Nbgrader", "Formgrader")
    formgrader = page.frame_locator(".jp-MainAreaWidget iframe")
    row = formgrader.locator("tbody tr", has=formgrader.locator("td.name", has_text=exact(ASSIGNMENT)))
    row.locator("td.release a").click()
    expect(row.locator("td.status")).to_have_text(exact("released"))
    page.steps.shot("instructor-released")
    close_modal(formgrader)

    # Student: fetch, (work), submit.
    menu(page, "Nbgrader", "Assignment List")
    released = page.locator("#released_assignments_list .list_item", has_text=ASSIGNMENT)
    released.get_by_role("button", name="Fetch").click()
    fetched = page.locator("#fetched_assignments_list > .list_item", has_text=ASSIGNMENT)
    expect(fetched.get_by_role("button", name="Submit")).to_be_visible()
    page.steps.shot("student-fetched")
    copy = lab.course / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"   # fetched next to the course's folders
    assert json.loads(copy.read_text()) == student_nb, "the fetched notebook is not the released one"
    # The student's work (typing answers is tested in test_student.py): the instructor's answers.
    copy.write_text(json.dumps(solved(student_nb, instructor_nb), indent=1))
    fetched.get_by_role("button", name="Submit").click()
    expect(page.locator("#submitted_assignments_list > .list_item", has_text=ASSIGNMENT)).to_be_visible()
    page.steps.shot("student-submitted")

    # Instructor: collect, autograde, read the score.
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="Formgrader").click()
    row.locator("td.collect a").click()
    expect(formgrader.locator(".modal.in")).to_contain_text("collected")
    close_modal(formgrader)
    page.steps.shot("instructor-collected")
    row.locator("td.num-submissions a").click()
    submission = formgrader.locator("#main-table tr").first
    expect(submission.locator("td.student-id")).not_to_be_empty()
    student = submission.locator("td.student-id").inner_text().strip()
    log = press(page, formgrader, submission, "autograde", "instructor-autograded")
    assert "the course's grader says" in log, f"Autograde did not run the course's grader:\n{log}"
    page.steps.shot("instructor-sees-score")
    assert score_of(submission) == (autograded, total), \
        f"autograde gave {score_of(submission)}, expected {autograded} / {total}"

    # Instructor: feedback, then its release; the page is the course's, without the hidden tests.
    press(page, formgrader, submission, "generate-feedback", "instructor-generated-feedback")
    page_html = (lab.course / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert f"Score: {autograded:g} / {autograded:g}" in page_html
    assert_no_hidden_test(page_html, load_spec(ROOT, ASSIGNMENT), student_nb)
    press(page, formgrader, submission, "release-feedback", "instructor-released-feedback")

    # Student: fetch the feedback; it is the page the course wrote.
    menu(page, "Nbgrader", "Assignment List")
    handed_in = page.locator("#submitted_assignments_list > .list_item", has_text=ASSIGNMENT)
    handed_in.get_by_role("button", name="Fetch Feedback").click()
    expect(handed_in.get_by_text("(view feedback)")).to_be_visible()
    page.steps.shot("student-fetched-feedback")
    fetched_pages = list((lab.course / ASSIGNMENT / "feedback").rglob(f"{ASSIGNMENT}.html"))
    assert [p.read_text() for p in fetched_pages] == [page_html], fetched_pages


def test_formgrader_autograde_runs_the_course_grader(page, lab):
    """A submission copied to submitted/ (right answers that replace builtins.abs, which the checks
    use): the Formgrader's Autograde flags it and scores it 0, as `make autograde` does."""
    make_release(lab)
    student_nb = json.loads((lab.course / "notebooks" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text())
    instructor_nb = json.loads((lab.course / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text())
    tampered = solved(student_nb, instructor_nb)
    for cell in tampered["cells"]:
        if nbgrader(cell).get("grade_id") == "down_block":
            cell["source"] = "".join(cell["source"]) + TAMPER
    folder = lab.course / "submitted" / "mallory" / ASSIGNMENT
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{ASSIGNMENT}.ipynb").write_text(json.dumps(tampered, indent=1))
    (folder / "timestamp.txt").write_text("2026-12-01 10:00:00.000000 UTC")

    open_lab(page, lab)
    menu(page, "Nbgrader", "Formgrader")
    formgrader = page.frame_locator(".jp-MainAreaWidget iframe")
    open_submissions(page, formgrader)
    submission = submission_row(formgrader, "mallory")
    log = press(page, formgrader, submission, "autograde", "instructor-autograded-tampered")
    assert "the course's grader says" in log and "tampering" in log, log
    total = points(student_nb, graded_cells(student_nb))
    assert score_of(submission) == (0, total), f"a submission that reaches for the grader scored {score_of(submission)}"
    page.steps.shot("instructor-sees-tampered-score")

    # `make autograde` knows this grading as its own: the same submission, unchanged, is skipped.
    venv = sys.prefix
    again = subprocess.run(["make", "--no-print-directory", "autograde", f"ASSIGNMENTS={ASSIGNMENT}", f"VENV={venv}",
                            "-o", f"{venv}/.installed", "GRADE_ARGS=--student mallory --no-progress"],
                           cwd=lab.course, env=lab.env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "1 unchanged and skipped" in again.stdout, again.stdout + again.stderr
