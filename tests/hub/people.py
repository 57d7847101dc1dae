"""What the people of a class do on the class server, in the browser: log in, open the Formgrader or the
Assignment List, press their buttons; and what one login can open on the machine's file system."""
from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from browser.ui import RUN_TIMEOUT_MS, UI_TIMEOUT_MS

ASSIGNMENT = "01_UNets"


def exact(text: str) -> re.Pattern:
    return re.compile(rf"^\s*{re.escape(text)}\s*$")


@dataclass
class UserLab:
    """A user's JupyterLab behind the hub, shaped like the browser tests' server for their helpers:
    ``course`` is the folder the server opens, ``lab_url`` the address of a file in it."""
    hub: str
    name: str
    course: Path

    @property
    def url(self) -> str:
        return f"{self.hub}/user/{self.name}"

    def lab_url(self, path: str = "") -> str:
        return f"{self.url}/lab{f'/tree/{path}' if path else ''}?reset"


def log_in(page: Page, hub: str, name: str, password: str) -> None:
    """Log in on the hub's page and wait until the user's own JupyterLab has opened (the hub starts it)."""
    page.goto(f"{hub}/hub/login")
    page.locator("#username_input").fill(name)
    page.locator("#password_input").fill(password)
    page.locator("#login_submit").click()
    page.wait_for_url(re.compile(rf"/user/{re.escape(name)}/lab"), timeout=RUN_TIMEOUT_MS)
    expect(page.locator(".lm-MenuBar-itemLabel", has_text=exact("Nbgrader"))).to_be_visible(timeout=UI_TIMEOUT_MS)


def open_menu(page: Page, top: str) -> None:
    """Open menu ``top`` of JupyterLab's menu bar; a click that only focused the bar is repeated."""
    entries = page.locator(".lm-Menu .lm-Menu-item")
    for _ in range(3):
        page.locator(".lm-MenuBar-itemLabel").filter(has_text=exact(top)).click()
        try:
            entries.first.wait_for(state="visible", timeout=15_000)
            return
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    expect(entries.first).to_be_visible()


def menu(page: Page, top: str, item: str) -> None:
    """Click menu ``top``, then its entry whose label starts with ``item``."""
    open_menu(page, top)
    page.locator(".lm-Menu-item:not(.lm-mod-disabled) .lm-Menu-itemLabel").filter(
        has_text=re.compile(rf"^{re.escape(item)}")).first.click()


def nbgrader_menu(page: Page) -> list[str]:
    """The entries of JupyterLab's Nbgrader menu (the menu is closed again)."""
    open_menu(page, "Nbgrader")
    labels = [label.strip() for label in page.locator(".lm-Menu .lm-Menu-item .lm-Menu-itemLabel").all_inner_texts()]
    page.keyboard.press("Escape")
    expect(page.locator(".lm-Menu")).to_have_count(0)
    return labels


def close_modal(formgrader) -> None:
    formgrader.locator(".modal.in .modal-footer button", has_text="OK").click()
    expect(formgrader.locator(".modal.in")).to_have_count(0)


def open_formgrader(page: Page):
    """The Formgrader's frame, opened from the Nbgrader menu, on Manage Assignments."""
    menu(page, "Nbgrader", "Formgrader")
    return page.frame_locator(".jp-MainAreaWidget iframe")


def assignment_row(formgrader):
    return formgrader.locator("tbody tr", has=formgrader.locator("td.name", has_text=exact(ASSIGNMENT)))


def press_for_assignment(page: Page, formgrader, button: str, shot: str) -> str:
    """Press a button of 01's row in Manage Assignments (td.release, td.collect, td.generate-feedback,
    td.release-feedback); wait for nbgrader's dialog and return its text."""
    assignment_row(formgrader).locator(f"td.{button} a").click()
    dialog = formgrader.locator(".modal.in")
    expect(dialog.locator(".modal-title")).to_be_visible(timeout=RUN_TIMEOUT_MS)
    page.steps.shot(shot)
    text = dialog.inner_text()
    close_modal(formgrader)
    return text


def assignment_list(page: Page):
    menu(page, "Nbgrader", "Assignment List")
    return page.locator("#released_assignments_list, #fetched_assignments_list, #submitted_assignments_list")


def submission_scores(page: Page, formgrader, students: list[str]) -> dict[str, tuple[float, float]]:
    """Each student's score in the Formgrader's list of 01's submissions: (score, out of)."""
    assignment_row(formgrader).locator("td.num-submissions a").click()
    scores = {}
    for student in students:
        row = formgrader.locator("#main-table tr", has=formgrader.locator("td.student-id", has_text=exact(student)))
        expect(row.locator("td.score")).to_contain_text("/")
        scores[student] = tuple(float(x) for x in re.findall(r"[\d.]+", row.locator("td.score").text_content()))
    page.steps.shot("submissions-scored")
    return scores


PROBE = """
import json, os, sys
seen = {}
for path in sys.argv[1:]:
    try:
        seen[path] = sorted(os.listdir(path)) if os.path.isdir(path) else len(open(path, "rb").read())
    except PermissionError:
        seen[path] = "denied"
    except FileNotFoundError:
        seen[path] = "missing"
print(json.dumps(seen))
"""


def what_user_can_open(user: str, paths: list[Path]) -> dict[str, object]:
    """For each path, what ``user`` gets when they list (a folder) or read (a file) it: the listing, the
    file's size, "denied" or "missing"."""
    done = subprocess.run(["runuser", "-u", user, "--", "/usr/bin/python3", "-c", PROBE, *map(str, paths)],
                          capture_output=True, text=True, cwd="/", check=True)
    return json.loads(done.stdout)
