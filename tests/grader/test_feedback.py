"""Feedback pages show the checks' messages and the student's work, never the tests or raw script."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace

import nbformat
import pytest

from conftest import ROOT
from course_harness import fill_in, read, released_path, solution_path
from page_checks import TAMPER, assert_no_hidden_test
from grader.feedback import render, write_all
from grader.grade_one import HIDDEN_FAILED, SubmissionResult, load_spec, rebuild
from grader.result import attach_result, read_result


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
    result = SubmissionResult("ann", "01_UNets", "crashed", {"test_down_block": (2.0, 2.0)}, {}, ["crashed: x"], 1.0, "",
                              path)
    # as the class-wide runner stores it: the executed notebook alone, the result in its metadata
    folder = tmp_path / "autograded" / "ann" / "01_UNets"
    folder.mkdir(parents=True)
    nb = nbformat.read(str(path), as_version=4)
    attach_result(nb, result)
    nbformat.write(nb, str(folder / "01_UNets.ipynb"))
    (folder / "result.json").write_text(result.to_json().replace('"crashed"', '"graded"'))  # a stray copy: ignored
    # a folder graded before the notebook carried its result: a result.json beside the notebook
    legacy = tmp_path / "autograded" / "bob" / "01_UNets"
    legacy.mkdir(parents=True)
    shutil.copyfile(path, legacy / "executed.ipynb")
    (legacy / "result.json").write_text(result.to_json().replace('"ann"', '"bob"'))
    # a notebook the course's grader did not grade gets no page
    plain = tmp_path / "autograded" / "cat" / "01_UNets"
    plain.mkdir(parents=True)
    shutil.copyfile(path, plain / "01_UNets.ipynb")
    written = write_all(tmp_path / "autograded", tmp_path / "feedback")
    assert sorted(written) == [tmp_path / "feedback" / s / "01_UNets" / "01_UNets.html" for s in ("ann", "bob")]
    assert all("Grading stopped early (crashed)" in page.read_text() for page in written)
    assert read_result(folder / "01_UNets.ipynb") == replace(result, executed_notebook=folder / "01_UNets.ipynb")
    assert read_result(plain / "01_UNets.ipynb") is None


# ----------------------------------------------------------------------------------------- nbgrader's own buttons
# The Formgrader's Autograde, Generate Feedback and Release Feedback call nbgrader's NbGraderAPI; the
# course's nbgrader_config.py routes them through the course's grader (grader/nbgrader_hooks.py).

A = "01_UNets"
FORMGRADER_BUTTONS = """
import json, sys
from traitlets.config.loader import PyFileConfigLoader
from nbgrader.apps.api import NbGraderAPI
from nbgrader.coursedir import CourseDirectory

config = PyFileConfigLoader("nbgrader_config.py", path=".").load_config()
api = NbGraderAPI(CourseDirectory(config=config), config=config)  # as the Formgrader's handlers build it
student = sys.argv[1]
print(json.dumps({"autograde": api.autograde("01_UNets", student),
                  "generate_feedback": api.generate_feedback("01_UNets", student),
                  "release_feedback": api.release_feedback("01_UNets", student)}))
"""


def test_config_routes_nbgraders_buttons_through_the_course(tmp_path):
    """What the course's nbgrader_config.py gives nbgrader: the Formgrader's Autograde converter runs only
    the course's grader, and every GenerateFeedback writes the course's page."""
    from nbgrader.apps.api import NbGraderAPI
    from nbgrader.converters import Autograde, GenerateFeedback
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    from grader.nbgrader_hooks import CourseFeedbackExporter, CourseGrader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    coursedir = CourseDirectory(config=config)
    api = NbGraderAPI(coursedir, config=config)
    autograde = Autograde(coursedir=coursedir, parent=api)
    preprocessors = [*autograde.sanitize_preprocessors, *autograde.autograde_preprocessors]
    assert preprocessors == ["grader.nbgrader_hooks.CourseGrader"], preprocessors
    assert CourseGrader().enabled, "nbconvert skips a preprocessor that is not enabled"
    for parent in (api, None):
        feedback = GenerateFeedback(coursedir=coursedir, parent=parent, config=config)
        assert feedback.exporter_class is CourseFeedbackExporter and feedback.preprocessors == []


def test_feedback_exporter_refuses_a_notebook_not_graded_by_the_course(tmp_path):
    from grader.nbgrader_hooks import CourseFeedbackExporter

    path, spec = _executed(tmp_path)
    nb = nbformat.read(str(path), as_version=4)
    exporter = CourseFeedbackExporter()
    with pytest.raises(ValueError, match="was not graded by the course's grader"):
        exporter.from_notebook_node(nb, {"nbgrader": {"student": "ann", "assignment": A, "notebook": A}})
    result = SubmissionResult("ann", A, "graded", {"test_down_block": (0.0, 2.0), "test_up_block": (2.0, 2.0),
                                                   "test_basic_unet": (3.0, 3.0)},
                              {"test_down_block": HIDDEN_FAILED}, [], 1.0, "", None)
    attach_result(nb, result)
    page, resources = exporter.from_notebook_node(nb, {})
    assert "Score: 5 / 7" in page and HIDDEN_FAILED in page and resources["output_extension"] == ".html"
    assert_no_hidden_test(page, spec, read(released_path(A)))


def test_write_all_puts_the_exchange_files_beside_each_page(tmp_path):
    path, _ = _executed(tmp_path)
    folder = tmp_path / "autograded" / "ann" / A
    folder.mkdir(parents=True)
    nb = nbformat.read(str(path), as_version=4)
    result = SubmissionResult("ann", A, "graded", {"test_down_block": (2.0, 2.0)}, {}, [], 1.0, "", None)
    attach_result(nb, result)
    nbformat.write(nb, str(folder / f"{A}.ipynb"))
    (folder / "timestamp.txt").write_text("2026-12-01 10:00:00 UTC")
    (folder / "submission_secret.txt").write_text("abc")
    out = tmp_path / "feedback" / "ann" / A
    out.mkdir(parents=True)
    (out / f"{A}.html").write_text("old")
    (out / f"{A}.html").chmod(0o444)  # as nbgrader leaves its files
    write_all(tmp_path / "autograded", tmp_path / "feedback")
    assert "Score: 2 / 2" in (out / f"{A}.html").read_text()
    assert (out / "timestamp.txt").read_text() == "2026-12-01 10:00:00 UTC"
    assert (out / "submission_secret.txt").read_text() == "abc"


@pytest.mark.slow
def test_formgrader_buttons_grade_and_give_feedback_through_the_course(tmp_path):
    """The Formgrader's Autograde, Generate Feedback and Release Feedback on a submission whose right
    answers reach for the grader: the course's grader scores and flags it (nbgrader's own autograde would
    give 7 / 7), its feedback holds no hidden test, and `nbgrader generate_feedback` refuses a notebook
    that the course did not grade."""
    import shutil
    import subprocess
    import sys

    from course_harness import TempCourse, nbgrader_meta

    course = TempCourse(tmp_path / "course", [A])
    released = read(course.release(A))
    shutil.copytree(ROOT / "utils", course.root / "utils", ignore=shutil.ignore_patterns("__pycache__"))
    tampered = fill_in(released, read(solution_path(A)))
    for cell in tampered["cells"]:
        if nbgrader_meta(cell).get("grade_id") == "down_block":
            cell["source"] = "".join(cell["source"]) + TAMPER
    course.submit("mallory", A, tampered)
    submitted = course.root / "submitted" / "mallory" / A
    (submitted / "timestamp.txt").write_text("2026-12-01 10:00:00.000000 UTC")  # what the exchange adds
    (submitted / "submission_secret.txt").write_text("0123456789abcdef")

    run = subprocess.run([sys.executable, "-c", FORMGRADER_BUTTONS, "mallory"], cwd=course.root,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    replies = json.loads(run.stdout.strip().splitlines()[-1])
    assert all(reply["success"] for reply in replies.values()), json.dumps(replies, indent=1)[-4000:]
    log = replies["autograde"]["log"]
    assert "the course's grader says" in log and "tampering" in log, log
    assert (course.root / "logs" / "autograde" / A / "mallory.log").is_file()

    from nbgrader.api import Gradebook

    from grader.gradebook import read_class

    with Gradebook(f"sqlite:///{course.root}/gradebook.db") as gb:
        assert gb.find_submission(A, "mallory").score == 0
    stored = {r.student: r for r in read_class(f"sqlite:///{course.root}/gradebook.db")[0]}
    assert any(flag.startswith("tampering") for flag in stored["mallory"].flags), stored["mallory"].flags
    again = subprocess.run([sys.executable, "-m", "grader", "autograde", A, "--course", str(course.root),
                            "--jobs", "1", "--no-progress"], cwd=course.root, capture_output=True, text=True)
    assert again.returncode == 0 and "1 unchanged and skipped" in again.stdout, \
        f"make autograde does not know the button's grading:\n{again.stdout}"

    page = (course.root / "feedback" / "mallory" / A / f"{A}.html").read_text()
    assert "Score: 0 / 7" in page
    assert_no_hidden_test(page, load_spec(ROOT, A), released)
    outbound = list((course.root / "exchange" / "diffusion-course" / "feedback").glob("*.html"))
    assert [p.read_text() for p in outbound] == [page], "Release Feedback did not hand out the course's page"

    # A notebook in autograded/ that the course did not grade (here: the instructor's, hidden tests and all).
    plain = course.root / "autograded" / "plain" / A
    plain.mkdir(parents=True)
    shutil.copyfile(solution_path(A), plain / f"{A}.ipynb")
    cli = subprocess.run([sys.executable, "-m", "nbgrader", "generate_feedback", A, "--student", "plain"],
                         cwd=course.root, capture_output=True, text=True)
    assert cli.returncode != 0 and "was not graded by the course's grader" in cli.stdout + cli.stderr
    assert not (course.root / "feedback" / "plain" / A / f"{A}.html").exists()
