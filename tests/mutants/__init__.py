"""Plausible wrong answers, one file per notebook (``<assignment id>.py`` with a MUTANTS list).

Each Mutant edits one answer cell of the instructor notebook by plain text replacement; the
graded test cells named in ``fails`` must then fail (so the wrong answer loses their points).
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Mutant:
    name: str
    cell: str                 # grade_id of the answer cell to edit
    find: str | tuple[str, ...]     # text in that cell (must occur); a tuple for several edits
    replace: str | tuple[str, ...]  # what a student might have written instead
    fails: tuple[str, ...]    # grade_ids of the test cells that must fail


def edit_cell(label: str, cell: str, find: str | tuple[str, ...], replace: str | tuple[str, ...],
              source: str) -> str:
    """``source`` with each ``find`` replaced by its ``replace``; fails if a text to replace is missing.

    Shared by the wrong answers here and the right answers in ``tests/equivalents``.
    """
    finds = (find,) if isinstance(find, str) else find
    replaces = (replace,) if isinstance(replace, str) else replace
    assert len(finds) == len(replaces), f"{label}: find and replace differ in length"
    for old, new in zip(finds, replaces):
        assert old in source, f"{label}: {old!r} not in cell {cell}"
        source = source.replace(old, new)
    return source


def apply(mutant: Mutant, source: str) -> str:
    """The cell source with the mutant's edits made; fails if a text to replace is missing."""
    return edit_cell(f"mutant {mutant.name}", mutant.cell, mutant.find, mutant.replace, source)


def _module(assignment: str, prefix: str):
    """The notebook's file of wrong answers as a module, or None when it has none."""
    path = Path(__file__).with_name(f"{assignment}.py")
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location(f"{prefix}_{assignment}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load(assignment: str) -> list[Mutant]:
    module = _module(assignment, "mutants")
    return list(module.MUTANTS) if module else []


def load_isolation_runs(assignment: str) -> list[tuple[str, ...]]:
    """The notebook's ISOLATION_RUNS: groups of answer cells to break together in one run."""
    module = _module(assignment, "mutants_runs")
    return [tuple(run) for run in getattr(module, "ISOLATION_RUNS", [])] if module else []
