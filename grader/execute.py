"""Run a notebook quickly up to one graded cell: slow cells skipped, one kernel reused.

The test suite runs every plausible wrong answer (grader/answer_sets/mutants/) and every right
answer written differently (grader/answer_sets/equivalents/) this way, and ``grader.rubric`` captures
what a student sees.
"""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from grader.cells import meta as nbgrader_meta


def is_slow(cell: dict) -> bool:
    """Cells that train or sample are tagged "slow"; no graded cell may depend on them."""
    return "slow" in cell.get("metadata", {}).get("tags", [])


class KernelPool:
    """One long-lived kernel per key, so many trimmed runs of a notebook skip the kernel start and
    the imports; each run starts with ``%reset -f``, which empties the namespace."""

    def __init__(self):
        self._managers = {}

    def get(self, key: str, cwd: Path):
        from jupyter_client.manager import KernelManager

        if key not in self._managers:
            km = KernelManager(kernel_name="python3")
            km.start_kernel(cwd=str(cwd))
            self._managers[key] = km
        return self._managers[key]

    def shutdown(self) -> None:
        for km in self._managers.values():
            km.shutdown_kernel(now=True)
        self._managers.clear()


def run_trimmed(nb: dict, until_grade_id: str, cwd: Path, timeout: int = 120, km=None) -> dict[str, str | None]:
    """Execute ``nb`` up to and including cell ``until_grade_id``, skipping cells tagged "slow".

    With ``km`` (a started KernelManager) the run reuses that kernel after resetting its namespace.
    Returns, for each graded test cell that ran, None if it passed or the error's name and text.
    """
    cells = [{"cell_type": "code", "id": "reset", "metadata": {}, "source": "%reset -f", "outputs": [],
              "execution_count": None}] if km is not None else []
    for cell in nb["cells"]:
        if not is_slow(cell):
            cells.append(cell)
        if nbgrader_meta(cell).get("grade_id") == until_grade_id:
            break
    else:
        raise KeyError(f"no cell with grade_id {until_grade_id!r}")
    trimmed = nbformat.reads(json.dumps({**nb, "cells": cells}), as_version=4)
    client = NotebookClient(trimmed, timeout=timeout, kernel_name="python3", allow_errors=True, km=km,
                            resources={"metadata": {"path": str(cwd)}})
    client.execute()
    results = {}
    for cell in trimmed.cells:
        meta = nbgrader_meta(cell)
        if meta.get("grade") and cell.cell_type == "code":
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            results[meta["grade_id"]] = (f"{errors[0]['ename']}: {errors[0]['evalue']}" if errors else None)
    return results
