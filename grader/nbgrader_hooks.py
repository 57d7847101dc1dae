"""nbgrader's own grading and feedback buttons, routed through the course's grader.

``nbgrader_config.py`` plugs these two classes into nbgrader, so that what the Formgrader offers
cannot skip the course's protections:

- ``CourseGrader``: the Formgrader's *Autograde* button (the lightning). nbgrader's ``Autograde``
  converter runs it in place of its own preprocessors (sanitize, execute, save grades): it runs
  ``python -m grader autograde ID --student NAME --force``, the command behind ``make autograde``
  (own kernel and sandbox, notebook rebuilt from ``solutions/``, tamper checks, gradebook, log in
  ``logs/autograde/``), and hands nbgrader the executed notebook that grading wrote to
  ``autograded/``. The dialog shows the grader's table row, with its flags.
- ``CourseFeedbackExporter``: every ``nbgrader generate_feedback`` (the command, the Formgrader's
  *Generate Feedback* buttons). nbgrader would turn ``autograded/<student>/<id>/<id>.ipynb`` into HTML
  whole, hidden tests and reference values included (jupyter/nbgrader#917); this exporter writes
  ``grader.feedback``'s page instead (the student's cells and each check's score and message), and
  refuses a notebook that the course's grader did not grade.

nbgrader's *Release Feedback* copies the HTML files of ``feedback/`` to the exchange unchanged, so it
releases these pages.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
from nbconvert.exporters import Exporter
from nbconvert.preprocessors import Preprocessor
from traitlets import Bool, default

NOT_GRADED_HERE = (
    "{path} was not graded by the course's grader (it holds no course_grader result): no feedback is "
    "written from it, because nbgrader's page would show every hidden test and reference value. Grade "
    "it with `make autograde` (or the Formgrader's Autograde button, which runs the same grader), then "
    "generate the feedback again.")


def _course_root(configurable) -> Path:
    """The course folder of the nbgrader converter above ``configurable`` (its ``coursedir.root``)."""
    node = configurable
    while node is not None:
        coursedir = getattr(node, "coursedir", None)
        if coursedir is not None:
            return Path(coursedir.root).resolve()
        node = getattr(node, "parent", None)
    raise RuntimeError("the course's grader hook runs only inside an nbgrader converter (none found above it)")


class CourseGrader(Preprocessor):
    """Grade the submission with the course's grader; return the notebook it executed.

    Runs once per notebook of a submission, as nbgrader's ``Autograde`` sanitizing step. The input
    notebook is only used for its place (``resources["nbgrader"]``: student, assignment, notebook);
    the course's grader reads the student's folder under ``submitted/`` itself.

    Raises:
        RuntimeError: the notebook is not the assignment's own (``<id>.ipynb``), the grader itself
            failed (its log says why), or it left no executed notebook; nbgrader then reports an error
            and keeps no autograded copy.
    """

    enabled = Bool(True, help="nbconvert runs a preprocessor only when enabled").tag(config=True)

    def preprocess(self, nb, resources):
        place = resources["nbgrader"]
        student, assignment, notebook = place["student"], place["assignment"], place["notebook"]
        if notebook != assignment:
            raise RuntimeError(f"the course's grader grades one notebook per assignment, {assignment}.ipynb; "
                               f"{notebook}.ipynb in {student}'s submission is not graded")
        root = _course_root(self)
        # `make autograde`'s own command, in a process of its own (its worker pool, torch and the kernel's
        # clean-up stay out of the Jupyter server), with this course's grader package (cwd comes first).
        command = [sys.executable, "-m", "grader", "autograde", assignment, "--course", str(root),
                   "--student", student, "--force", "--jobs", "1", "--no-progress"]
        if place.get("db_url"):
            command += ["--db-url", place["db_url"]]
        self.log.info("grading with the course's grader (sandbox, rebuild from solutions/, tamper checks), "
                      "as `make autograde` does: %s", " ".join(command[1:]))
        run = subprocess.run(command, cwd=root, capture_output=True, text=True,
                             env={**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep
                                  + os.environ.get("PATH", "")})
        self.log.info("the course's grader says:\n%s", run.stdout.strip())
        log = root / "logs" / "autograde" / assignment / f"{student}.log"
        if run.returncode != 0:
            detail = log.read_text(errors="replace")[-4000:] if log.is_file() else run.stderr[-4000:]
            raise RuntimeError(f"the course's grader failed on {student}/{assignment} (exit status "
                               f"{run.returncode}; not the submission's fault):\n{detail}")
        executed = root / "autograded" / student / assignment / f"{notebook}.ipynb"
        if not executed.is_file():
            raise RuntimeError(f"the course's grader wrote no executed notebook to {executed}; its log: {log}")
        return nbformat.read(str(executed), as_version=4), resources


class CourseFeedbackExporter(Exporter):
    """The student's feedback page (``grader.feedback.render``) for a notebook graded by the course.

    Only the result stored by the course's grader in the notebook's metadata
    (``metadata.course_grader.result``, read by ``grader.result.result_in``, as ``make feedback`` reads
    it) is believed; the page shows the student's cells with their
    outputs and each check's score and message, never a test's code, inputs or reference values.

    Raises:
        ValueError: the notebook holds no course_grader result (it was not graded by the course's
            grader, e.g. by a plain ``nbgrader autograde``): nothing is written for it.
    """

    export_from_notebook = "Course feedback"
    output_mimetype = "text/html"

    @default("file_extension")
    def _file_extension_default(self):
        return ".html"

    def from_notebook_node(self, nb, resources=None, **kw):
        from grader.feedback import render
        from grader.result import result_in

        nb_copy, resources = super().from_notebook_node(nb, resources, **kw)
        result = result_in(nb_copy)
        if result is None:
            place = (resources or {}).get("nbgrader", {})
            where = "/".join(place.get(k, "?") for k in ("student", "assignment", "notebook")) or "the notebook"
            raise ValueError(NOT_GRADED_HERE.format(path=f"autograded/{where}.ipynb"))
        resources["output_extension"] = ".html"
        return render(result, nb_copy), resources
