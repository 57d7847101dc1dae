"""The exchange round trip on one machine, all in the browser: the instructor releases 01 in the
Formgrader, the student fetches and submits it from the Assignment List, the instructor collects
and autogrades it, and the Formgrader shows full marks."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from playwright.sync_api import expect

from .ui import RUN_TIMEOUT_MS, check_cells, graded_cells, menu, open_lab, points, solved

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
    submission.locator("td.autograde a").click()
    dialog = formgrader.locator(".modal.in")
    expect(dialog.locator(".modal-title")).to_be_visible(timeout=RUN_TIMEOUT_MS)  # nbgrader has finished
    page.steps.shot("instructor-autograded")
    assert dialog.locator(".modal-title").inner_text().strip() == "Success", dialog.inner_text()
    close_modal(formgrader)
    scored = submission.locator("td.score")
    expect(scored).to_contain_text("/")
    page.steps.shot("instructor-sees-score")
    score, out_of = (float(x) for x in re.findall(r"[\d.]+", scored.text_content()))
    assert (score, out_of) == (autograded, total), \
        f"autograde gave {score} / {out_of}, expected {autograded} / {total}"
