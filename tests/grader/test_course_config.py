"""The course's nbgrader_config.py has one reader (grader.course_config): the gradebook's settings and the
grader's cell timeout are the values nbgrader itself would load, whatever way the file writes them."""
from __future__ import annotations

import pytest

from conftest import ROOT
from grader.course_config import CourseSettings, course_settings, nbgrader_config
from grader.grade_one import default_limits
from grader.sandbox import Limits


def write_config(folder, text: str):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nbgrader_config.py").write_text("c = get_config()  # noqa: F821\n" + text)
    return folder


def test_the_course_config_gives_its_own_values():
    assert nbgrader_config(ROOT).Execute.timeout == 300
    assert default_limits(ROOT).cell_timeout == 300.0
    settings = course_settings(ROOT)
    assert (settings.root, settings.course_id) == (ROOT.resolve(), "diffusion-course")
    assert settings.db_url == f"sqlite:///{ROOT.resolve() / 'gradebook.db'}"


def test_other_values_are_read_as_nbgrader_reads_them(tmp_path):
    # Written the way no line-by-line pattern reads: an expression, then set again further down.
    course = write_config(tmp_path / "course", "# c.Execute.timeout = 5\n"
                                               "c.Execute.timeout = 2 * 60\n"
                                               "c.CourseDirectory.course_id = 'other-course'\n"
                                               "c.CourseDirectory.db_url = 'sqlite:////tmp/elsewhere.db'\n"
                                               "c.Execute.timeout = 45\n")
    assert default_limits(course).cell_timeout == 45.0
    assert course_settings(course) == CourseSettings(course.resolve(), "sqlite:////tmp/elsewhere.db", "other-course")
    assert course_settings(course, "postgresql://u@h/db").db_url == "postgresql://u@h/db"  # the caller's URL wins


@pytest.mark.parametrize("text", ["", "c.Execute.timeout = None\n", "c.Execute.timeout = -1\n"])
def test_no_timeout_set_keeps_the_graders_own(tmp_path, text):
    course = write_config(tmp_path / "course", text)
    assert default_limits(course).cell_timeout == Limits().cell_timeout
    settings = course_settings(course)
    assert (settings.db_url, settings.course_id) == (f"sqlite:///{course.resolve() / 'gradebook.db'}", "")


def test_a_folder_without_config(tmp_path):
    assert default_limits(tmp_path) == Limits()
    with pytest.raises(FileNotFoundError, match="nbgrader_config.py"):
        course_settings(tmp_path)
