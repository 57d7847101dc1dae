"""What a student or instructor does in JupyterLab, as small steps: open, type, run, validate.

Cells are found by their position in the notebook file (the page shows them in the same order) and
read through their text content, which is there even for cells scrolled out of view; steps wait for
the output itself (the kernel can show idle while a widget's callback still runs).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from playwright.sync_api import Locator, Page, expect

# Generous limits for a busy 2-core machine: each is a wait for the thing itself, never a sleep.
UI_TIMEOUT_MS = 120_000      # a page, a menu, a dialog to appear
RUN_TIMEOUT_MS = 420_000     # a notebook (or nbgrader's validate or autograde of one) to finish
FAST_KERNEL = "course-fast"  # a kernel whose environment sets COURSE_PROFILE=fast (conftest's `lab`)


def nbgrader(cell: dict) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def answer_cells(nb: dict, cell_type: str | None = None) -> list[int]:
    """Indices of the cells a student fills in: code answers and written (markdown) answers, or only
    those of ``cell_type``."""
    return [i for i, c in enumerate(nb["cells"])
            if nbgrader(c).get("solution") and cell_type in (None, c["cell_type"])]


def check_cells(nb: dict) -> list[int]:
    """Indices of the graded check cells (the visible tests under the answers): autograded."""
    return [i for i, c in enumerate(nb["cells"]) if nbgrader(c).get("grade") and c["cell_type"] == "code"]


def graded_cells(nb: dict) -> list[int]:
    """Indices of every cell that carries points: the checks and the written answers graded by hand."""
    return [i for i, c in enumerate(nb["cells"]) if nbgrader(c).get("grade")]


def points(nb: dict, cells: list[int]) -> float:
    return sum(nbgrader(nb["cells"][i])["points"] for i in cells)


def source(cell: dict) -> str:
    return "".join(cell["source"])


def code_cells(nb: dict) -> list[int]:
    return [i for i, cell in enumerate(nb["cells"]) if cell["cell_type"] == "code"]


def first_code_cell(nb: dict, containing: str) -> int:
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code" and containing in source(cell):
            return i
    raise AssertionError(f"no code cell contains {containing!r}")


def success_message(cell: dict) -> str:
    """What a check cell prints when every check passes (its last plain ``print("...")``)."""
    printed = re.findall(r"""print\(\s*(["'])(.+?)\1\s*\)""", source(cell))
    assert printed, f"check cell prints no success message:\n{source(cell)}"
    return printed[-1][1]


def without_solution_markers(text: str) -> str:
    """The instructor's answer as a student would type it: the BEGIN/END SOLUTION lines removed."""
    return "".join(line for line in text.splitlines(keepends=True)
                   if not re.match(r"\s*### (BEGIN|END) SOLUTION\s*$", line))


def solved(student_nb: dict, solution_nb: dict) -> dict:
    """The student notebook with every answer cell holding the instructor's answer."""
    answers = {nbgrader(c)["grade_id"]: source(c) for c in solution_nb["cells"] if nbgrader(c).get("solution")}
    nb = json.loads(json.dumps(student_nb))
    for cell in nb["cells"]:
        if nbgrader(cell).get("solution"):
            cell["source"] = without_solution_markers(answers[nbgrader(cell)["grade_id"]])
    return nb


def open_lab(page: Page, lab, path: str = "") -> None:
    """Open JupyterLab (on ``path`` if given) with a fresh workspace: no earlier tab reopens."""
    page.goto(lab.lab_url(path))
    expect(page.locator(".jp-DirListing-item").first).to_be_visible(timeout=UI_TIMEOUT_MS)


def menu(page: Page, top: str, item: str) -> None:
    """Click menu ``top`` in the menu bar, then its entry whose label starts with ``item``."""
    page.locator(".lm-MenuBar-itemLabel").filter(has_text=re.compile(rf"^{re.escape(top)}$")).click()
    entry = page.locator(".lm-Menu-item:not(.lm-mod-disabled) .lm-Menu-itemLabel")
    entry.filter(has_text=re.compile(rf"^{re.escape(item)}")).first.click()


class Notebook:
    """A notebook open in JupyterLab, with the stored file it was opened from."""

    def __init__(self, page: Page, lab, path: str):
        self.page, self.lab, self.path = page, lab, path
        self.nb = json.loads((Path(lab.course) / path).read_text())
        open_lab(page, lab, path)
        self.cells = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell")
        expect(self.cells).to_have_count(len(self.nb["cells"]), timeout=UI_TIMEOUT_MS)
        self.wait_idle()

    def wait_idle(self) -> None:
        indicator = self.page.locator(".jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator")
        expect(indicator).to_have_attribute("data-status", "idle", timeout=RUN_TIMEOUT_MS)

    def cell(self, index: int) -> Locator:
        return self.cells.nth(index)

    def output(self, index: int) -> Locator:
        return self.cell(index).locator(".jp-Cell-outputArea")

    def type_into(self, index: int, text: str) -> None:
        """Replace the cell's text by typing ``text`` into its editor (as a paste: no auto-indent)."""
        cell = self.cell(index)
        cell.scroll_into_view_if_needed()
        if "jp-MarkdownCell" in (cell.get_attribute("class") or "") and not cell.locator(".cm-content").is_visible():
            cell.locator(".jp-MarkdownOutput").dblclick()   # a rendered markdown cell opens its editor
        cell.locator(".cm-content").click()
        self.page.keyboard.press("ControlOrMeta+a")
        self.page.keyboard.insert_text(text)
        first_line = text.strip().splitlines()[0]
        expect(cell.locator(".cm-content")).to_contain_text(first_line)
        self.page.keyboard.press("Escape")

    def run_all(self) -> None:
        """Clear every output (so nothing old is read as new), then run all cells."""
        menu(self.page, "Edit", "Clear Outputs of All Cells")
        expect(self.page.locator(".jp-NotebookPanel .jp-OutputArea-output")).to_have_count(0)
        menu(self.page, "Run", "Run All Cells")

    def restart_and_run_all(self) -> None:
        menu(self.page, "Kernel", "Restart Kernel and Run All Cells")
        self.page.locator(".jp-Dialog .jp-mod-accept").click()

    def run_cell(self, index: int) -> None:
        cell = self.cell(index)
        cell.scroll_into_view_if_needed()
        cell.locator(".jp-InputArea-prompt").click()  # select the cell in command mode
        self.page.keyboard.press("Shift+Enter")

    def expect_output(self, index: int, text: str | re.Pattern, timeout: int = RUN_TIMEOUT_MS) -> Locator:
        """Wait until cell ``index`` shows ``text`` in its output; fail at once if a cell shows an error
        without it (the run stopped there)."""
        output = self.output(index)
        wanted = output.filter(has_text=text)
        failed = self.page.locator(".jp-NotebookPanel .jp-Cell-outputArea",
                                   has_text="Traceback (most recent call last)")
        expect(wanted.or_(failed)).not_to_have_count(0, timeout=timeout)
        if not wanted.count():
            raise AssertionError(f"waiting for {text!r} in cell {index}, a cell failed:\n"
                                 f"{failed.first.text_content()[-3000:]}")
        return output

    def expect_finished(self, index: int) -> None:
        """Wait until cell ``index`` has run (its prompt shows an execution count, not ``*``); fail
        at once, with the error, if a cell stops the run."""
        done = self.cell(index).locator(".jp-InputArea-prompt").filter(has_text=re.compile(r"\[\d+\]"))
        failed = self.page.locator(".jp-NotebookPanel .jp-Cell-outputArea",
                                   has_text="Traceback (most recent call last)")
        expect(done.or_(failed)).not_to_have_count(0, timeout=RUN_TIMEOUT_MS)
        if failed.count():
            raise AssertionError(f"a cell failed:\n{failed.first.text_content()[-3000:]}")

    def validate(self) -> Locator:
        """Press nbgrader's Validate button; return the results dialog once it shows."""
        toolbar = self.page.locator(".jp-NotebookPanel-toolbar")
        toolbar.get_by_role("button", name="Validate").click()
        results = self.page.locator(".jp-Dialog #validation-message")
        expect(results).to_be_visible(timeout=RUN_TIMEOUT_MS)
        return results

    def close_dialog(self) -> None:
        self.page.locator(".jp-Dialog .jp-mod-accept, .jp-Dialog .jp-Dialog-button").first.click()
        expect(self.page.locator(".jp-Dialog")).to_have_count(0)
