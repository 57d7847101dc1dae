"""Grade one submission, whatever it contains, from the instructor's own test cells.

    grade_submission(course_root, "01_UNets", "alice", submission_dir=..., workdir=...)

What happens, in order:

1. The notebook is the one ``.ipynb`` in the submission folder, whatever its name
   (``01_UNets (1).ipynb`` is fine). None: status "missing"; not a notebook: "unreadable".
2. The trusted side rebuilds it from the instructor notebook (``solutions/<id>/<id>.ipynb``): the
   student's answer cells are kept, every locked cell (setup, tests) is the instructor's, test
   cells the student deleted are put back, duplicated answer cells are resolved, and nothing the
   submission's metadata claims (points, grade ids, locks) is believed. Hand-edited metadata and
   edited tests are flagged.
3. The student's code is read for anything that reaches for the grader (``grader.tamper``) and
   compared with the course's ``utils`` code.
4. The rebuilt notebook runs in a fresh kernel in the sandbox (``grader.sandbox``), one cell at
   a time; the hidden part of each test cell runs as a separate request, so the grader knows
   whether a failure was visible or hidden. After each cell a probe reports what changed in the
   kernel. A kernel with no CPU and no message for ``Limits.stall_seconds`` has stalled: it is
   killed and the submission graded again from the start. A stall on every attempt gives status
   "timeout" (the same cell each time) or "stalled" with ``result.regrade`` set: the gradebook has
   the next run grade it once more, and only a second such result at the same hash stands.
5. Each test cell scores its points if it ran without an error and no tampering came before it,
   else 0. A kernel that dies, runs out of time or memory keeps the points of the cells before.

The result is a ``SubmissionResult``; ``workdir`` receives ``result.json`` (the result) and
``executed.ipynb`` (the rebuilt notebook with its outputs and, in its metadata, the result;
instructor-only: it holds the hidden tests; ``grader.feedback`` makes the student's page from it
without them). Nothing is written to
the gradebook. ``grade_submission`` never raises for anything a submission does.

For the class-wide runner: store ``result.cells`` in the gradebook and the executed notebook under
``autograded/<student>/<id>/`` (``make feedback`` reads the result from its metadata, or from a
``result.json`` beside it), and get an assignment's graded cells and points, without a kernel, from
``graded_cells(course_root, assignment)``.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import nbformat

from grader import finished
from grader import sandbox as sb
from grader import tamper
from grader.sandbox import Limits

SHADOWED = {"utils", "grader", "torch", "torchvision", "einops", "numpy", "matplotlib", "IPython", "ipykernel",
            "ipykernel_launcher", "nbgrader", "nbclient", "jupyter_client", "traitlets", "zmq", "sitecustomize",
            "usercustomize", "tqdm", "ipywidgets", "matplotlib_inline", "builtins", "sys", "os", "math", "types"}
STATUSES = ("graded", "timeout", "crashed", "out_of_memory", "unreadable", "stalled", "missing")
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
HIDDEN_FAILED = ("A hidden test of this cell failed: your code passes the visible checks but not on the other "
                 "inputs the grader tries. Check that it works for any sizes and in both training and "
                 "evaluation mode, not only for the example above.")
_LOUD = "WARNING: GRADED WITHOUT A SANDBOX"


@dataclass
class SubmissionResult:
    student: str
    assignment: str
    status: str            # one of STATUSES
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
        data = json.loads(text)
        data["cells"] = {k: (float(v[0]), float(v[1])) for k, v in data["cells"].items()}
        data["executed_notebook"] = Path(data["executed_notebook"]) if data["executed_notebook"] else None
        data.setdefault("regrade", False)  # results written before the field existed
        return cls(**data)


# ---------------------------------------------------------------- the assignment, from the instructor

def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def _source(cell) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _replace_region(source: str, begin: str, end: str, replacement: str | None) -> str:
    """Replace the lines from ``begin`` to ``end`` (inclusive) by ``replacement`` indented like ``begin``."""
    out, inside = [], False
    for line in source.splitlines():
        if line.strip() == begin:
            inside = True
            if replacement is not None:
                indent = line[: len(line) - len(line.lstrip())]
                out.extend(indent + r for r in replacement.splitlines())
        elif line.strip() == end:
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out)


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
        return next(c for c in self.nb["cells"] if _meta(c).get("grade_id") == grade_id)


def instructor_notebook(course_root: Path, assignment: str) -> Path:
    return Path(course_root) / "solutions" / assignment / f"{assignment}.ipynb"


@lru_cache(maxsize=32)
def _load_spec(path: str, mtime: float) -> AssignmentSpec:
    nb = json.loads(Path(path).read_text())
    order, points, answers, visible, hidden, tests_of = [], {}, {}, {}, {}, {}
    allowed: set[str] = set()
    current = None
    for cell in nb["cells"]:
        meta = _meta(cell)
        gid = meta.get("grade_id")
        if not gid:
            continue
        order.append(gid)
        source = _source(cell)
        if meta.get("solution"):
            answers[gid] = _replace_region(source, BEGIN_SOLUTION, END_SOLUTION, CODE_STUB)
            tests_of[gid] = []
            current = gid
            allowed.update(code for _, code in tamper.definitions(
                _replace_region(source, BEGIN_SOLUTION, END_SOLUTION, "").replace(BEGIN_SOLUTION, "")))
            allowed.update(code for _, code in tamper.definitions(
                source.replace(BEGIN_SOLUTION, "").replace(END_SOLUTION, "")))
        if meta.get("grade") and cell.get("cell_type") == "code":
            points[gid] = float(meta.get("points", 0))
            if BEGIN_HIDDEN in source:
                before, _, rest = source.partition(BEGIN_HIDDEN)
                inner, _, after = rest.partition(END_HIDDEN)
                visible[gid], hidden[gid] = before.rstrip() + "\n" + after.strip(), inner.strip("\n")
            else:
                visible[gid], hidden[gid] = source, ""
            visible[gid] = visible[gid].strip("\n")
            if current:
                tests_of[current].append(gid)
    return AssignmentSpec(Path(path).stem, Path(path), nb, order, points, answers, tests_of, visible, hidden, allowed)


def load_spec(course_root: Path, assignment: str) -> AssignmentSpec:
    path = instructor_notebook(course_root, assignment)
    if not path.exists():
        raise FileNotFoundError(f"no instructor notebook at {path}")
    return _load_spec(str(path), path.stat().st_mtime)


def graded_cells(course_root: Path, assignment: str) -> dict[str, float]:
    """grade_id -> max points of every graded cell of ``assignment``, in notebook order (cheap: no kernel)."""
    return dict(load_spec(course_root, assignment).points)


# ---------------------------------------------------------------- the submission

def find_notebook(submission_dir: Path, assignment: str) -> tuple[Path | None, list[str]]:
    """The notebook to grade in ``submission_dir`` and notes about the choice."""
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


def _norm(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def rebuild(student: dict, spec: AssignmentSpec, utils_dir: Path, check_copies: bool = True) -> Plan:
    """The notebook to run: the student's answers inside the instructor's locked cells."""
    flags: list[str] = []
    notes: list[str] = []
    zeroed: dict[str, str] = {}
    inst = {_meta(c)["grade_id"]: c for c in spec.nb["cells"] if _meta(c).get("grade_id")}
    copies: dict[str, list[str]] = {}
    for cell in student.get("cells", []):
        gid = _meta(cell).get("grade_id")
        if gid in spec.answers:
            copies.setdefault(gid, []).append(_source(cell))
    chosen: dict[str, str] = {}
    for gid, sources in copies.items():
        distinct = list(dict.fromkeys(s for s in sources if _norm(s) != _norm(spec.answers[gid])))
        if len(sources) > 1:
            if len(distinct) <= 1:
                notes.append(f"answer cell {gid} appears {len(sources)} times; graded the one with code")
            else:
                flags.append(f"duplicate answer cell {gid}: {len(sources)} copies with different code; graded the last")
        chosen[gid] = distinct[-1] if distinct else sources[0]

    cells: list[dict] = []
    kinds: list[str] = []
    gids: list[str | None] = []
    placed: set[str] = set()
    imported: set[str] = set()

    def add(cell, kind, gid=None):
        cells.append(cell)
        kinds.append(kind)
        gids.append(gid)

    for cell in student.get("cells", []):
        meta = _meta(cell)
        gid = meta.get("grade_id")
        ctype = cell.get("cell_type")
        if gid and gid in inst:
            if gid in placed:
                continue
            placed.add(gid)
            icell = inst[gid]
            imeta = _meta(icell)
            released_meta = {k: imeta.get(k) for k in ("grade", "solution", "locked", "points", "task")}
            given = {k: meta.get(k) for k in ("grade", "solution", "locked", "points", "task")}
            if imeta.get("grade") is False or imeta.get("grade") is None:
                released_meta.pop("points"), given.pop("points")
            if given != released_meta or ctype != icell["cell_type"]:
                changed = sorted(k for k in released_meta if given.get(k) != released_meta.get(k))
                if ctype != icell["cell_type"]:
                    changed.append("cell type")
                flags.append(f"tampering: metadata of cell {gid} changed by hand ({', '.join(changed)})")
                for test in ([gid] if gid in spec.points else spec.tests_of.get(gid, [])):
                    zeroed[test] = f"the metadata of cell {gid} was changed by hand"
            if gid in spec.answers:
                new = copy.deepcopy(icell)
                new["source"] = chosen.get(gid, _source(cell))
                add(new, "answer", gid)
            else:
                if gid in spec.points and _norm(_source(cell)) not in (_norm(spec.visible[gid]), _norm(_source(icell))):
                    flags.append(f"tampering: test cell {gid} was edited (the original was restored)")
                    zeroed[gid] = f"test cell {gid} was edited"
                elif gid not in spec.points and icell["cell_type"] == "code" and \
                        _norm(_source(cell)) != _norm(_source(icell)):
                    notes.append(f"locked cell {gid} was edited; the original was restored")
                add(copy.deepcopy(icell), "test" if gid in spec.points else "fixed", gid)
        else:
            new = copy.deepcopy(cell)
            if gid:
                flags.append(f"tampering: cell with unknown grade id {gid!r} (graded as ordinary code)")
            new.get("metadata", {}).pop("nbgrader", None)
            if ctype == "code":
                add(new, "student")
            else:
                add(new, "markdown" if ctype == "markdown" else "other")

    # Put back what the student deleted, after the instructor cell that came before it.
    for position, gid in enumerate(spec.order):
        if gid in placed:
            continue
        if gid in spec.answers:
            flags.append(f"answer cell {gid} is missing from the submission (its tests ran without it)")
            continue
        previous = [g for g in spec.order[:position] if g in placed]
        index = max(i for i, g in enumerate(gids) if g == previous[-1]) + 1 if previous else 0
        cells.insert(index, copy.deepcopy(inst[gid]))
        kinds.insert(index, "test" if gid in spec.points else "fixed")
        gids.insert(index, gid)
        placed.add(gid)
        notes.append(f"cell {gid} was missing and was restored from the instructor's notebook")

    taint: dict[int, str] = {}
    for index, (cell, kind) in enumerate(zip(cells, kinds)):
        if kind not in ("student", "answer") or cell.get("cell_type") != "code":
            continue
        where = gids[index] or f"#{index + 1}"
        found = tamper.scan_source(_source(cell), imported)
        if found:
            what = "; ".join(str(f) for f in found[:3])
            flags.append(f"tampering: {what} in cell {where}")
            taint[index] = what
        if kind == "answer" and check_copies:
            copied = tamper.copied_utils(_source(cell), utils_dir, spec.allowed_defs)
            if copied:
                flags.append(f"copied utils code in cell {where}: {', '.join(copied)}")
                for test in spec.tests_of.get(gids[index], []):
                    zeroed.setdefault(test, f"the answer in {where} is the course's utils code")

    nb = nbformat.from_dict({"cells": cells, "metadata": copy.deepcopy(spec.nb.get("metadata", {})),
                             "nbformat": 4, "nbformat_minor": spec.nb.get("nbformat_minor", 5)})
    for index, cell in enumerate(nb.cells):
        cell.setdefault("metadata", {})
        cell.metadata["course_grader"] = {"kind": kinds[index]}
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.pop("attachments", None) if cell.cell_type == "code" else None
        cell.id = f"c{index:04d}"
    return Plan(nb, kinds, gids, flags, notes, zeroed, taint)


# ---------------------------------------------------------------- running it

@dataclass
class Step:
    index: int          # cell index in the plan's notebook
    part: str           # "all", "visible" or "hidden"
    source: str


@dataclass
class Outcome:
    """What the trusted side observed while running a plan."""

    errors: dict[tuple[int, str], str] = field(default_factory=dict)   # (cell, part) -> "Name: message"
    ran: set[tuple[int, str]] = field(default_factory=set)
    tampered_at: int | None = None            # first cell after which the probe saw a change
    tamper_found: list[str] = field(default_factory=list)
    status: str = "graded"
    stopped_at: int | None = None              # cell where the run ended early
    reason: str = ""
    stalled_step: int | None = None
    truncated: bool = False
    probe_seconds: float = 0.0
    nudges: int = 0                            # times a kernel waiting idle was woken
    reached: dict[str, list[str]] = field(default_factory=dict)   # answer cell -> how it reached its finished version


def _nudge_kernel(connection_file: str) -> None:
    """Connect to the kernel afresh and ask for its info, then disconnect.

    ipykernel 7 can leave an execute request unread in its shell socket until some other client
    connects (ipython/ipykernel#1554): the kernel sits idle and the grader waits for a reply that
    never comes. A request from a new connection wakes the socket, and the waiting request runs.
    """
    from jupyter_client import BlockingKernelClient

    kc = BlockingKernelClient(connection_file=connection_file)
    try:
        kc.load_connection_file()
        kc.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
        kc.kernel_info()
        kc.get_shell_msg(timeout=5)
    except Exception:  # queue.Empty, a dead kernel: the stall limit decides what happens next
        pass
    finally:
        kc.stop_channels()


class _Watch:
    """Trusted-side watchdog: stall, memory, processes and output flood of one kernel tree.

    A kernel that waits idle while a cell is running is first nudged (``_nudge_kernel``), once per
    quiet spell, after ``nudge_seconds``; only if it still does nothing for ``stall_seconds`` is it
    killed as stalled.
    """

    def __init__(self, limits: Limits, connection_file: str | None = None):
        self.limits = limits
        self.connection_file = connection_file
        self.nudge_seconds = min(10.0, limits.stall_seconds / 3)
        self.nudges = 0
        self._nudged_since: float | None = None
        self.root: int | None = None
        self.mark = ""
        self.last_activity = time.monotonic()
        self.reason = ""
        self.output_bytes = 0
        self.busy = False
        self.last_message = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self, root: int, mark: str) -> None:
        self.root, self.mark = root, mark
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    def kill(self, reason: str) -> None:
        if not self.reason:
            self.reason = reason
        if self.root:
            sb.kill_tree(self.root, mark=self.mark)

    def _run(self) -> None:
        cpu_then, since = None, time.monotonic()
        while not self._stop.wait(0.25):
            if self.root is None:
                continue
            cpu, rss, processes = sb.tree_usage(self.root)
            if rss > self.limits.memory:
                self.kill("out_of_memory")
            elif processes > self.limits.processes:
                self.kill("processes")
            elif self.output_bytes > self.limits.output_flood:
                self.kill("output")
            now = time.monotonic()
            if cpu_then is None or cpu - cpu_then > 0.2 or not self.busy:
                cpu_then, since = cpu, now
            elif now - max(since, self.last_activity) > self.limits.stall_seconds:
                self.kill("stalled")
            elif (self.connection_file and now - max(since, self.last_activity) > self.nudge_seconds
                  and self._nudged_since != max(since, self.last_activity)):
                self._nudged_since = max(since, self.last_activity)
                self.nudges += 1
                _nudge_kernel(self.connection_file)


def _client_class():
    from nbclient import NotebookClient

    class TrustedClient(NotebookClient):
        watch: _Watch
        kept = 0

        def process_message(self, msg, cell, cell_index):
            self.watch.touch()
            content = msg.get("content", {})
            self.watch.last_message = msg.get("msg_type", "") + (
                f" {content.get('execution_state')}" if msg.get("msg_type") == "status" else "")
            size = len(json.dumps(content)) if msg.get("msg_type") in (
                "stream", "display_data", "execute_result", "error", "update_display_data") else 0
            self.watch.output_bytes += size
            if size and self.kept + size > self.watch.limits.output_kept and msg.get("msg_type") != "error":
                if not getattr(self, "truncated", False):
                    self.truncated = True
                    cell.outputs.append(nbformat.v4.new_output(
                        "stream", name="stdout", text="\n[output truncated by the grader]\n"))
                return None if msg.get("msg_type") != "status" else super().process_message(msg, cell, cell_index)
            self.kept += size
            return super().process_message(msg, cell, cell_index)

    return TrustedClient


def _kernel_manager(launcher: list[str], connection_dir: Path):
    from jupyter_client.manager import AsyncKernelManager

    class SandboxKernelManager(AsyncKernelManager):
        def format_kernel_cmd(self, extra_arguments=None):
            # -P: the working folder (the student's files) is not on the path while the kernel starts;
            # ipykernel puts it back afterwards, behind the modules the grader preloads.
            command = [sys.executable, "-P", "-m", "ipykernel_launcher", "-f", self.connection_file]
            return launcher + command + list(extra_arguments or [])

    km = SandboxKernelManager(kernel_name="python3", transport="ipc", ip=str(connection_dir / "k"))
    km.connection_file = str(connection_dir / "kernel.json")
    return km


def _steps(plan: Plan, spec: AssignmentSpec) -> list[Step]:
    steps = []
    for index, cell in enumerate(plan.nb.cells):
        if cell.cell_type != "code":
            continue
        gid = plan.grade_ids[index]
        if plan.kinds[index] == "test" and spec.hidden.get(gid):
            steps.append(Step(index, "visible", spec.visible[gid]))
            steps.append(Step(index, "hidden", spec.hidden[gid]))
        else:
            steps.append(Step(index, "all", _source(cell)))
    return steps


@lru_cache(maxsize=None)
def _font_list() -> Path | None:
    """matplotlib's font list (``fontlist-*.json``), built once per grading process.

    Each kernel starts with an empty matplotlib folder of its own; without this list there,
    ``import matplotlib.pyplot`` scans the system's fonts again (about half a second per submission).
    The kernel sees the same system fonts read-only, so the list built here is valid inside it.
    Returns None if it cannot be built (the kernel then builds its own).
    """
    from multiprocessing.util import Finalize

    folder = Path(tempfile.mkdtemp(prefix="course-fonts-"))
    # Removed when this process exits, also as a worker process (which skips atexit); never by a
    # forked child, which would otherwise delete its parent's copy.
    Finalize(None, shutil.rmtree, args=(folder,), kwargs={"ignore_errors": True}, exitpriority=0)
    env = {**os.environ, "MPLCONFIGDIR": str(folder), "MPLBACKEND": "agg"}
    try:
        # -I and an empty working folder: nothing but the environment's own matplotlib can load here
        subprocess.run([sys.executable, "-I", "-c", "import matplotlib.font_manager"], env=env, cwd=folder,
                       timeout=120, capture_output=True, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return next(folder.glob("fontlist-*.json"), None)


def _kernel_env(course_root: Path, work: Path, data: Path, mark: str, python_path: Path,
                matplotlib_dir: Path) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    env = {
        "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(work),
        "PYTHONPATH": str(python_path),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "COURSE_DATA_DIR": str(data),
        "COURSE_CHECKPOINT_DIR": str(work / "checkpoints"),
        "NBGRADER_EXECUTION": "autograde",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "MPLCONFIGDIR": str(matplotlib_dir),
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "IPYTHONDIR": "/tmp/ipython",
        "JUPYTER_RUNTIME_DIR": "/tmp/jupyter",
        sb.RUN_MARK: mark,
    }
    for key in ("COURSE_EAGER", "CUDA_VISIBLE_DEVICES"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def data_dir(course_root: Path) -> Path:
    return Path(os.environ.get("COURSE_DATA_DIR") or Path(course_root) / "data")


# Fault injection for the test suite only: student -> grade id of a cell before which the grader
# freezes the kernel (SIGSTOP) on the first attempt, as a lost message would leave it.
FREEZE_ONCE: dict[str, str] = {}


def run_plan(plan: Plan, spec: AssignmentSpec, course_root: Path, work: Path, *, use_sandbox: bool,
             limits: Limits, log: list[str], freeze_before: str | None = None) -> Outcome:
    """Run the plan once in a fresh kernel; report what the trusted side saw."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    outcome = Outcome()
    mark = secrets.token_hex(8)
    probe_name = "_course_probe_" + secrets.token_hex(6)
    watch_name = "_course_watch_" + secrets.token_hex(6)
    runtime = Path(tempfile.mkdtemp(prefix="cg", dir="/tmp"))
    course_root = Path(course_root).resolve()
    data = data_dir(course_root)
    if use_sandbox:
        python_path = course_root
        read_only = [Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent,
                     course_root / "utils", course_root / "judge", data]
    else:
        # Without the sandbox the kernel gets private copies, so the course's own files stay out of reach
        # of ordinary writes (nothing stops a determined one: that is what the sandbox is for).
        python_path = work.parent / "course"
        if not (python_path / "utils").exists():
            shutil.copytree(course_root / "utils", python_path / "utils",
                            ignore=shutil.ignore_patterns("__pycache__"))
            if (course_root / "judge").exists():
                (python_path / "judge").symlink_to(course_root / "judge")
        read_only = []
    matplotlib_dir = runtime / "matplotlib"
    matplotlib_dir.mkdir()
    fonts = _font_list()
    if fonts is not None:
        shutil.copy2(fonts, matplotlib_dir)  # its time too: a kernel that rebuilt it would change that
    env = _kernel_env(course_root, work, data, mark, python_path, matplotlib_dir)
    config = sb.launcher_config(sandbox=use_sandbox, read_only=read_only, writable=[work, runtime],
                                env=env, cwd=work, limits=limits)
    config_path = runtime / "launch.json"
    config_path.write_text(json.dumps(config))
    launcher = [sys.executable, "-m", "grader.sandbox", str(config_path), "--"]
    km = _kernel_manager(launcher, runtime)
    Client = _client_class()
    watch = _Watch(limits, km.connection_file)
    client = Client(plan.nb, km=km, timeout=int(limits.cell_timeout), allow_errors=True,
                    startup_timeout=120, interrupt_on_timeout=False, record_timing=False,
                    resources={"metadata": {"path": str(work)}}, coalesce_streams=True)
    client.watch = watch
    deadline = time.monotonic() + limits.notebook_timeout
    launcher_env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "HOME", "PYTHONPATH")}
    launcher_env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent) + (
        os.pathsep + launcher_env["PYTHONPATH"] if launcher_env.get("PYTHONPATH") else "")
    launcher_env[sb.RUN_MARK] = mark
    from jupyter_core.utils import run_sync

    def silent(code: str, expressions: dict | None = None, timeout: float = 120) -> dict:
        msg_id = client.kc.execute(code, silent=True, store_history=False, user_expressions=expressions or {})
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                reply = run_sync(client.kc.get_shell_msg)(timeout=1)
            except Exception:  # queue.Empty; the kernel is slow or dead
                if not run_sync(km.is_alive)():
                    raise DeadKernelError("kernel died")
                continue
            if reply.get("parent_header", {}).get("msg_id") == msg_id:
                return reply["content"]
        raise TimeoutError("no reply")

    steps = _steps(plan, spec)
    current = None
    try:
        kernel_log = open(work.parent / "kernel.log", "ab")
        with client.setup_kernel(env=launcher_env, cwd=str(work), stdout=kernel_log, stderr=kernel_log):
            root = km.provisioner.process.pid if km.provisioner else None
            watch.start(root, mark)
            watch.busy = True
            reply = silent(tamper.probe_install_code(probe_name))
            watch.busy = False
            if reply.get("status") != "ok":
                raise RuntimeError(f"the grader's probe did not start: {reply.get('ename')}: {reply.get('evalue')}")
            watched = _install_watch(plan, spec, course_root, steps, silent, watch_name)
            for position, step in enumerate(steps):
                current = step
                remaining = deadline - time.monotonic()
                if remaining <= 1:
                    outcome.status, outcome.reason = "timeout", "the notebook ran out of time"
                    outcome.stopped_at = step.index
                    break
                client.timeout = int(max(1, min(limits.cell_timeout, remaining)))
                cell = plan.nb.cells[step.index]
                if freeze_before and plan.grade_ids[step.index] == freeze_before and root:
                    freeze_before = None
                    for pid in [root, *sb.descendants(root)]:
                        try:
                            os.kill(pid, signal.SIGSTOP)
                        except OSError:
                            pass
                work_cell = copy.deepcopy(cell)
                work_cell.source = step.source
                answer = watched.get(step.index)
                if answer:  # the objects are looked at after the answer cell, and again before each test
                    is_test = plan.kinds[step.index] == "test"
                    _collect_reached(outcome, answer, ask_kernel(watch, silent, finished.begin_expression(
                        watch_name, answer, inspect=is_test and step.part != "hidden"), WATCH))
                watch.touch()
                watch.busy = True
                try:
                    done = client.execute_cell(work_cell, step.index)
                finally:
                    watch.busy = False
                if answer:
                    _collect_reached(outcome, answer, ask_kernel(watch, silent, finished.end_expression(
                        watch_name, answer, inspect=plan.kinds[step.index] == "answer"), WATCH))
                outputs = list(done.get("outputs", []))
                if step.part == "hidden":
                    cell.outputs = list(cell.get("outputs", [])) + outputs
                else:
                    cell.outputs = outputs
                    cell.execution_count = done.get("execution_count")
                plan.nb.cells[step.index] = cell
                outcome.ran.add((step.index, step.part))
                errors = [o for o in outputs if o.get("output_type") == "error"]
                if errors:
                    outcome.errors[(step.index, step.part)] = f"{errors[0].get('ename')}: {errors[0].get('evalue')}"
                if plan.kinds[step.index] in ("student", "answer") or position == len(steps) - 1 or \
                        steps[position + 1].index != step.index:
                    if outcome.tampered_at is None:
                        probe_started = time.monotonic()
                        changes = ask_kernel(watch, silent, tamper.probe_expression(probe_name), "the grader's probe")
                        outcome.probe_seconds += time.monotonic() - probe_started
                        if changes:
                            outcome.tampered_at = step.index
                            outcome.tamper_found = changes
    except CellTimeoutError:
        outcome.status, outcome.reason = "timeout", f"a cell ran longer than {limits.cell_timeout:g} s"
        outcome.stopped_at = current.index if current else None
    except (DeadKernelError, RuntimeError, TimeoutError, OSError) as error:
        outcome.stopped_at = current.index if current else None
        if current is not None and (current.index, current.part) in outcome.ran:
            outcome.stopped_at = current.index + 1
        why = watch.reason
        if why == "stalled":
            lost = " after it reported idle: its reply was lost" if watch.last_message == "status idle" else ""
            where = f"cell {plan.grade_ids[current.index] or '#' + str(current.index + 1)}" if current else "start"
            outcome.status = "stalled"
            outcome.reason = f"the kernel stalled in {where} (no CPU and no output{lost}; last message: " \
                             f"{watch.last_message or 'none'})"
            outcome.stalled_step = steps.index(current) if current else -1
        elif why == "out_of_memory":
            outcome.status, outcome.reason = "out_of_memory", f"more than {limits.memory >> 20} MiB of memory"
        elif why == "processes":
            outcome.status, outcome.reason = "crashed", f"more than {limits.processes} processes"
        elif why == "output":
            outcome.status, outcome.reason = "crashed", f"more than {limits.output_flood >> 20} MiB of output"
        elif current is None:
            raise RuntimeError(f"the grading kernel did not start: {error}") from error
        else:
            text = " ".join(e for e in outcome.errors.values())
            outcome.status = "out_of_memory" if "MemoryError" in text else "crashed"
            outcome.reason = f"the kernel died ({type(error).__name__}: {error})"
    except Exception as error:  # nbclient or zmq failures while a submission runs
        if current is None:
            raise
        outcome.status, outcome.reason = "crashed", f"{type(error).__name__}: {error}"
        outcome.stopped_at = current.index
    finally:
        watch.stop()
        outcome.nudges = watch.nudges
        if "kernel_log" in locals():
            kernel_log.close()
        try:
            if watch.root:
                sb.kill_tree(watch.root, mark=mark)
            else:
                sb.kill_tree(os.getpid(), include_root=False, mark=mark)
        finally:
            for proc in sb.marked_processes(mark):
                try:
                    os.kill(proc, 9)
                except OSError:
                    pass
            shutil.rmtree(runtime, ignore_errors=True)
            sb.remove_cgroup(mark)
    outcome.truncated = bool(getattr(client, "truncated", False))
    if outcome.status == "graded" and watch.reason:
        outcome.status = {"out_of_memory": "out_of_memory", "stalled": "stalled"}.get(watch.reason, "crashed")
        outcome.reason = watch.reason
    return outcome


# ---------------------------------------------------------------- scoring

def _install_watch(plan: Plan, spec: AssignmentSpec, course_root: Path, steps: list[Step], silent,
                   name: str) -> dict[int, str]:
    """Install ``grader.reach_kernel`` in the kernel; cell index -> the answer whose finished version is
    watched while that cell runs (the answer cell itself and its test cells). Empty if it did not start."""
    table = finished.answer_table({gid: _source(spec.cell(gid)) for gid in spec.answers}, course_root / "utils")
    if not table:
        return {}
    answer_of = {test: gid for gid, tests in spec.tests_of.items() for test in tests}
    trusted = [s.source for s in steps if plan.kinds[s.index] in ("test", "fixed")]
    reply = silent(finished.install_code(name, table, trusted, tamper.cell_dirs()))
    if reply.get("status") != "ok":
        return {}
    watched = {}
    for index, gid in enumerate(plan.grade_ids):
        answer = gid if plan.kinds[index] == "answer" else answer_of.get(gid) if plan.kinds[index] == "test" else None
        if answer in table:
            watched[index] = answer
    return watched


WATCH = "the grader's watch on the course's finished code"


def ask_kernel(watch: _Watch, silent, expression: str, what: str) -> list[str]:
    """Evaluate ``expression`` (a list of strings, in the kernel) and return its answer; ``what`` names
    the asker in the line returned when the kernel cannot answer.

    The watchdog counts the kernel as busy meanwhile, so a kernel that stops answering (frozen, or a
    lost request) is stopped as stalled after ``stall_seconds`` and the submission graded again, as
    for a cell, rather than waiting for the 60 s reply limit and being reported dead. An expression
    that raised gives ``"<what> was disabled (<error name>)"``, an answer that is not a list of strings
    ``"<what> answered nonsense"``.
    """
    import ast

    watch.busy = True
    try:
        reply = silent("", {"q": expression}, timeout=60)
    finally:
        watch.busy = False
    found = reply.get("user_expressions", {}).get("q", {})
    if found.get("status") != "ok":
        return [f"{what} was disabled ({found.get('ename')})"]
    try:
        return [str(line) for line in ast.literal_eval(found["data"]["text/plain"])]
    except (ValueError, SyntaxError, KeyError, TypeError):
        return [f"{what} answered nonsense"]


def _collect_reached(outcome: Outcome, answer: str, seen: list[str]) -> None:
    for line in seen:
        if line not in outcome.reached.setdefault(answer, []):
            outcome.reached[answer].append(line)


def _check_kernel_starts(course_root: Path, spec: AssignmentSpec, workdir: Path, use_sandbox: bool,
                         limits: Limits) -> None:
    """Start a kernel on an empty notebook in an empty folder; raise RuntimeError if even that fails
    (then the grader, not the submission, is broken)."""
    scratch = workdir / "kernel-check"
    scratch.mkdir(parents=True, exist_ok=True)
    empty = Plan(nbformat.v4.new_notebook(), [], [], [], [], {}, {})
    run_plan(empty, spec, course_root, scratch, use_sandbox=use_sandbox, limits=limits, log=[])
    shutil.rmtree(scratch, ignore_errors=True)


def _course_state(course_root: Path, skip: list[Path]) -> dict[str, tuple[int, int]]:
    """(size, mtime) of the course files a submission must not change."""
    state = {}
    root = Path(course_root)
    skip = [p.resolve() for p in skip]
    for name in ("utils", "grader", "solutions", "judge", "source", "notebooks", "release", "submitted",
                 "nbgrader_config.py", "Makefile", "pyproject.toml"):
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


def _message(error: str) -> str:
    name, _, text = error.partition(": ")
    if name == "NotImplementedError":
        return "not answered yet: the cell above still raises NotImplementedError"
    return text.strip() if name in ("CheckFailed", "AssertionError") and text.strip() else error.strip()


def grade_submission(course_root: Path, assignment: str, student: str, *, submission_dir: Path,
                     workdir: Path, sandbox: bool | None = None, limits: Limits | None = None,
                     source: Path | None = None) -> SubmissionResult:
    """Grade one student's submission of ``assignment``; never raises for anything the submission does.

    Args:
        course_root: the course folder (``solutions/<assignment>/<assignment>.ipynb``, ``utils/``).
        submission_dir: the student's folder (the notebook and any files handed in beside it).
        workdir: an empty or new folder for this grading: ``work/`` (a copy of the submission folder,
            the kernel's only writable place), ``executed.ipynb`` and ``result.json``.
        sandbox: True requires bubblewrap, False runs without it, None uses it when it works.
        limits: resource limits (``grader.sandbox.Limits``); the default cell timeout comes from
            ``c.Execute.timeout`` in ``nbgrader_config.py`` when set there.
        source: the notebook whose locked cells are trusted (default: the instructor notebook;
            ``grader.validate`` passes the student version, so only visible checks run).

    Raises:
        FileNotFoundError: no instructor notebook for ``assignment`` (the grader's setup is broken).
        RuntimeError: ``sandbox=True`` but bubblewrap cannot run, or no kernel can start at all.
    """
    started = time.monotonic()
    course_root = Path(course_root).resolve()
    if source is not None:
        spec = _load_spec(str(Path(source).resolve()), Path(source).stat().st_mtime)
    else:
        spec = load_spec(course_root, assignment)
    limits = limits or default_limits(course_root)
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    cells = {gid: (0.0, pts) for gid, pts in spec.points.items()}
    log: list[str] = []
    flags: list[str] = []
    messages: dict[str, str] = {}

    available, why = sb.sandbox_available()
    if sandbox is None:
        use_sandbox = available
    elif sandbox and not available:
        raise RuntimeError(f"the sandbox was required but cannot run: {why}")
    else:
        use_sandbox = bool(sandbox)
    if not use_sandbox:
        log.append(f"{_LOUD}: {why if not available else 'turned off by the caller'}; the submission "
                   f"could read and write anything this user can")
        if sandbox is None:  # wanted but impossible: say so where the instructor will see it
            logging.getLogger("grader").warning("%s: %s", _LOUD, why)
            print(f"{_LOUD} ({student}, {assignment}): {why}", file=sys.stderr)

    regrade = False

    def finish(status: str, executed: Path | None = None) -> SubmissionResult:
        result = SubmissionResult(student, assignment, status, cells, messages, flags,
                                  round(time.monotonic() - started, 2), "\n".join(log), executed, regrade)
        (workdir / "result.json").write_text(result.to_json())
        return result

    path, notes = find_notebook(Path(submission_dir), assignment)
    log.extend(notes)
    if path is None:
        flags.append(f"missing: {notes[0]}")
        return finish("missing")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
            raise ValueError("not a notebook (no list of cells)")
        for cell in raw["cells"]:
            if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw"):
                raise ValueError("a cell is not a notebook cell")
            if not isinstance(_source(cell), str):
                raise ValueError("a cell's source is not text")
    except (OSError, UnicodeDecodeError, ValueError) as error:
        flags.append(f"unreadable notebook {path.name}: {error}")
        log.append(f"unreadable: {error}")
        return finish("unreadable")

    plan = rebuild(raw, spec, course_root / "utils", check_copies=source is None)
    flags.extend(plan.flags)
    shadowing = sorted({p.name for p in Path(submission_dir).iterdir()
                        if (p.stem if p.suffix in (".py", ".pth", ".so") else p.name) in SHADOWED})
    if shadowing:
        flags.append(f"tampering: the submission ships modules named like the course's or a library's: "
                     f"{', '.join(shadowing)} (the course's own were used)")
        for gid in spec.points:
            plan.zeroed.setdefault(gid, "the submission ships modules that shadow the course's")
    log.extend(plan.notes)

    work = workdir / "work"
    before = _course_state(course_root, [workdir])
    outcome = None
    last_stall = None
    for attempt in range(1 + max(0, limits.retries)):
        # A retry runs in the same folder (files the first attempt wrote, such as checkpoints, stay),
        # with the submitted files copied over again.
        shutil.copytree(Path(submission_dir), work, symlinks=True, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        attempt_plan = copy.deepcopy(plan)
        try:
            outcome = run_plan(attempt_plan, spec, course_root, work, use_sandbox=use_sandbox, limits=limits, log=log,
                               freeze_before=FREEZE_ONCE.get(student) if attempt == 0 else None)
        except RuntimeError as error:
            # Whose fault? A kernel that starts in an empty folder means the submission's files stop it.
            _check_kernel_starts(course_root, spec, workdir, use_sandbox, limits)
            outcome = Outcome(status="crashed", reason=f"the kernel did not start in the submission's folder ({error})",
                              stopped_at=0)
            break
        if outcome.status != "stalled":
            break
        log.append(f"attempt {attempt + 1}: {outcome.reason}; grading again")
        if last_stall is not None and last_stall == outcome.stalled_step:
            outcome.status = "timeout"
            outcome.reason = "the same cell waited without CPU or output on every attempt"
            regrade = True
            break
        last_stall = outcome.stalled_step
    if outcome.status == "stalled":  # stalled at different cells on every attempt: no fault of the submission
        regrade = True
    plan = attempt_plan
    after = _course_state(course_root, [workdir])
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    if changed:
        flags.append(f"tampering: files of the course changed while this submission ran: {', '.join(changed[:5])}")
        log.append("course files changed: " + ", ".join(changed[:20]))

    # Score: a test cell earns its points if it ran to the end with no error and nothing reached for
    # the grader before it.
    taint_at = min([i for i in plan.taint_from] + ([outcome.tampered_at] if outcome.tampered_at is not None else []),
                   default=None)
    if outcome.tamper_found:
        where = plan.grade_ids[outcome.tampered_at] or f"#{outcome.tampered_at + 1}"
        flags.append(f"tampering: the kernel changed in cell {where}: {'; '.join(outcome.tamper_found[:4])}")
    if changed:
        taint_at = -1
    for answer, how in outcome.reached.items():
        flags.append(f"the answer in cell {answer} reaches the course's finished version: {'; '.join(how[:3])}")
        for test in spec.tests_of.get(answer, []):
            plan.zeroed.setdefault(test, f"your answer in {answer} hands its work to the course's finished version "
                                         f"in utils ({how[0]}); write it yourself")
    for index, gid in enumerate(plan.grade_ids):
        if plan.kinds[index] != "test":
            continue
        parts = ["visible", "hidden"] if spec.hidden.get(gid) else ["all"]
        ran = all((index, p) in outcome.ran for p in parts)
        error = next((outcome.errors[(index, p)] for p in parts if (index, p) in outcome.errors), None)
        if error:
            hidden_failed = (index, "hidden") in outcome.errors and (index, "visible") not in outcome.errors
            messages[gid] = HIDDEN_FAILED if hidden_failed else _message(error)
        elif not ran:
            messages[gid] = f"not graded: {outcome.reason or 'the notebook stopped before this cell'}"
        if gid in plan.zeroed:
            messages[gid] = f"scored 0: {plan.zeroed[gid]} (flagged for review)"
            continue
        if taint_at is not None and index > taint_at:
            messages[gid] = "scored 0: code before this check reached for the grader (flagged for review)"
            continue
        if ran and not error:
            cells[gid] = (spec.points[gid], spec.points[gid])
    if outcome.status != "graded":
        flags.append(f"{outcome.status}: {outcome.reason}")
    if outcome.truncated:
        log.append("output was cut at the limit")
    log.append(f"integrity probe: {outcome.probe_seconds:.1f} s")
    if outcome.nudges:
        log.append(f"woke a kernel that waited idle {outcome.nudges} time(s) (a request left unread)")
    log.append(f"status {outcome.status}; score {sum(s for s, _ in cells.values()):g}/"
               f"{sum(m for _, m in cells.values()):g}; {'sandboxed' if use_sandbox else 'NOT sandboxed'}")
    executed = workdir / "executed.ipynb"
    result = finish(outcome.status, executed)
    # The result travels inside the executed notebook too, so whoever stores only the notebook
    # (the class-wide runner) still gives ``grader.feedback`` the scores and messages.
    plan.nb.metadata["course_grader"] = {"result": json.loads(result.to_json())}
    nbformat.write(plan.nb, str(executed))
    return result


def default_limits(course_root: Path) -> Limits:
    """Limits, with the cell timeout of ``c.Execute.timeout`` in the course's nbgrader_config.py."""
    limits = Limits()
    config = Path(course_root) / "nbgrader_config.py"
    if config.exists():
        match = re.search(r"^c\.Execute\.timeout\s*=\s*(\d+)", config.read_text(), re.M)
        if match:
            limits.cell_timeout = float(match.group(1))
    return limits


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Grade one submission (prints the result as JSON).")
    parser.add_argument("assignment")
    parser.add_argument("student")
    parser.add_argument("submission_dir", type=Path)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--course", type=Path, default=Path.cwd())
    parser.add_argument("--no-sandbox", action="store_true")
    args = parser.parse_args(argv)
    try:
        result = grade_submission(args.course, args.assignment, args.student, submission_dir=args.submission_dir,
                                  workdir=args.workdir, sandbox=False if args.no_sandbox else None)
    except Exception:
        traceback.print_exc()
        return 1
    print(result.to_json())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
