"""Which finished version in ``utils`` each answer cell must not reach, and the kernel's watch on it.

The course keeps finished versions of what the notebooks teach in ``utils``; later notebooks import
them. An answer cell that hands its work to the finished version of what it asks for (through an
alias, ``importlib``, ``getattr``, a copied method or ``__dict__``, a subclass, a wrapper) scores 0 for
its tests and is flagged. What is finished for an answer is read from the code: every ``utils``
function or class with the name the answer defines (``DownBlock`` in 01 and 03: ``utils.basic_unet``'s
and ``utils.unet_utils``'s), the methods of ``utils`` classes with that name (``DDPM.q_sample`` and its
``_q_sample`` for 02's ``q_sample``), and the few that bear another name (``RENAMED``). Everything else
in ``utils`` stays free to use: the notebook's imported helpers, and the finished versions of what
other cells and earlier notebooks taught (04's ``conditional_loss`` may call ``DDPM.training_loss``).

``grader.reach_kernel`` does the looking, in the kernel; this module builds its table and the code
that installs it.
"""
from __future__ import annotations

import ast
import functools
from pathlib import Path

from grader import kernel_code

# Answers whose finished version has another name: the name the answer defines -> targets.
RENAMED = {
    "make_schedule": ("utils.ddpm_utils:DDPM.__init__",),      # 02: DDPM computes the schedule
    "linear_schedule": ("utils.ddpm_utils:DDPM.__init__",),    # 06
    "UNet28": ("utils.unet_utils:UNet",),                       # 06: the course's U-Net at 28 x 28
    "sample_images": ("utils.guidance:guided_sample",),         # 06: the course's guided sampler
}
# Modules that hold no finished answer (the checks themselves).
NOT_ANSWERS = {"grading"}
KERNEL_SOURCE = Path(__file__).with_name("reach_kernel.py")


@functools.lru_cache(maxsize=8)
def _utils_index(utils_dir: str, stamp: tuple) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(name -> module-level targets, name -> method targets) over the ``utils`` package."""
    top: dict[str, list[str]] = {}
    methods: dict[str, list[str]] = {}
    for path in sorted(Path(utils_dir).glob("*.py")):
        if path.stem in NOT_ANSWERS or path.stem.startswith("_"):
            continue
        try:
            tree = ast.parse(path.read_text())
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                top.setdefault(node.name, []).append(f"utils.{path.stem}:{node.name}")
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        methods.setdefault(item.name, []).append(f"utils.{path.stem}:{node.name}.{item.name}")
    return top, methods


def _definitions(source: str) -> dict[str, bool]:
    """Name -> is a class, for the classes and functions defined at the top of an answer cell's code."""
    lines = [line if not line.lstrip().startswith(("%", "!")) else "" for line in source.splitlines()]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return {}
    return {n.name: isinstance(n, ast.ClassDef) for n in tree.body
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


def targets_for(names: list[str], utils_dir: Path, is_class: dict[str, bool]) -> list[str]:
    """The finished versions of the answers called ``names`` (``module:qualname`` strings)."""
    files = sorted(Path(utils_dir).glob("*.py"))
    top, methods = _utils_index(str(utils_dir), tuple((p.name, p.stat().st_mtime_ns) for p in files))
    found: list[str] = []
    for name in names:
        found += top.get(name, [])
        if not is_class.get(name):
            found += methods.get(name, []) + methods.get("_" + name, [])
        found += RENAMED.get(name, ())
    return list(dict.fromkeys(found))


def answer_table(cells: dict[str, str], utils_dir: Path) -> dict[str, dict]:
    """grade id -> {"names": what the answer defines, "targets": its finished versions}, for each
    answer cell (``cells``: grade id -> the instructor's source) that has a finished version."""
    table = {}
    for gid, source in cells.items():
        kinds = _definitions(source)
        targets = targets_for(list(kinds), utils_dir, kinds)
        if targets:
            table[gid] = {"names": list(kinds), "targets": targets}
    return table


def install_code(name: str, table: dict[str, dict], trusted_sources: list[str], cell_prefixes: list[str]) -> str:
    """Code that installs the watch in the kernel as ``sys.modules[name].watch`` (its code's file name is
    ``<course-watch>``, so its frames are never the student's)."""
    return kernel_code.install_code(name, KERNEL_SOURCE, "Watch", [table, trusted_sources, cell_prefixes], "watch")


def begin_expression(name: str, gid: str, inspect: bool) -> str:
    """Before a cell: (``inspect``) what the objects of answer ``gid`` hold, then watch it run."""
    namespace = "get_ipython().user_ns" if inspect else "None"
    return f"__import__('sys').modules[{name!r}].watch.begin({gid!r}, {namespace})"


def end_expression(name: str, gid: str, inspect: bool) -> str:
    """After a cell: what was seen while it ran, and (``inspect``) what the objects of answer ``gid`` hold."""
    namespace = "get_ipython().user_ns" if inspect else "None"
    return f"__import__('sys').modules[{name!r}].watch.end({gid!r}, {namespace})"
