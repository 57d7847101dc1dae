"""Correct answers written differently, one file per notebook (``<assignment id>.py`` with an
EQUIVALENTS list): the other side of ``grader.answer_sets.mutants``.

Each Equivalent edits one answer cell of the instructor notebook by plain text replacement, the
way a student might have written the same thing (a loop for a vectorised expression, ``F.``
functions for modules, another but equal order of operations). The graded test cells named in
``passes`` must then all pass: a right answer gets full marks whatever its spelling. Leave
``passes`` empty to mean the graded test cells that directly follow the edited cell (up to the
next answer cell).
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Equivalent:
    name: str
    cell: str                        # grade_id of the answer cell to edit
    find: str | tuple[str, ...]      # text in that cell (must occur); a tuple for several edits
    replace: str | tuple[str, ...]   # the same answer, written differently
    passes: tuple[str, ...] = ()     # grade_ids of the test cells that must pass; () = the cell's own


def apply(equivalent: Equivalent, source: str) -> str:
    """The cell source with the equivalent's edits made; fails if a text to replace is missing."""
    from grader.answer_sets.mutants import edit_cell

    return edit_cell(f"equivalent {equivalent.name}", equivalent.cell, equivalent.find, equivalent.replace,
                     source)


def own_test_cells(cells: list[dict], grade_id: str) -> tuple[str, ...]:
    """The grade_ids of the graded code cells between answer cell ``grade_id`` and the next answer cell."""
    def meta(cell):
        return cell.get("metadata", {}).get("nbgrader", {})

    ids = [meta(c).get("grade_id") for c in cells]
    found = []
    for cell in cells[ids.index(grade_id) + 1:]:
        if meta(cell).get("solution"):
            break
        if meta(cell).get("grade") and cell["cell_type"] == "code":
            found.append(meta(cell)["grade_id"])
    return tuple(found)


def load(assignment: str) -> list[Equivalent]:
    path = Path(__file__).with_name(f"{assignment}.py")
    if not path.exists():
        return []
    spec = importlib.util.spec_from_file_location(f"equivalents_{assignment}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.EQUIVALENTS)
