"""Feedback pages show the checks' messages and the student's work, never the tests or raw script."""
from __future__ import annotations

import json

import nbformat

from conftest import ROOT
from course_harness import fill_in, read, released_path, solution_path
from grader.feedback import render, write_all
from grader.grade_one import HIDDEN_FAILED, SubmissionResult, load_spec, rebuild


def _executed(tmp_path):
    spec = load_spec(ROOT, "01_UNets")
    plan = rebuild(fill_in(read(released_path("01_UNets")), read(solution_path("01_UNets"))), spec, ROOT / "utils")
    nb = plan.nb
    for cell, kind in zip(nb.cells, plan.kinds):
        if kind == "answer":
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="<script>alert(1)</script>\n"),
                            nbformat.v4.new_output("display_data", data={"text/html": "<script>x()</script>",
                                                                        "text/plain": "a figure"})]
        if kind == "test":
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="visible checks passed\n")]
    path = tmp_path / "executed.ipynb"
    nbformat.write(nb, str(path))
    return path, spec


def test_feedback_shows_messages_not_tests(tmp_path):
    path, spec = _executed(tmp_path)
    result = SubmissionResult("ann", "01_UNets", "graded",
                              {"test_down_block": (0.0, 2.0), "test_up_block": (2.0, 2.0), "test_basic_unet": (0.0, 3.0)},
                              {"test_down_block": HIDDEN_FAILED,
                               "test_basic_unet": "BasicUNet() parameter count: expected 234,977, got 1."},
                              [], 1.0, "", path)
    page = render(result, path)
    assert "Score: 2 / 7" in page and HIDDEN_FAILED in page and "expected 234,977, got 1." in page
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "a figure" in page
    for hidden in spec.hidden.values():
        for line in hidden.splitlines():
            if "G." in line or "'shape'" in line:
                assert line.strip() not in page, f"the page shows a hidden test line: {line.strip()}"
    assert "G.check_fingerprint" not in page and "isolated()" not in page


def test_write_all_finds_results(tmp_path):
    path, _ = _executed(tmp_path)
    folder = tmp_path / "autograded" / "ann" / "01_UNets"
    folder.mkdir(parents=True)
    result = SubmissionResult("ann", "01_UNets", "crashed", {"test_down_block": (2.0, 2.0)}, {}, ["crashed: x"], 1.0, "",
                              path)
    (folder / "result.json").write_text(result.to_json())
    # as the class-wide runner stores it: the executed notebook alone, the result in its metadata
    other = tmp_path / "autograded" / "bob" / "01_UNets"
    other.mkdir(parents=True)
    nb = nbformat.read(str(path), as_version=4)
    nb.metadata["course_grader"] = {"result": json.loads(result.to_json().replace('"ann"', '"bob"'))}
    nbformat.write(nb, str(other / "01_UNets.ipynb"))
    written = write_all(tmp_path / "autograded", tmp_path / "feedback")
    assert sorted(written) == [tmp_path / "feedback" / s / "01_UNets" / "01_UNets.html" for s in ("ann", "bob")]
    assert all("Grading stopped early (crashed)" in page.read_text() for page in written)
