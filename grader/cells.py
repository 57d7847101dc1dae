"""Notebook cells as nbgrader marks them: the metadata accessor, the source as text, the markers.

A cell is the JSON dict of a notebook cell (or an ``nbformat.NotebookNode``, which is one).
``meta(cell)`` is its ``metadata.nbgrader`` block ({} when there is none); ``source(cell)`` its source
as one string, whether stored as a string or as a list of lines.
"""
from __future__ import annotations

BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"


def meta(cell) -> dict:
    """The cell's nbgrader metadata (``metadata.nbgrader``); {} when absent or null."""
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def source(cell) -> str:
    """The cell's source as one string (nbformat stores it as a string or a list of lines)."""
    text = cell.get("source", "")
    return "".join(text) if isinstance(text, list) else text


def norm(text: str) -> str:
    """``text`` without leading and trailing blank lines or trailing spaces: for comparing sources."""
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def replace_region(text: str, begin: str, end: str, replacement: str | None) -> str:
    """``text`` with the lines from the marker ``begin`` to the marker ``end`` (both included) replaced.

    The replacement's lines are indented like the ``begin`` line; None removes the region. A marker
    matches a line equal to it once stripped. Lines come back joined by newlines, without a last one.
    """
    out, inside = [], False
    for line in text.splitlines():
        if line.strip() == begin:
            inside = True
            if replacement is not None:
                indent = line[: len(line) - len(line.lstrip())]
                out.extend(indent + r for r in replacement.splitlines())
        elif line.strip() == end:
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out)
