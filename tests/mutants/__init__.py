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


def apply(mutant: Mutant, source: str) -> str:
    """The cell source with the mutant's edits made; fails if a text to replace is missing."""
    finds = (mutant.find,) if isinstance(mutant.find, str) else mutant.find
    replaces = (mutant.replace,) if isinstance(mutant.replace, str) else mutant.replace
    assert len(finds) == len(replaces), f"mutant {mutant.name}: find and replace differ in length"
    for find, replace in zip(finds, replaces):
        assert find in source, f"mutant {mutant.name}: {find!r} not in cell {mutant.cell}"
        source = source.replace(find, replace)
    return source


def load(assignment: str) -> list[Mutant]:
    path = Path(__file__).with_name(f"{assignment}.py")
    if not path.exists():
        return []
    spec = importlib.util.spec_from_file_location(f"mutants_{assignment}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.MUTANTS)


def load_isolation_runs(assignment: str) -> list[tuple[str, ...]]:
    """The notebook's ISOLATION_RUNS: groups of answer cells to break together in one run."""
    path = Path(__file__).with_name(f"{assignment}.py")
    if not path.exists():
        return []
    spec = importlib.util.spec_from_file_location(f"mutants_runs_{assignment}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [tuple(run) for run in getattr(module, "ISOLATION_RUNS", [])]
