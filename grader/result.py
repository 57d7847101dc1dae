"""What grading one submission gives: its status and the ``SubmissionResult``, and where it is kept.

A graded result is kept in two places, each written once, by one writer: the gradebook (scores,
status, flags, messages; ``grader.gradebook``, read by ``make grades`` and ``make report``) and the
executed notebook's metadata, ``metadata["course_grader"]["result"]`` (``attach_result``; the class-wide
runner stores that notebook as ``autograded/<student>/<id>/<id>.ipynb``). ``read_result`` and
``result_in`` are the only readers of a stored result: ``make feedback`` and nbgrader's Generate
Feedback (``grader.nbgrader_hooks``) both go through them.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from pathlib import Path


class Status(StrEnum):
    """How a grading ended. Each member is its string ("graded", ...), as stored in JSON and the gradebook."""

    GRADED = "graded"                 # the notebook ran (test cells may still have failed)
    TIMEOUT = "timeout"               # a cell or the notebook ran out of time, or waited on every attempt
    CRASHED = "crashed"               # the kernel died, or used too many processes or too much output
    OUT_OF_MEMORY = "out_of_memory"
    UNREADABLE = "unreadable"         # the file handed in is not a notebook
    STALLED = "stalled"               # no CPU and no message, at different cells on every attempt
    MISSING = "missing"               # no notebook was handed in


@dataclass
class SubmissionResult:
    student: str
    assignment: str
    status: str            # a Status
    cells: dict[str, tuple[float, float]]   # grade_id -> (score, max_score), every graded cell
    messages: dict[str, str]                # grade_id -> what the student sees for a failed check
    flags: list[str]                        # reasons for review
    seconds: float
    log: str                                # short human-readable log
    executed_notebook: Path | None          # the executed, rebuilt notebook (instructor-only)
    # True when the kernel stalled on every attempt: a lost message and the submission's own wait
    # (``time.sleep`` for ever) look the same, so the class-wide runner grades it once more on its
    # next run before the result stands.
    regrade: bool = False

    @property
    def score(self) -> float:
        return sum(s for s, _ in self.cells.values())

    @property
    def max_score(self) -> float:
        return sum(m for _, m in self.cells.values())

    def to_json(self) -> str:
        data = asdict(self)
        data["executed_notebook"] = str(self.executed_notebook) if self.executed_notebook else None
        data["cells"] = {k: list(v) for k, v in self.cells.items()}
        return json.dumps(data, indent=1)

    @classmethod
    def from_json(cls, text: str) -> "SubmissionResult":
        """The result ``to_json`` wrote. Raises ValueError for text that is not JSON, KeyError for a missing field."""
        data = json.loads(text)
        data["cells"] = {k: (float(v[0]), float(v[1])) for k, v in data["cells"].items()}
        data["executed_notebook"] = Path(data["executed_notebook"]) if data["executed_notebook"] else None
        data.setdefault("regrade", False)  # results written before the field existed
        return cls(**data)


def attach_result(nb: dict, result: SubmissionResult) -> None:
    """Store ``result`` in the executed notebook ``nb``'s metadata (in place), the one file that keeps it.

    The notebook's own path is not stored: ``read_result`` gives the path it read the result from.
    """
    data = json.loads(result.to_json())
    data["executed_notebook"] = None
    nb["metadata"]["course_grader"] = {"result": data}


def result_in(nb: dict) -> SubmissionResult | None:
    """The result ``attach_result`` stored in notebook ``nb`` (its ``executed_notebook`` unset), or None
    when the course's grader did not grade it. Raises ValueError or KeyError for a damaged result."""
    stored = nb.get("metadata", {}).get("course_grader", {}).get("result")
    return SubmissionResult.from_json(json.dumps(stored)) if stored else None


def read_result(path: Path) -> SubmissionResult | None:
    """The result stored in the executed notebook at ``path``, with ``executed_notebook`` set to ``path``;
    None when the course's grader did not grade it.

    Raises OSError for a file that cannot be read, ValueError or KeyError for one that is not a notebook
    or holds a damaged result.
    """
    path = Path(path)
    result = result_in(json.loads(path.read_text(encoding="utf-8")))
    legacy = path.with_name("result.json")
    if result is None and legacy.is_file():
        # Folders graded before the notebook carried its result kept it in a result.json beside it.
        result = SubmissionResult.from_json(legacy.read_text(encoding="utf-8"))
    return None if result is None else replace(result, executed_notebook=path)
