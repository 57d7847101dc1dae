"""Submissions that try to game the grader still get the score their answers deserve.

One nbgrader course, three students on notebook 03:
- "rebinder" writes a wrong GELUConvBlock (BatchNorm, ReLU) and, in the same cell, rebinds every check
  function in the notebook, patches ``utils.grading`` and makes ``torch.allclose`` always true;
- "editor" writes the same wrong block and empties the test cell below it, raising its points;
- "right" submits the instructor's answers, and must not be affected by the others.
"""
from __future__ import annotations

import pytest

from course_harness import TempCourse, cells_by_grade_id, fill_in, read, solution_path

ASSIGNMENT = "03_Optimizations"
WRONG_BLOCK = '''
class GELUConvBlock(nn.Module):
    def __init__(self, in_ch, out_ch, num_groups):
        super().__init__()
        layers = [nn.Conv2d(in_ch, out_ch, 3, 1, 1), nn.BatchNorm2d(out_ch), nn.ReLU()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)
'''
REBIND = '''
import torch, utils.grading
_ok = lambda *args, **kwargs: None
check = check_close = check_shape = check_parameters = check_fingerprint = check_defined_here = _ok
for _name in ("check", "check_close", "check_shape", "check_parameters", "check_fingerprint", "check_defined_here"):
    setattr(utils.grading, _name, _ok)
torch.allclose = lambda *args, **kwargs: True
torch.equal = lambda *args, **kwargs: True
'''


@pytest.mark.slow
def test_hostile_submissions_do_not_score(tmp_path):
    course = TempCourse(tmp_path, [ASSIGNMENT])
    released = read(course.release(ASSIGNMENT))
    right = fill_in(released, read(solution_path(ASSIGNMENT)))

    rebinder = fill_in(released, read(solution_path(ASSIGNMENT)))
    cells_by_grade_id(rebinder)["gelu_conv_block"]["source"] = WRONG_BLOCK + REBIND

    editor = fill_in(released, read(solution_path(ASSIGNMENT)))
    cells_by_grade_id(editor)["gelu_conv_block"]["source"] = WRONG_BLOCK
    test_cell = cells_by_grade_id(editor)["test_gelu_conv_block"]
    test_cell["source"] = "print('all good')"
    test_cell["metadata"]["nbgrader"]["points"] = 100

    for name, nb in {"right": right, "rebinder": rebinder, "editor": editor}.items():
        course.submit(name, ASSIGNMENT, nb)
    grades = {name: course.autograde(ASSIGNMENT, name) for name in ("rebinder", "editor", "right")}

    for name in ("rebinder", "editor"):
        score, max_score = grades[name].cells["test_gelu_conv_block"]
        assert (score, max_score) == (0, 2), f"{name} scored {score}/{max_score} for a BatchNorm/ReLU block"
        assert grades[name].max_score == grades["right"].max_score
    assert grades["right"].score == grades["right"].max_score
