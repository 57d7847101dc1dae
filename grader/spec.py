"""The assignment as the grader trusts it: read from the instructor notebook, never from a submission.

    spec = load_spec(course_root, "01_UNets")     # solutions/01_UNets/01_UNets.ipynb
    spec.points                                   # {"test_down_block": 2.0, ...}, in notebook order
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from grader import tamper
from grader.cells import BEGIN_HIDDEN, BEGIN_SOLUTION, CODE_STUB, END_HIDDEN, END_SOLUTION, meta, replace_region, \
    source


@dataclass
class AssignmentSpec:
    assignment: str
    source: Path
    nb: dict
    order: list[str]                         # grade ids in notebook order
    points: dict[str, float]                 # graded test cell -> max points (notebook order)
    answers: dict[str, str]                  # answer cell -> stub source (what the release shows)
    tests_of: dict[str, list[str]]           # answer cell -> test cells graded after it
    visible: dict[str, str]                  # test cell -> visible part of its source
    hidden: dict[str, str]                   # test cell -> hidden part ('' if none)
    allowed_defs: set[str] = field(default_factory=set)   # normalised instructor answers

    def cell(self, grade_id: str) -> dict:
        """The instructor's cell with this grade id. Raises StopIteration if there is none."""
        return next(c for c in self.nb["cells"] if meta(c).get("grade_id") == grade_id)


def instructor_notebook(course_root: Path, assignment: str) -> Path:
    """Where the instructor notebook of ``assignment`` lives (it may not exist)."""
    return Path(course_root) / "solutions" / assignment / f"{assignment}.ipynb"


def _allowed_definitions(text: str) -> set[str]:
    """The normalised definitions of an answer cell's solution, with and without the code around it."""
    outside = replace_region(text, BEGIN_SOLUTION, END_SOLUTION, "").replace(BEGIN_SOLUTION, "")
    whole = text.replace(BEGIN_SOLUTION, "").replace(END_SOLUTION, "")
    return {code for _, code in tamper.definitions(outside)} | {code for _, code in tamper.definitions(whole)}


def split_hidden(text: str) -> tuple[str, str]:
    """A test cell's source as (visible part, hidden part); the hidden part is '' when there is none."""
    if BEGIN_HIDDEN not in text:
        return text.strip("\n"), ""
    before, _, rest = text.partition(BEGIN_HIDDEN)
    inner, _, after = rest.partition(END_HIDDEN)
    return (before.rstrip() + "\n" + after.strip()).strip("\n"), inner.strip("\n")


@lru_cache(maxsize=32)
def load_spec_file(path: str, mtime: float) -> AssignmentSpec:
    """The spec of the notebook at ``path``; ``mtime`` keys the cache, so an edited notebook is read again."""
    nb = json.loads(Path(path).read_text())
    order, points, answers, visible, hidden, tests_of = [], {}, {}, {}, {}, {}
    allowed: set[str] = set()
    current = None
    for cell in nb["cells"]:
        gid = meta(cell).get("grade_id")
        if not gid:
            continue
        order.append(gid)
        text = source(cell)
        if meta(cell).get("solution"):
            answers[gid] = replace_region(text, BEGIN_SOLUTION, END_SOLUTION, CODE_STUB)
            tests_of[gid] = []
            current = gid
            allowed |= _allowed_definitions(text)
        if meta(cell).get("grade") and cell.get("cell_type") == "code":
            points[gid] = float(meta(cell).get("points", 0))
            visible[gid], hidden[gid] = split_hidden(text)
            if current:
                tests_of[current].append(gid)
    return AssignmentSpec(Path(path).stem, Path(path), nb, order, points, answers, tests_of, visible, hidden, allowed)


def load_spec(course_root: Path, assignment: str) -> AssignmentSpec:
    """The spec of ``assignment`` from its instructor notebook. Raises FileNotFoundError if there is none."""
    path = instructor_notebook(course_root, assignment)
    if not path.exists():
        raise FileNotFoundError(f"no instructor notebook at {path}")
    return load_spec_file(str(path), path.stat().st_mtime)


def graded_cells(course_root: Path, assignment: str) -> dict[str, float]:
    """grade_id -> max points of every graded cell of ``assignment``, in notebook order (cheap: no kernel)."""
    return dict(load_spec(course_root, assignment).points)
