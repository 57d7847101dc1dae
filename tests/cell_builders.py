"""Notebook cells for tests, marked as nbgrader marks them (as nbgrader's own tests build theirs).

Every test that needs a cell or a notebook of its own makes it here, so that the metadata a test
relies on is written one way:

- ``code_cell(source)``, ``markdown_cell(source)``: plain cells (no nbgrader metadata);
- ``answer_cell(grade_id, source)``: an autograded answer (``solution``, not ``grade``, unlocked);
- ``test_cell(grade_id, source, points=1)``: an autograder test (``grade``, locked, worth ``points``);
- ``notebook(*cells)``: an nbformat 4 notebook holding them.

Each returns an ``nbformat.NotebookNode``, which is a dict: the grader reads it like a cell loaded
from a file. ``grade_id_only(grade_id, source)`` is the bare minimum some of the grader's pure
functions look at (a grade_id and nothing else), for testing that they need no more.
"""
from __future__ import annotations

import nbformat

SCHEMA_VERSION = 3  # nbgrader's cell-metadata schema


def code_cell(source: str = "", *, cell_id: str | None = None, nbgrader: dict | None = None) -> nbformat.NotebookNode:
    """A code cell; ``nbgrader`` is its ``metadata.nbgrader`` block (None: none)."""
    cell = nbformat.v4.new_code_cell(source)
    if cell_id is not None:
        cell["id"] = cell_id
    if nbgrader is not None:
        cell["metadata"]["nbgrader"] = nbgrader
    return cell


def markdown_cell(source: str = "", *, cell_id: str | None = None) -> nbformat.NotebookNode:
    """A markdown cell without nbgrader metadata."""
    cell = nbformat.v4.new_markdown_cell(source)
    if cell_id is not None:
        cell["id"] = cell_id
    return cell


def answer_cell(grade_id: str, source: str, *, cell_id: str | None = None) -> nbformat.NotebookNode:
    """A cell the student writes, graded through the test cells that follow it."""
    return code_cell(source, cell_id=cell_id or grade_id, nbgrader={
        "grade_id": grade_id, "grade": False, "solution": True, "locked": False, "schema_version": SCHEMA_VERSION})


def test_cell(grade_id: str, source: str, *, points: float = 1, cell_id: str | None = None) -> nbformat.NotebookNode:
    """An autograder test cell worth ``points``."""
    return code_cell(source, cell_id=cell_id or grade_id, nbgrader={
        "grade_id": grade_id, "grade": True, "solution": False, "locked": True, "points": points,
        "schema_version": SCHEMA_VERSION})


test_cell.__test__ = False  # a builder, not a test, whatever pytest makes of its name


def grade_id_only(grade_id: str | None, source: str) -> nbformat.NotebookNode:
    """A code cell whose nbgrader metadata is its grade_id alone (no metadata when None)."""
    return code_cell(source, nbgrader=None if grade_id is None else {"grade_id": grade_id})


def notebook(*cells) -> nbformat.NotebookNode:
    """An nbformat 4 notebook of ``cells``."""
    return nbformat.v4.new_notebook(cells=list(cells))
