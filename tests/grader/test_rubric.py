"""grader.rubric: what the rubrics contain, checked without executing anything (that each is up to date is
checked in test_notebooks.py, which everyone who edits a notebook runs)."""
import json

import pytest

from conftest import ROOT
from grader import rubric

ASSIGNMENTS = rubric.assignments()


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_rubric_lists_every_graded_cell_and_wrong_answer(assignment):
    text = rubric.rubric_path(assignment).read_text()
    nb = rubric.read_notebook(assignment)
    for cell in nb["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade"):
            assert f"### `{meta['grade_id']}`: {meta['points']} point" in text, meta["grade_id"]
    for mutant in rubric.load_mutants(assignment):
        assert f"| {mutant.name} |" in text.replace("\\|", "|"), mutant.name
    assert "## Expected results" in text
    assert "(solutions/" not in text and "instructor" not in str(ROOT / "solutions"), "rubrics live outside solutions/"


def test_instructor_material_is_not_released():
    """nbgrader copies solutions/<id>/ to students: nothing of instructor/ may sit there."""
    for folder in (ROOT / "solutions").iterdir():
        assert not list(folder.glob("*.md")), f"{folder} holds Markdown files that would reach students"


def test_checks_are_described_from_the_source():
    source = '''check_shape("x_t", _x_t, [3])
check_close(f"std at t = {_step}", 1, 1, hint="h")
check(_a == _b, f"weights differ: expected {_e}, got {_g}.\\nHint: h")
### BEGIN HIDDEN TESTS
G.check_fingerprint("q on a batch", q(1), {})
G.check_defined_here(DownBlock, _ref.DownBlock)
### END HIDDEN TESTS
'''
    visible, hidden = rubric.describe_checks(source)
    assert visible == ["shape of x_t", "std at t = {_step}", "weights differ"]
    assert hidden[0].startswith("q on a batch: shape, sums and values")
    assert hidden[1] == "`DownBlock` is written in the notebook, not imported from utils"
    assert rubric.visible_part(source).splitlines() == source.splitlines()[:3]


def test_a_changed_wrong_answer_makes_its_message_stale(tmp_path, monkeypatch):
    assignment = "01_UNets"
    stored = json.loads(rubric.captured_path(assignment).read_text())
    name = next(iter(stored))
    stored[name]["digest"] = "0" * 16
    (tmp_path / "captured").mkdir()
    (tmp_path / "captured" / f"{assignment}.json").write_text(json.dumps(stored))
    monkeypatch.setattr(rubric, "captured_path", lambda a, root=ROOT: tmp_path / "captured" / f"{a}.json")
    assert rubric.stale_captures(assignment) == [name]
