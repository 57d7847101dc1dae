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
    find: str                 # text in that cell (must occur)
    replace: str              # what a student might have written instead
    fails: tuple[str, ...]    # grade_ids of the test cells that must fail


def load(assignment: str) -> list[Mutant]:
    path = Path(__file__).with_name(f"{assignment}.py")
    if not path.exists():
        return []
    spec = importlib.util.spec_from_file_location(f"mutants_{assignment}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.MUTANTS)
