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
