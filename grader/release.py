"""Generate the student notebooks (notebooks/) from the instructor ones (solutions/) with nbgrader.

    python -m grader.release 03_Optimizations [more ids]      (what ``make release`` runs)

Student versions are never edited by hand: change solutions/<id>/<id>.ipynb and release again.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from grader.log import setup
from utils.data import COURSE_ROOT


def nbgrader_env() -> dict:
    """The environment for nbgrader commands: this Python's bin/ first on PATH (for alembic)."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def run_nbgrader(args: list[str], course_root: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``nbgrader ARGS`` in ``course_root`` (whose nbgrader_config.py applies)."""
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course_root, env=nbgrader_env(),
                            capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def clean_notebook(path: Path) -> None:
    """Strip outputs and execution counts and write the notebook in a stable form."""
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n")


def release(assignment: str, course_root: Path = COURSE_ROOT) -> Path:
    """Generate the student version of ``assignment``; return the path of its notebook."""
    source = course_root / "solutions" / assignment / f"{assignment}.ipynb"
    if not source.exists():
        raise FileNotFoundError(f"no instructor notebook at {source}")
    run_nbgrader(["generate_assignment", assignment, "--force"], course_root)
    released = course_root / "notebooks" / assignment / f"{assignment}.ipynb"
    clean_notebook(released)
    return released


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m grader.release ASSIGNMENT_ID [...]", file=sys.stderr)
        return 2
    setup()
    for assignment in argv:
        print(f"released {release(assignment).relative_to(COURSE_ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
