"""Answers written into the instructor notebooks to test the tests, one file per notebook in each part.

- ``mutants/``: plausible wrong answers; each must lose the points of the test cells it names, and
  fail one of their visible checks (``grader.rubric`` lists them with the message a student sees);
- ``equivalents/``: right answers written differently; each must get full marks.

For instructors only: the edits quote the model answers, so this package is not installed for the
students of a class server (``hub/hub_env.py``).
"""
