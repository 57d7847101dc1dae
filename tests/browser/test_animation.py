"""The guided-sampling animation of notebook 04 plays in JupyterLab without the internet: frame by
frame, each frame whole and with its whole title."""
from __future__ import annotations

import base64
import json
import re

import pytest
from playwright.sync_api import expect
from frame_checks import title_columns

from .ui import Notebook, first_code_cell, solved

pytestmark = pytest.mark.browser
ASSIGNMENT = "04_Classifier_Free_Diffusion"


def png_of(image) -> bytes:
    return base64.b64decode(image.get_attribute("src").split(",", 1)[1])


def test_guided_sampling_animation_plays_offline(page, lab):
    stored = {folder: json.loads((lab.course / folder / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text())
              for folder in ("notebooks", "solutions")}
    nb = solved(stored["notebooks"], stored["solutions"])
    path = lab.write_notebook(f"student-animation/{ASSIGNMENT}.ipynb", nb)
    cell = first_code_cell(nb, "animate(")

    notebook = Notebook(page, lab, path)
    notebook.run_all()
    notebook.expect_finished(cell)
    output = notebook.output(cell)
    player = output.locator(".animation")
    expect(player).to_have_count(1)
    image, slider = player.locator("img"), player.locator("input.anim-slider")
    expect(image).to_have_attribute("src", re.compile(r"^data:image/png"))
    page.steps.shot("animation-first-frame", output)

    # Offline: no stylesheet or script from the web, and every control labelled without a web font.
    assert not re.search(r"""(href|src)\s*=\s*["']?(https?:)?//""", output.inner_html())
    buttons = player.locator(".anim-buttons button")
    assert buttons.count() >= 5
    for i in range(buttons.count()):
        assert buttons.nth(i).inner_text().strip(), f"button {buttons.nth(i).get_attribute('title')} has no label"

    # The whole picture: shown at its own size (not squeezed or cropped) inside the output area.
    natural, shown = image.evaluate("i => [[i.naturalWidth, i.naturalHeight], [i.clientWidth, i.clientHeight]]")
    assert natural[0] > 0 and shown == natural, f"frame of {natural} shown as {shown}"
    frame_box, area_box = image.bounding_box(), output.bounding_box()
    assert area_box["x"] <= frame_box["x"] and frame_box["x"] + frame_box["width"] <= area_box["x"] + area_box["width"]

    # Frame by frame, each with its whole title.
    frames = int(slider.get_attribute("max")) + 1
    assert frames > 1
    first, last, width = title_columns(png_of(image))
    assert first >= 2 and last <= width - 3, f"title cut off in frame 0: columns {first}..{last} of {width}"
    before = image.get_attribute("src")
    player.get_by_role("button", name="Next frame").click()
    expect(slider).to_have_value("1")
    expect(image).not_to_have_attribute("src", before)
    first, last, width = title_columns(png_of(image))
    assert first >= 2 and last <= width - 3, f"title cut off in frame 1: columns {first}..{last} of {width}"
    page.steps.shot("animation-next-frame", output)

    player.get_by_role("button", name="Play", exact=True).click()
    expect(slider).not_to_have_value("1")                  # it moves on by itself
    player.get_by_role("button", name="Pause").click()
    page.steps.shot("animation-played", output)
    assert page.external_requests == [], f"the page asked the internet for {page.external_requests}"
