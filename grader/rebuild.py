"""Rebuild a submission into the notebook the grader runs: the student's answers in the instructor's cells.

    plan = rebuild(student_nb, spec, course_root / "utils")

In order: choose one copy of each answer cell; walk the student's cells, replacing every locked cell
(setup, tests) by the instructor's and flagging metadata or tests edited by hand; put back the locked
cells the student deleted; scan the student's code for anything that reaches for the grader or copies
the course's ``utils``. Nothing the submission's metadata claims (points, grade ids, locks) is believed.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import nbformat

from grader import tamper
from grader.cells import meta, norm, source
from grader.spec import AssignmentSpec

# The nbgrader fields a student cannot change without the grader noticing.
LOCKED_FIELDS = ("grade", "solution", "locked", "points", "task")


@dataclass
class Plan:
    """The rebuilt notebook and, per cell, who wrote it and what grading needs to know."""

    nb: nbformat.NotebookNode
    kinds: list[str]                          # "student", "answer", "fixed", "test", "markdown"
    grade_ids: list[str | None]
    flags: list[str]
    notes: list[str]
    zeroed: dict[str, str]                    # test cell -> why it scores nothing whatever happens
    taint_from: dict[int, str]                # cell index -> tampering found statically in it


def choose_answers(student: dict, spec: AssignmentSpec) -> tuple[dict[str, str], list[str], list[str]]:
    """answer cell -> the source graded for it, with flags and notes about the choice.

    Of several copies of one answer cell, the last one with code (not the stub) is graded; copies with
    different code are flagged, a blank copy beside one with code only noted.
    """
    flags: list[str] = []
    notes: list[str] = []
    copies: dict[str, list[str]] = {}
    for cell in student.get("cells", []):
        gid = meta(cell).get("grade_id")
        if gid in spec.answers:
            copies.setdefault(gid, []).append(source(cell))
    chosen: dict[str, str] = {}
    for gid, sources in copies.items():
        distinct = list(dict.fromkeys(s for s in sources if norm(s) != norm(spec.answers[gid])))
        if len(sources) > 1:
            if len(distinct) <= 1:
                notes.append(f"answer cell {gid} appears {len(sources)} times; graded the one with code")
            else:
                flags.append(f"duplicate answer cell {gid}: {len(sources)} copies with different code; graded the last")
        chosen[gid] = distinct[-1] if distinct else sources[0]
    return chosen, flags, notes


class _Builder:
    """The cells of the notebook being rebuilt, what each is, and what was found on the way."""

    def __init__(self, spec: AssignmentSpec, chosen: dict[str, str], flags: list[str], notes: list[str]):
        self.spec, self.chosen, self.flags, self.notes = spec, chosen, flags, notes
        self.inst = {meta(c)["grade_id"]: c for c in spec.nb["cells"] if meta(c).get("grade_id")}
        self.cells: list[dict] = []
        self.kinds: list[str] = []
        self.gids: list[str | None] = []
        self.placed: set[str] = set()
        self.zeroed: dict[str, str] = {}
        self.taint: dict[int, str] = {}

    def add(self, cell: dict, kind: str, gid: str | None = None) -> None:
        self.cells.append(cell)
        self.kinds.append(kind)
        self.gids.append(gid)

    def merge(self, cell: dict) -> None:
        """Add one of the student's cells: the instructor's in its place if it carries a known grade id."""
        gid = meta(cell).get("grade_id")
        if not (gid and gid in self.inst):
            self._add_student(cell, gid)
            return
        if gid in self.placed:
            return
        self.placed.add(gid)
        icell = self.inst[gid]
        self._check_metadata(cell, icell, gid)
        if gid in self.spec.answers:
            new = copy.deepcopy(icell)
            new["source"] = self.chosen.get(gid, source(cell))
            self.add(new, "answer", gid)
            return
        points = self.spec.points
        if gid in points and norm(source(cell)) not in (norm(self.spec.visible[gid]), norm(source(icell))):
            self.flags.append(f"tampering: test cell {gid} was edited (the original was restored)")
            self.zeroed[gid] = f"test cell {gid} was edited"
        elif gid not in points and icell["cell_type"] == "code" and norm(source(cell)) != norm(source(icell)):
            self.notes.append(f"locked cell {gid} was edited; the original was restored")
        self.add(copy.deepcopy(icell), "test" if gid in points else "fixed", gid)

    def _add_student(self, cell: dict, gid: str | None) -> None:
        new = copy.deepcopy(cell)
        if gid:
            self.flags.append(f"tampering: cell with unknown grade id {gid!r} (graded as ordinary code)")
        new.get("metadata", {}).pop("nbgrader", None)
        ctype = cell.get("cell_type")
        if ctype == "code":
            self.add(new, "student")
        else:
            self.add(new, "markdown" if ctype == "markdown" else "other")

    def _check_metadata(self, cell: dict, icell: dict, gid: str) -> None:
        """Flag nbgrader metadata or a cell type changed by hand; the tests that depend on it score 0."""
        imeta, ctype = meta(icell), cell.get("cell_type")
        released = {k: imeta.get(k) for k in LOCKED_FIELDS}
        given = {k: meta(cell).get(k) for k in LOCKED_FIELDS}
        if imeta.get("grade") is False or imeta.get("grade") is None:
            released.pop("points"), given.pop("points")
        if given == released and ctype == icell["cell_type"]:
            return
        changed = sorted(k for k in released if given.get(k) != released.get(k))
        if ctype != icell["cell_type"]:
            changed.append("cell type")
        self.flags.append(f"tampering: metadata of cell {gid} changed by hand ({', '.join(changed)})")
        for test in ([gid] if gid in self.spec.points else self.spec.tests_of.get(gid, [])):
            self.zeroed[test] = f"the metadata of cell {gid} was changed by hand"

    def restore_missing(self) -> None:
        """Put back the locked cells the student deleted, after the instructor cell that came before each."""
        order = self.spec.order
        for position, gid in enumerate(order):
            if gid in self.placed:
                continue
            if gid in self.spec.answers:
                self.flags.append(f"answer cell {gid} is missing from the submission (its tests ran without it)")
                continue
            previous = [g for g in order[:position] if g in self.placed]
            index = max(i for i, g in enumerate(self.gids) if g == previous[-1]) + 1 if previous else 0
            self.cells.insert(index, copy.deepcopy(self.inst[gid]))
            self.kinds.insert(index, "test" if gid in self.spec.points else "fixed")
            self.gids.insert(index, gid)
            self.placed.add(gid)
            self.notes.append(f"cell {gid} was missing and was restored from the instructor's notebook")

    def scan(self, utils_dir: Path, check_copies: bool) -> None:
        """Read the student's code cells for tampering and (answers only) for the course's utils code."""
        imported: set[str] = set()
        for index, (cell, kind) in enumerate(zip(self.cells, self.kinds)):
            if kind not in ("student", "answer") or cell.get("cell_type") != "code":
                continue
            where = self.gids[index] or f"#{index + 1}"
            found = tamper.scan_source(source(cell), imported)
            if found:
                what = "; ".join(str(f) for f in found[:3])
                self.flags.append(f"tampering: {what} in cell {where}")
                self.taint[index] = what
            if kind == "answer" and check_copies:
                copied = tamper.copied_utils(source(cell), utils_dir, self.spec.allowed_defs)
                if copied:
                    self.flags.append(f"copied utils code in cell {where}: {', '.join(copied)}")
                    for test in self.spec.tests_of.get(self.gids[index], []):
                        self.zeroed.setdefault(test, f"the answer in {where} is the course's utils code")

    def notebook(self) -> nbformat.NotebookNode:
        """The cells as a fresh notebook: no outputs, ids ``c0000``..., each cell's kind in its metadata."""
        spec = self.spec
        nb = nbformat.from_dict({"cells": self.cells, "metadata": copy.deepcopy(spec.nb.get("metadata", {})),
                                 "nbformat": 4, "nbformat_minor": spec.nb.get("nbformat_minor", 5)})
        for index, cell in enumerate(nb.cells):
            cell.setdefault("metadata", {})
            cell.metadata["course_grader"] = {"kind": self.kinds[index]}
            if cell.cell_type == "code":
                cell.outputs = []
                cell.execution_count = None
                cell.pop("attachments", None)
            cell.id = f"c{index:04d}"
        return nb


def rebuild(student: dict, spec: AssignmentSpec, utils_dir: Path, check_copies: bool = True) -> Plan:
    """The notebook to run: the student's answers inside the instructor's locked cells.

    ``student`` is the submitted notebook as a dict; ``check_copies`` False skips the comparison of the
    answers with ``utils_dir``'s code. Flags and notes come in the order the steps found them.
    """
    chosen, flags, notes = choose_answers(student, spec)
    builder = _Builder(spec, chosen, flags, notes)
    for cell in student.get("cells", []):
        builder.merge(cell)
    builder.restore_missing()
    builder.scan(utils_dir, check_copies)
    return Plan(builder.notebook(), builder.kinds, builder.gids, flags, notes, builder.zeroed, builder.taint)
