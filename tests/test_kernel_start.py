"""What a grading kernel starts with (runs one small kernel, as grading does)."""
from __future__ import annotations

import nbformat

from conftest import ROOT
from grader.grade_one import Plan, default_limits, load_spec, run_plan
from grader.kernel_session import font_list
from grader.sandbox import sandbox_available

FONT_CELL = """\
import os, matplotlib.font_manager
folder = os.environ["MPLCONFIGDIR"]
print({name: os.stat(os.path.join(folder, name)).st_mtime_ns for name in os.listdir(folder)})
"""


def test_each_kernel_starts_with_the_font_list_and_keeps_it(tmp_path):
    """matplotlib finds its font list in the kernel's own folder and does not rebuild it (which costs
    about half a second per submission)."""
    fonts = font_list()
    assert fonts is not None and fonts.name.startswith("fontlist-") and fonts.stat().st_size > 1000
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(FONT_CELL)])
    plan = Plan(nb, ["student"], [None], [], [], {}, {})
    work = tmp_path / "work"
    work.mkdir()
    outcome = run_plan(plan, load_spec(ROOT, "01_UNets"), ROOT, work, use_sandbox=sandbox_available()[0],
                       limits=default_limits(ROOT))
    assert outcome.status == "graded", outcome.reason
    printed = "".join(o.get("text", "") for o in plan.nb.cells[0].outputs)
    assert printed.strip() == repr({fonts.name: fonts.stat().st_mtime_ns}), printed
