"""Plausible wrong answers, one file per notebook (``<assignment id>.py`` with a MUTANTS list).

Each Mutant edits one answer cell of the instructor notebook by plain text replacement; the
graded test cells named in ``fails`` must then fail (so the wrong answer loses their points), and
fail in their visible part: a student sees every mistake the hidden tests charge before handing in
(``split_hidden`` makes the two parts separately observable in one run).
"""
from __future__ import annotations

import copy
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from grader.cells import BEGIN_HIDDEN, END_HIDDEN


@dataclass(frozen=True)
class Mutant:
    name: str
    cell: str                 # grade_id of the answer cell to edit
    find: str | tuple[str, ...]     # text in that cell (must occur); a tuple for several edits
    replace: str | tuple[str, ...]  # what a student might have written instead
    fails: tuple[str, ...]    # grade_ids of the test cells that must fail


# 04 and 06 ask for the same context_mask (``u = torch.rand((n, 1), ...)``, then ``u >= drop_prob``). These
# wrong rates come out right at the drop probabilities 0.1 and 0.5, or in large batches only.
_BERNOULLI = "u = torch.rand((n, 1), generator=generator, device=device)\n    return (u >= drop_prob).float()"
CONTEXT_MASK_RATE_MUTANTS = (
    Mutant("mask drops one in every round(1 / drop_prob) (exact only at 0.1 and 0.5)", "context_mask", _BERNOULLI,
           "if drop_prob <= 0:\n        return torch.ones(n, 1, device=device)\n"
           "    return (torch.randint(0, round(1 / drop_prob), (n, 1), generator=generator, device=device) != 0).float()",
           ("test_context_mask",)),
    Mutant("mask drops exactly int(n * drop_prob) entries (none in a batch of 8 at 0.1)", "context_mask", _BERNOULLI,
           "m = torch.ones(n, 1, device=device)\n    m[torch.randperm(n, generator=generator)[:int(n * drop_prob)]] = 0.0\n"
           "    return m", ("test_context_mask",)),
)


def edit_cell(label: str, cell: str, find: str | tuple[str, ...], replace: str | tuple[str, ...],
              source: str) -> str:
    """``source`` with each ``find`` replaced by its ``replace``; fails if a text to replace is missing.

    Shared by the wrong answers here and the right answers in ``grader.answer_sets.equivalents``.
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


def hidden_id(grade_id: str) -> str:
    """The grade_id ``split_hidden`` gives the hidden part of test cell ``grade_id``."""
    return f"{grade_id}/hidden"


def split_source(source: str) -> tuple[str, str]:
    """(visible, hidden) parts of a test cell's source, the visible part as nbgrader releases it.

    The hidden block must be one top-level block at the end of the cell, so each part runs on its own
    and the two in a row do what the whole cell does. Raises ValueError otherwise.
    """
    lines = source.split("\n")
    begins = [i for i, line in enumerate(lines) if "BEGIN HIDDEN TESTS" in line]
    ends = [i for i, line in enumerate(lines) if "END HIDDEN TESTS" in line]
    if not begins:
        return source, ""
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        raise ValueError(f"expected one {BEGIN_HIDDEN} ... {END_HIDDEN} block, found {len(begins)} and {len(ends)}")
    (begin,), (end,) = begins, ends
    if lines[begin].strip() != BEGIN_HIDDEN or lines[begin] != lines[begin].lstrip():
        raise ValueError(f"the hidden block must start at the left margin with {BEGIN_HIDDEN!r}, "
                         f"found {lines[begin]!r}: move it out of any indented block")
    if any(line.strip() for line in lines[end + 1:]):
        raise ValueError(f"the hidden block must end the cell; lines follow {END_HIDDEN!r}")
    return "\n".join(lines[:begin] + lines[end + 1:]), "\n".join(lines[begin + 1:end])


def split_hidden(nb: dict) -> dict:
    """A copy of ``nb`` with each graded test cell cut in two: its visible part, keeping the grade_id
    (what the released student notebook runs), and then its hidden part, graded as ``hidden_id(grade_id)``.

    Run through ``grader.execute.run_trimmed``, the results then say for each test cell whether its
    visible checks failed and whether its hidden ones did: the whole cell fails when either does.
    """
    out = copy.deepcopy(nb)
    cells = []
    for cell in out["cells"]:
        cells.append(cell)
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if not (meta.get("grade") and cell["cell_type"] == "code"):
            continue
        source = "".join(cell["source"])
        try:
            visible, hidden = split_source(source)
        except ValueError as error:
            raise ValueError(f"test cell {meta.get('grade_id')}: {error}") from None
        if not hidden:
            continue
        cell["source"] = visible
        part = copy.deepcopy(cell)
        part["id"] = f"{cell.get('id', meta['grade_id'])}-hidden"
        part["source"] = hidden
        part["metadata"]["nbgrader"] = {**meta, "grade_id": hidden_id(meta["grade_id"])}
        cells.append(part)
    out["cells"] = cells
    return out


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
