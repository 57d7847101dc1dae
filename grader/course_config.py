"""What the grader takes from the course's ``nbgrader_config.py``, read in one place.

``nbgrader_config`` is the only reader of that file: it loads it as nbgrader itself does (traitlets
runs it), so the grader sees the same values as ``nbgrader`` and the Formgrader. From it come the
gradebook's settings (``course_settings``: the database and the course id, for ``grader.batch``,
``grader.gradebook`` and ``python -m grader``) and the cell timeout of each grading
(``cell_timeout``, for ``grader.grade_one.default_limits``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CONFIG_FILE = "nbgrader_config.py"


def nbgrader_config(course_root: Path):
    """The course's ``nbgrader_config.py`` as a traitlets ``Config`` (empty when the folder has none)."""
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    if not (Path(course_root) / CONFIG_FILE).exists():
        return Config()
    return PyFileConfigLoader(CONFIG_FILE, path=str(course_root)).load_config()


@dataclass(frozen=True)
class CourseSettings:
    """What the gradebook needs from a course's nbgrader_config.py."""

    root: Path
    db_url: str
    course_id: str


def course_settings(course_root: Path, db_url: str | None = None) -> CourseSettings:
    """Read ``db_url`` and ``course_id`` from ``course_root/nbgrader_config.py``; ``db_url`` overrides.

    Raises FileNotFoundError when the folder has no nbgrader_config.py.
    """
    course_root = Path(course_root).resolve()
    if not (course_root / CONFIG_FILE).exists():
        raise FileNotFoundError(f"{course_root} has no {CONFIG_FILE}; pass the course folder")
    coursedir = nbgrader_config(course_root).get("CourseDirectory", {})
    url = db_url or coursedir.get("db_url") or f"sqlite:///{course_root / 'gradebook.db'}"
    return CourseSettings(course_root, url, coursedir.get("course_id", ""))


def cell_timeout(course_root: Path) -> float | None:
    """``c.Execute.timeout`` of the course's nbgrader_config.py in seconds, or None where it sets no positive
    number (no file, not set, or nbgrader's "no limit", None or -1, which the grader does not give)."""
    timeout = nbgrader_config(course_root).get("Execute", {}).get("timeout")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        return None
    return float(timeout)
