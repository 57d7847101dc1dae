"""What a student handed in, read without trusting it: which notebook, whether it is one, what it ships.

Also the state of the course's own files, taken before and after a submission runs, to see whether it
changed any of them.
"""
from __future__ import annotations

import json
from pathlib import Path

from grader.cells import source

# Module names a submission may not ship beside its notebook: the kernel would import them instead of
# the course's or a library's own.
SHADOWED = {"utils", "grader", "torch", "torchvision", "einops", "numpy", "matplotlib", "IPython", "ipykernel",
            "ipykernel_launcher", "nbgrader", "nbclient", "jupyter_client", "traitlets", "zmq", "sitecustomize",
            "usercustomize", "tqdm", "ipywidgets", "matplotlib_inline", "builtins", "sys", "os", "math", "types"}
# The course's files and folders (under its root) that no submission may change.
COURSE_FILES = ("utils", "grader", "solutions", "judge", "source", "notebooks", "release", "submitted",
                "nbgrader_config.py", "Makefile", "pyproject.toml")


def find_notebook(submission_dir: Path, assignment: str) -> tuple[Path | None, list[str]]:
    """The notebook to grade in ``submission_dir`` and notes about the choice.

    The one named ``<assignment>.ipynb`` if there is one, else the first (by path) in the folder's top
    level whose name starts like the assignment's number, else the first there, else the first below.
    Checkpoints and links are skipped. (None, [why]) when there is no folder or no notebook.
    """
    folder = Path(submission_dir)
    if not folder.is_dir():
        return None, [f"no submission folder {folder}"]
    found = sorted(p for p in folder.rglob("*.ipynb")
                   if ".ipynb_checkpoints" not in p.parts and p.is_file() and not p.is_symlink())
    if not found:
        return None, ["no notebook in the submission folder"]
    exact = [p for p in found if p.name == f"{assignment}.ipynb"]
    if exact:
        chosen = exact[0]
    else:
        top = [p for p in found if p.parent == folder] or found
        named = [p for p in top if p.stem.startswith(assignment.split("_")[0])]
        chosen = (named or top)[0]
    notes = []
    if chosen.name != f"{assignment}.ipynb":
        notes.append(f"graded {chosen.relative_to(folder)} (the notebook was renamed)")
    if len(found) > 1:
        notes.append(f"{len(found)} notebooks in the folder; graded {chosen.relative_to(folder)}")
    return chosen, notes


def read_notebook(path: Path) -> dict:
    """The notebook at ``path`` as a dict, checked to be a list of code, markdown or raw cells with text sources.

    Raises:
        OSError, UnicodeDecodeError: the file cannot be read as UTF-8 text.
        ValueError: it is not JSON, or not a notebook (the message says what is wrong).
    """
    raw = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        raise ValueError("not a notebook (no list of cells)")
    for cell in raw["cells"]:
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw"):
            raise ValueError("a cell is not a notebook cell")
        if not isinstance(source(cell), str):
            raise ValueError("a cell's source is not text")
    return raw


def shadowing_modules(submission_dir: Path) -> list[str]:
    """Sorted names of the files and folders in ``submission_dir`` that would shadow a module in ``SHADOWED``."""
    return sorted({p.name for p in Path(submission_dir).iterdir()
                   if (p.stem if p.suffix in (".py", ".pth", ".so") else p.name) in SHADOWED})


def course_state(course_root: Path, skip: list[Path]) -> dict[str, tuple[int, int]]:
    """path -> (size in bytes, mtime in ns) of each course file a submission must not change.

    Paths under a folder of ``skip`` and ``__pycache__`` folders are left out, and so are files that
    vanish while being read.
    """
    state = {}
    root = Path(course_root)
    skip = [p.resolve() for p in skip]
    for name in COURSE_FILES:
        top = root / name
        paths = [top] if top.is_file() else (top.rglob("*") if top.is_dir() else [])
        for path in paths:
            try:
                resolved = path.resolve()
                if any(resolved == s or s in resolved.parents for s in skip) or "__pycache__" in path.parts:
                    continue
                st = path.stat()
                state[str(path)] = (st.st_size, st.st_mtime_ns)
            except OSError:
                continue
    return state


def changed_files(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> list[str]:
    """Sorted paths whose state differs between two ``course_state`` results (added and removed included)."""
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
