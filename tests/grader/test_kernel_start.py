"""What a grading kernel starts with (runs one small kernel, as grading does)."""
from __future__ import annotations

from cell_builders import code_cell, notebook
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
    nb = notebook(code_cell(FONT_CELL))
    plan = Plan(nb, ["student"], [None], [], [], {}, {})
    work = tmp_path / "work"
    work.mkdir()
    outcome = run_plan(plan, load_spec(ROOT, "01_UNets"), ROOT, work, use_sandbox=sandbox_available()[0],
                       limits=default_limits(ROOT))
    assert outcome.status == "graded", outcome.reason
    printed = "".join(o.get("text", "") for o in plan.nb.cells[0].outputs)
    assert printed.strip() == repr({fonts.name: fonts.stat().st_mtime_ns}), printed


def test_the_grading_client_sends_nothing_back_for_an_output_widget():
    """nbclient's stand-in for an Output widget writes on the shell socket while the client waits
    there for the cell's reply, which can leave the reply unread (jupyter/nbclient#312); the
    grader's client makes none."""
    from nbclient import NotebookClient

    from grader.kernel_session import _client_class

    state = {"_model_module": "@jupyter-widgets/output", "_model_name": "OutputModel", "outputs": []}
    msg = {"content": {"comm_id": "c1", "data": {"state": state}}}
    nb = notebook()
    assert NotebookClient(nb).on_comm_open_jupyter_widget(msg) is not None  # nbclient's own makes one
    assert _client_class()(nb).on_comm_open_jupyter_widget(msg) is None
