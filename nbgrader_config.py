"""nbgrader settings for this course: instructor notebooks in solutions/, student ones in notebooks/."""
import os

c = get_config()  # noqa: F821 (provided by nbgrader)

HERE = os.path.dirname(os.path.abspath(__file__))

c.CourseDirectory.root = HERE
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(HERE, "gradebook.db")
c.CourseDirectory.assignment_id = ""

# Student versions keep no outputs; a hanging or looping submission is stopped cell by cell.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.Execute.timeout = 300
c.Execute.interrupt_on_timeout = True
c.Execute.allow_errors = True

# The exchange: the Formgrader releases assignments into it and collects submissions from it, and the
# students' Assignment List (Nbgrader menu) fetches and submits through it. Here it is a folder of the
# course, for an instructor and students on one machine; it is created on first use. A JupyterHub
# deployment points every user's Exchange.root at one shared folder instead (see README.md).
c.CourseDirectory.course_id = "diffusion-course"
c.Exchange.root = os.path.join(HERE, "exchange")
try:
    os.makedirs(c.Exchange.root, exist_ok=True)
except OSError:  # a read-only copy of the course: nbgrader reports the missing exchange itself
    pass

# Grading and feedback go through the course's grader, whichever button is pressed (README.md, "Release
# and collect in the browser"). The Formgrader's Autograde button (nbgrader's NbGraderAPI) runs
# grader.nbgrader_hooks.CourseGrader in place of nbgrader's own preprocessors: the submission is graded
# in its sandbox, rebuilt from solutions/ and checked for tampering, as `make autograde` does. Every
# generate_feedback (the command and the Formgrader's buttons) writes the course's feedback page, which
# never shows a hidden test or a reference value; nbgrader's own page shows them all (jupyter/nbgrader#917).
# `nbgrader autograde` typed on the command line stays nbgrader's own unsandboxed autograde (the test suite
# uses it on the instructor's answers): grade students with `make autograde`.
import sys  # noqa: E402

if HERE not in sys.path:  # the hooks below live in this course's grader/ package
    sys.path.append(HERE)
c.NbGraderAPI.Autograde.sanitize_preprocessors = ["grader.nbgrader_hooks.CourseGrader"]
c.NbGraderAPI.Autograde.autograde_preprocessors = []
c.NbGraderAPI.Autograde.permissions = 644  # make autograde may write the same files again later
c.GenerateFeedback.exporter_class = "grader.nbgrader_hooks.CourseFeedbackExporter"
c.GenerateFeedback.preprocessors = []
