"""The instructor's side of the course: releasing student notebooks and grading submissions.

Students never import this package; what the notebooks teach and import lives in ``utils``.
``release`` generates the student versions from the instructor notebooks.
"""
