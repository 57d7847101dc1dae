"""The course as JupyterLab shows it: the notebooks where the README says, nbgrader's extensions in
the page (menu, side panel, Validate button) and the instructor's Formgrader listing the assignments."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .ui import menu, open_lab

pytestmark = pytest.mark.browser


def released_ids(lab) -> list[str]:
    """Assignments released to students: notebooks/<id>/<id>.ipynb present in the course."""
    return sorted(p.parent.name for p in (lab.course / "notebooks").glob("*/*.ipynb") if p.stem == p.parent.name)


def listed(page, name: str):
    """The file browser's entry called ``name``."""
    return page.locator(".jp-DirListing-item", has=page.locator(
        ".jp-DirListing-itemText", has_text=re.compile(rf"^{re.escape(name)}$")))


def open_folder(page, name: str) -> None:
    listed(page, name).dblclick()
    expect(page.locator(".jp-BreadCrumbs")).to_contain_text(name)


def test_course_opens_with_notebooks_and_nbgrader(page, lab):
    readme = (lab.course / "README.md").read_text()
    assert "notebooks/<id>/<id>.ipynb" in readme, "the README no longer says where the student notebooks are"
    ids = released_ids(lab)
    assert "01_UNets" in ids

    open_lab(page, lab)
    expect(listed(page, "notebooks")).to_be_visible()
    page.steps.shot("course-opened")

    open_folder(page, "notebooks")
    for assignment in ids:
        expect(listed(page, assignment)).to_be_visible()
    page.steps.shot("notebooks-folder")
    open_folder(page, "01_UNets")
    expect(listed(page, "01_UNets.ipynb")).to_be_visible()

    # nbgrader's menu: the student's Assignment List and Course List, the instructor's Formgrader.
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Nbgrader$")).click()
    for entry in ("Assignment List", "Course List", "Formgrader"):
        expect(page.locator(".lm-Menu .lm-Menu-itemLabel", has_text=re.compile(rf"^{entry}$"))).to_be_visible()
    page.steps.shot("nbgrader-menu")
    page.keyboard.press("Escape")

    # The Create Assignment panel (instructors) and the Validate button (students) of an open notebook.
    listed(page, "01_UNets.ipynb").dblclick()
    toolbar = page.locator(".jp-NotebookPanel-toolbar")
    expect(toolbar.get_by_role("button", name="Validate")).to_be_visible()
    page.locator(".jp-SideBar.jp-mod-right .lm-TabBar-tab", has_text="Create Assignment").click()
    expect(page.locator(".jp-SideBar.jp-mod-right .lm-TabBar-tab.lm-mod-current",
                        has_text="Create Assignment")).to_be_visible()
    page.steps.shot("validate-button-and-create-assignment-panel")


def test_formgrader_lists_the_released_assignments(page, lab):
    open_lab(page, lab)
    menu(page, "Nbgrader", "Formgrader")
    formgrader = page.frame_locator(".jp-MainAreaWidget iframe")
    names = formgrader.locator("td.name")
    for assignment in released_ids(lab):
        expect(names.filter(has_text=re.compile(rf"^{assignment}$"))).to_be_visible()
    # No warning that the exchange is missing or the course has no id: release and collect work.
    expect(formgrader.locator(".alert-warning")).to_have_count(0)
    page.steps.shot("formgrader-assignments")
