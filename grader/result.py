"""What grading one submission gives: its status and the ``SubmissionResult``."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
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
