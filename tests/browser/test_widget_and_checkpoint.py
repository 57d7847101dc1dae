"""Notebook 01 beyond the checks: its interactive explorer is a live widget, and its trained model
survives a kernel restart (the training cell loads the checkpoint instead of training again)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from .ui import FAST_KERNEL, RUN_TIMEOUT_MS, Notebook, code_cells, first_code_cell, solved

pytestmark = pytest.mark.browser
ASSIGNMENT = "01_UNets"
# What utils.training.History.summary() prints for a run it loaded instead of training.
LOADED = "loaded from checkpoint"


def stored(lab, folder: str) -> dict:
    return json.loads((lab.course / folder / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text())


def test_widget_renders_and_redraws(page, lab):
    student = stored(lab, "notebooks")
    path = lab.write_notebook(f"student-widget/{ASSIGNMENT}.ipynb", student)
    setup, explorer = code_cells(student)[0], first_code_cell(student, "interact(")
    notebook = Notebook(page, lab, path)
    notebook.run_cell(setup)
    notebook.run_cell(explorer)

    output = notebook.output(explorer)
    sliders = output.locator(".widget-slider")
    expect(sliders.first).to_be_visible(timeout=RUN_TIMEOUT_MS)
    expect(output).not_to_contain_text("IntSlider(")  # a widget shown as text: the extension is missing
    picture = output.locator(".jupyter-widgets img").first
    expect(picture).to_be_visible(timeout=RUN_TIMEOUT_MS)
    before, printed = picture.get_attribute("src"), output.text_content()
    value = sliders.first.locator(".widget-readout")
    start = value.inner_text()
    picture.evaluate("image => image.decode()")
    page.steps.shot("widget-rendered", output)

    sliders.first.locator(".noUi-handle").focus()
    page.keyboard.press("ArrowRight")
    expect(value).not_to_have_text(start)
    expect(picture).not_to_have_attribute("src", before, timeout=RUN_TIMEOUT_MS)  # redrawn by the kernel
    expect(output).not_to_have_text(printed)                                    # and its text too
    notebook.wait_idle()
    picture.evaluate("image => image.decode()")  # painted, not half-way, in the screenshot
    page.steps.shot("slider-moved-picture-redrawn", output)


def test_training_cell_loads_the_checkpoint_after_a_restart(page, lab):
    """The fast profile (the grade profile keeps no checkpoint) on the 256 test images: 8 training steps."""
    nb = solved(stored(lab, "notebooks"), stored(lab, "solutions"))
    nb["metadata"]["kernelspec"] = {"name": FAST_KERNEL, "display_name": "Python 3 (fast profile)",
                                    "language": "python"}
    path = lab.write_notebook(f"student-restart/{ASSIGNMENT}.ipynb", nb)
    training = first_code_cell(nb, "checkpoint=")
    last = code_cells(nb)[-1]
    checkpoints = Path(lab.env["COURSE_CHECKPOINT_DIR"])

    notebook = Notebook(page, lab, path)
    expect(page.locator(".jp-NotebookPanel-toolbar")).to_contain_text("fast profile")
    notebook.run_all()
    notebook.expect_finished(last)
    expect(notebook.output(training)).not_to_contain_text(LOADED)
    saved = {p.name: p.stat().st_mtime_ns for p in checkpoints.glob("*.pt")}
    assert saved, f"the training cell saved no checkpoint in {checkpoints}"
    page.steps.shot("trained-and-saved", notebook.output(training))

    notebook.restart_and_run_all()
    notebook.expect_output(training, LOADED)
    notebook.expect_finished(last)
    expect(notebook.cell(code_cells(nb)[0]).locator(".jp-InputArea-prompt")).to_have_text(
        re.compile(r"\[1\]"))  # the kernel did restart
    assert {p.name: p.stat().st_mtime_ns for p in checkpoints.glob("*.pt")} == saved, "the model was trained again"
    page.steps.shot("restarted-and-loaded", notebook.output(training))
