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
