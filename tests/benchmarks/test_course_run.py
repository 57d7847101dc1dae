"""The course-run benchmark (benchmarks/course_run.py): it refuses to measure on a sample, and its
payoff snippets read the right numbers from a notebook's variables."""
import json
import sys

import nbformat
import pytest

from cell_builders import code_cell, markdown_cell, notebook
from conftest import ROOT
sys.path.insert(0, str(ROOT / "benchmarks"))
import course_run  # noqa: E402


def test_a_sample_of_the_data_is_refused_with_what_to_do(course_environment):
    problem = course_run.preflight()  # the test session points COURSE_DATA_DIR at a small sample
    assert problem and "70,000" in problem and "dataset-fashion-mnist" in problem


def _payoff(nb_id: str, variables: dict) -> dict:
    printed = []
    namespace = {**variables, "print": printed.append}
    exec("import json\nMARK = " + repr(course_run.MARK) + "\n" + course_run.PAYOFFS[nb_id][0], namespace)
    line, = [p for p in printed if p.startswith(course_run.MARK)]
    return json.loads(line[len(course_run.MARK):])


@pytest.mark.parametrize("fid, basic, passed", [(65.0, 120.0, True), (75.0, 120.0, False), (60.0, 55.0, False)])
def test_03_passes_only_below_70_and_below_02(fid, basic, passed):
    fid_03 = {"real images": 16.0, "02 basic U-Net": basic, "03 UNet": fid}
    assert _payoff("03_Optimizations", {"fid_03": fid_03})["passed"] is passed


@pytest.mark.parametrize("fid, passed", [(129.9, True), (130.1, False)])
def test_02_target(fid, passed):
    assert _payoff("02_Diffusion_Models", {"fid_02": {"real": 16.0, "02 basic U-Net": fid}})["passed"] is passed


@pytest.mark.parametrize("share, passed", [(0.77, True), (0.76, False)])
def test_06_needs_five_points_above_the_pass_mark(share, passed):
    class Verdict:
        pass_mark, n, fid = 0.7188, 200, 90.0
        successes = round(share * 200)
        rate = successes / 200

    result = _payoff("06_Assessment", {"verdict": Verdict(), "GUIDANCE_WEIGHT": 2.0})
    assert result["passed"] is passed and "w = 2" in result["detail"]


def test_another_seed_changes_only_the_setup_cell():
    nb = notebook(markdown_cell("set_seed(0) in prose"), code_cell("generator = set_seed(0)\nx = 1"),
                  code_cell("set_seed(0)  # an ablation"))
    course_run.reseed(nb, 3)
    assert [c.source for c in nb.cells] == ["set_seed(0) in prose", "generator = set_seed(3)\nx = 1",
                                            "set_seed(0)  # an ablation"]
    with pytest.raises(ValueError, match="set_seed"):
        course_run.reseed(notebook(code_cell("x = 1")), 1)


@pytest.mark.slow
def test_a_failing_cell_is_reported_and_the_notebook_still_saved(tmp_path, monkeypatch):
    folder = tmp_path / "solutions" / "99_Fake"
    folder.mkdir(parents=True)
    cells = [code_cell(src) for src in ("x = 1", "raise ValueError('the verdict failed')", "y = 2")]
    nbformat.write(notebook(*cells), folder / "99_Fake.ipynb")
    monkeypatch.setattr(course_run, "ROOT", tmp_path)
    nb, result = course_run.execute("99_Fake", timeout=60)
    assert result["failed_cell"] == {"index": 1, "error": "ValueError: the verdict failed"}
    assert nb.cells[1].outputs[0]["ename"] == "ValueError" and nb.cells[2].outputs == []
    assert "stopped at cell 1: ValueError" in course_run.table([result], "fast")
    out = tmp_path / "out"
    out.mkdir()
    assert course_run.save(nb, out, "99_Fake") == 0
    # an HTML page with the outputs; no notebook with outputs is left in the course
    assert sorted(p.name for p in out.iterdir()) == ["99_Fake.html"]
    assert "the verdict failed" in (out / "99_Fake.html").read_text()


def test_the_training_notes_are_the_budget_decisions_and_summaries():
    cell = code_cell("train(...)")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=(
        "time budget: 748 ms a step here, so 1,500 steps would take 18.7 min; training 1,000\n"
        "10,000 training images\n"
        "1000 steps (of 1,500 planned: time budget) in 1 epoch(s), 752.0 s, final loss 0.0650\n"))]
    assert course_run.training_notes(notebook(markdown_cell("1000 steps in prose"), cell)) == [
        "time budget: 748 ms a step here, so 1,500 steps would take 18.7 min; training 1,000",
        "1000 steps (of 1,500 planned: time budget) in 1 epoch(s), 752.0 s, final loss 0.0650"]
