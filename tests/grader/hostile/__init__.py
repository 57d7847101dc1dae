"""Hostile and accidental submissions, each made from the instructor notebook by editing cells.

Every case is one student's hand-in with one attack or one honest accident. ``deserved`` is the
score the answers in it deserve (attacks are made on wrong answers, so they deserve 0 whatever
the attack does for them); ``flagged`` says whether it must be flagged for review; ``status``
the result's status. Notebook 01 (3 tests: 2 + 2 + 3 points) carries almost all cases because it
grades fastest.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Callable

from cell_builders import code_cell
from course_harness import cells_by_grade_id, fill_in, read, released_path, solution_path
from grader.answer_sets.mutants import apply as apply_mutant
from grader.answer_sets.mutants import load as load_mutants

NB01 = "01_UNets"
# Wrong answers for all three cells of 01 (each fails its own test, and the U-Net test needs both blocks).
WRONG_01 = {"down_block": "down block with average pooling", "up_block": "up block concatenates the skip first",
            "basic_unet": "U-Net skips the dense bottleneck"}


def right(assignment: str = NB01) -> dict:
    return fill_in(read(released_path(assignment)), read(solution_path(assignment)))


def blank(assignment: str = NB01) -> dict:
    return read(released_path(assignment))


def mutated(assignment: str, names: list[str]) -> dict:
    nb = right(assignment)
    for mutant in load_mutants(assignment):
        if mutant.name in names:
            cell = cells_by_grade_id(nb)[mutant.cell]
            cell["source"] = apply_mutant(mutant, "".join(cell["source"]))
    return nb


def wrong() -> dict:
    return mutated(NB01, list(WRONG_01.values()))


def append(nb: dict, grade_id: str, code: str) -> dict:
    """``nb`` with ``code`` added at the end of cell ``grade_id``."""
    nb = copy.deepcopy(nb)
    cell = cells_by_grade_id(nb)[grade_id]
    cell["source"] = "".join(cell["source"]).rstrip() + "\n\n" + code.strip() + "\n"
    return nb


def insert_cell(nb: dict, after: str, code: str) -> dict:
    nb = copy.deepcopy(nb)
    index = nb["cells"].index(cells_by_grade_id(nb)[after]) + 1
    nb["cells"].insert(index, code_cell(code, cell_id=f"extra{index}"))
    return nb


@dataclass
class Case:
    name: str
    what: str
    notebook: Callable[[], dict | bytes | None]
    deserved: float
    flagged: bool
    status: str = "graded"
    assignment: str = NB01
    filename: str | None = None                  # default: <assignment>.ipynb
    files: dict[str, bytes] = field(default_factory=dict)
    limits: dict = field(default_factory=dict)   # Limits fields to change for this case
    freeze_before: str | None = None             # grader fault injected on the first attempt
    sandbox_only: bool = False                   # what it asserts needs the sandbox


# The attacks reach the course through the path of the utils package the kernel imports.
COURSE = "import os, utils\n_course = os.path.dirname(os.path.dirname(utils.__file__))\n"

TRANSFORMER = """
def _skip_checks(lines):
    text = "".join(lines)
    return ["pass\\n"] if ("check" in text or "G." in text) else lines
get_ipython().input_transformers_cleanup.append(_skip_checks)
"""
BUILTIN = """
import builtins
builtins.abs = lambda x: 0.0
"""
PATCH_GRADING = """
import types, utils.grading
_noop = types.ModuleType("noop")
for _name in dir(utils.grading):
    setattr(_noop, _name, getattr(utils.grading, _name))
for _name in ("check", "check_close", "check_shape", "check_parameters", "check_fingerprint", "check_defined_here"):
    setattr(_noop, _name, lambda *a, **k: None)
utils.grading.isolated = lambda: _noop
"""
DISK = COURSE + """
import importlib, utils.grading
try:
    with open(os.path.join(_course, "utils", "grading.py"), "a") as _f:
        _f.write("\\ndef check_fingerprint(*a, **k):\\n    return None\\ndef check_parameters(*a, **k):\\n    return None\\n")
except OSError as error:
    print("could not write:", error)
importlib.reload(utils.grading)
"""
SYS_MODULES = """
import sys, types
_fake = types.ModuleType("utils.grading")
_fake.isolated = lambda: _fake
for _name in ("check", "check_close", "check_shape", "check_parameters", "check_fingerprint", "check_defined_here"):
    setattr(_fake, _name, lambda *a, **k: None)
_fake.fill_deterministic = lambda module, seed=0: module
_fake.wave_input = __import__("utils.grading").grading.wave_input
sys.modules["utils.grading"] = _fake
"""
CUSTOM_EXC = """
get_ipython().set_custom_exc((Exception,), lambda shell, etype, value, tb, tb_offset=None: None)
"""
REBIND = """
import torch, utils.grading
_ok = lambda *args, **kwargs: None
check = check_close = check_shape = check_parameters = check_fingerprint = check_defined_here = _ok
for _name in ("check", "check_close", "check_shape", "check_parameters", "check_fingerprint", "check_defined_here"):
    setattr(utils.grading, _name, _ok)
torch.allclose = lambda *args, **kwargs: True
"""
GRADEBOOK = COURSE + """
import sqlite3
try:
    _db = sqlite3.connect(os.path.join(_course, "gradebook.db"))
    _db.execute("update grade set manual_score = 100")
    _db.commit()
except Exception as error:
    print("gradebook:", error)
"""
OVERWRITE = COURSE + """
for _target in ("submitted/right/01_UNets/01_UNets.ipynb", "nbgrader_config.py", "utils/__init__.py"):
    try:
        with open(os.path.join(_course, _target), "w") as _f:
            _f.write("overwritten")
    except OSError as error:
        print("could not overwrite", _target, type(error).__name__)
import sys
try:
    with open(os.path.join(sys.prefix, "lib", "overwritten.py"), "w") as _f:
        _f.write("x = 1")
except OSError as error:
    print("could not write to the environment", type(error).__name__)
"""
READER = COURSE + """
for _target in ("solutions/01_UNets/01_UNets.ipynb", "gradebook.db", "submitted/right/01_UNets/01_UNets.ipynb",
                "nbgrader_config.py"):
    try:
        print(open(os.path.join(_course, _target), errors="replace").read()[:100000])
    except OSError as error:
        print("cannot read", _target, type(error).__name__)
"""
NETWORK = """
import socket
try:
    socket.create_connection(("pypi.org", 443), timeout=5)
    print("NETWORK REACHED")
except OSError as error:
    print("no network:", type(error).__name__)
"""
FORKER = """
import subprocess
_child = subprocess.Popen(["sleep", "4321"], start_new_session=True)
"""
MEMORY = """
import torch
_hog = []
for _ in range(64):
    _hog.append(torch.ones(64 << 20))  # 256 MB each, written
"""
FLOOD = """
while True:
    print("x" * 10000)
"""
LOOP = """
import time
while True:  # polls for ever (a little CPU, so not a stall)
    time.sleep(0.01)
"""
SLEEPER = """
import time
time.sleep(10 ** 6)
"""
SCRIPT = """
print("<script>document.title = 'pwned'</script>")
display({"text/html": "<script>alert('feedback')</script>", "text/plain": "a plot"}, raw=True)
"""
WARNING = """
import warnings
_forward = DownBlock.forward
def _noisy_forward(self, x):
    warnings.warn("this block is being watched", UserWarning)
    return _forward(self, x)
DownBlock.forward = _noisy_forward
"""
EXTRA_FILE = """
import torch
_extra = torch.load("extra_weights.pt")
assert _extra["ok"].item() == 1.0
print("loaded the weights handed in beside the notebook")
"""
SCRATCH = """
print("trying my block on a small batch")
_tmp = DownBlock(1, 4)(torch.zeros(2, 1, 8, 8))
print(_tmp.shape)
"""


FORK_BOMB = """
import subprocess
_many = [subprocess.Popen(["sleep", "4322"]) for _ in range(400)]
"""
SHADOW_GRADING = b"""
def isolated():
    import sys
    return sys.modules[__name__]
def _ok(*args, **kwargs):
    return None
check = check_close = check_shape = check_parameters = check_fingerprint = check_defined_here = _ok
"""


def _pasted_utils() -> str:
    from conftest import ROOT

    source = (ROOT / "utils" / "basic_unet.py").read_text()
    start = source.index("class BasicUNet")
    end = source.index("\nclass ", start + 10) if "\nclass " in source[start + 10:] else len(source)
    body = source[start:end]
    for old, new in (("BasicUNet", "MyUNet"), ("down_chs", "channels"), ("latent_size", "side"),
                     ("latent_dim", "flat"), ("up_chs", "ups")):
        body = body.replace(old, new)
    return body + "\n\nBasicUNet = MyUNet\n"


def _pasted() -> dict:
    nb = right()
    cell = cells_by_grade_id(nb)["basic_unet"]
    cell["source"] = _pasted_utils()
    return nb


def _edited_test() -> dict:
    nb = wrong()
    test = cells_by_grade_id(nb)["test_down_block"]
    test["source"] = "print('all good')"
    test["metadata"]["nbgrader"]["points"] = 100
    return nb


def _deleted_test() -> dict:
    nb = right()
    nb["cells"].remove(cells_by_grade_id(nb)["test_up_block"])
    return nb


def _copied_stub() -> dict:
    nb = right()
    stub = copy.deepcopy(cells_by_grade_id(blank())["down_block"])
    nb["cells"].insert(nb["cells"].index(cells_by_grade_id(nb)["down_block"]), stub)
    return nb


def _duplicate_ids() -> dict:
    """The issue's first case: an answer cell copied, so two cells carry one grade id (wrong, then right)."""
    nb = right()
    first = copy.deepcopy(cells_by_grade_id(wrong())["down_block"])
    nb["cells"].insert(nb["cells"].index(cells_by_grade_id(nb)["down_block"]), first)
    return nb


# ---------------------------------------------------------------- the course's own answer, by delegation
# Each route hands the work of an answer cell to the finished version in utils at run time; every one
# passes the cell's visible and hidden checks unless the grader sees the route (issue 22, section 3).

ALIAS_WRAP = """
import utils.basic_unet as course_blocks


class DownBlock(nn.Module):
    \"\"\"Two (Conv 3x3 -> BatchNorm -> ReLU), then MaxPool 2.\"\"\"

    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.model = course_blocks.DownBlock(in_ch, out_ch).model

    def forward(self, x):
        return self.model(x)
"""
IMPORTLIB = """
import importlib

_finished = importlib.import_module("utils.basic_unet")


class BasicUNet(nn.Module):
    def __init__(self, img_ch=1, img_size=16, down_chs=(16, 32, 64)):
        super().__init__()
        self.__dict__.update(_finished.BasicUNet(img_ch, img_size, down_chs).__dict__)

    def forward(self, x):
        return _finished.BasicUNet.forward(self, x)
"""
GETATTR_MODULE = """
import utils.basic_unet

_course_up = getattr(getattr(utils, "basic" + "_unet"), "Up" + "Block")


class UpBlock(nn.Module):
    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.model = _course_up(in_ch, out_ch).model

    def forward(self, x, skip):
        return self.model(torch.cat((x, skip), dim=1))
"""
SYS_MODULES_ROUTE = """
import sys as _system

_loaded = getattr(_system, "mod" + "ules")


class UpBlock(nn.Module):
    def __init__(self, in_ch, out_ch):
        super().__init__()
        finished = _loaded["utils.basic_unet"].UpBlock(in_ch, out_ch)
        self.model = finished.model

    def forward(self, x, skip):
        return self.model(torch.cat((x, skip), dim=1))
"""
DICT_COPY = """
from utils import basic_unet as helpers


class DownBlock(nn.Module):
    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.__dict__.update(helpers.DownBlock(in_ch, out_ch).__dict__)

    def forward(self, x):
        return self.model(x)
"""
CLASS_DICT_COPY = """
from utils import basic_unet as helpers


def _init(self, in_ch, out_ch):
    nn.Module.__init__(self)
    for name, child in helpers.DownBlock(in_ch, out_ch).named_children():
        self.add_module(name, child)


DownBlock = type("DownBlock", (nn.Module,), {
    **{k: v for k, v in helpers.DownBlock.__dict__.items() if k not in ("__init__", "__dict__", "__weakref__")},
    "__init__": _init})
"""
METHOD_COPY = """
from utils import basic_unet as helpers


class UpBlock(nn.Module):
    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.model = nn.Sequential(
            nn.ConvTranspose2d(2 * in_ch, out_ch, kernel_size=3, stride=2, padding=1, output_padding=1),
            nn.BatchNorm2d(out_ch), nn.ReLU(),
            nn.Conv2d(out_ch, out_ch, kernel_size=3, padding=1), nn.BatchNorm2d(out_ch), nn.ReLU(),
        )

    forward = helpers.UpBlock.forward
"""
SUBCLASS = """
from utils import basic_unet as helpers


class _Tuned(helpers.DownBlock):
    pass


class DownBlock(_Tuned):
    \"\"\"My own block.\"\"\"
"""
NEW_WRAPPER = """
from utils import basic_unet as helpers


class DownBlock(nn.Module):
    __new__ = lambda cls, in_ch, out_ch: helpers.DownBlock(in_ch, out_ch)
"""
PARTIAL = """
import functools
from utils import basic_unet as helpers

_make = functools.partial(helpers.UpBlock)


class UpBlock(nn.Module):
    def __init__(self, in_ch, out_ch):
        nn.Module.__init__(self)
        self.model = _make(in_ch, out_ch).model

    forward = functools.partialmethod(helpers.UpBlock.forward)
"""
BLANK_DELEGATE = {  # the held-back case: from the blank notebook, every class delegates
    "down_block": """
from utils import basic_unet as blocks


class DownBlock(nn.Module):
    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.model = blocks.DownBlock(in_ch, out_ch).model

    def forward(self, x):
        return self.model(x)
""",
    "up_block": """
class UpBlock(nn.Module):
    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.inner = blocks.UpBlock(in_ch, out_ch)
        self.model = self.inner.model

    def forward(self, x, skip):
        return blocks.UpBlock.forward(self, x, skip)
""",
    "basic_unet": """
class BasicUNet(nn.Module):
    def __init__(self, img_ch=1, img_size=16, down_chs=(16, 32, 64)):
        super().__init__()
        self.__dict__.update(blocks.BasicUNet(img_ch, img_size, down_chs).__dict__)

    forward = blocks.BasicUNet.forward
""",
}
HELPERS_ALLOWED = """
def _self_check():
    # the course's helpers the notebook imports: an honest answer may use them
    block = DownBlock(1, 4)
    out = block(wave_input((2, 1, 8, 8)))
    print("my DownBlock:", list(out.shape), count_parameters(block), "parameters")


_self_check()
"""


def replaced(nb: dict, grade_id: str, code: str) -> dict:
    """``nb`` with the code of cell ``grade_id`` replaced by ``code``."""
    nb = copy.deepcopy(nb)
    cells_by_grade_id(nb)[grade_id]["source"] = code.strip() + "\n"
    return nb


def _blank_delegating() -> dict:
    nb = blank()
    for grade_id, code in BLANK_DELEGATE.items():
        nb = replaced(nb, grade_id, code)
    return nb


def _honest_with_helpers() -> dict:
    nb = append(right(), "down_block", HELPERS_ALLOWED)
    return append(nb, "basic_unet", "print(count_parameters(BasicUNet()), 'parameters;', plan.epochs, 'epochs')")


def _weights() -> bytes:
    import io

    import torch

    buffer = io.BytesIO()
    torch.save({"ok": torch.ones(1)}, buffer)
    return buffer.getvalue()


CASES: list[Case] = [
    # honest hand-ins
    Case("right", "the instructor's answers", right, 7, False),
    Case("blank", "the untouched student version", blank, 0, False),
    Case("wrong", "three plausible wrong answers", wrong, 0, False),
    Case("partly_wrong", "a wrong DownBlock (average pooling), the rest right",
         lambda: mutated(NB01, [WRONG_01["down_block"]]), 5, False),  # 01 grades the U-Net with the course blocks
    Case("renamed", "right answers in '01_UNets (1).ipynb' (renamed by the browser)", right, 7, False,
         filename="01_UNets (1).ipynb"),
    Case("deleted_test", "right answers, a test cell deleted", _deleted_test, 7, False),
    Case("copied_stub", "right answers and a blank copy of an answer cell (same grade id)", _copied_stub, 7, False),
    Case("warning", "right answers whose DownBlock warns on every call", lambda: append(right(), "down_block", WARNING),
         7, False),
    Case("extra_file", "right answers that load a weights file handed in beside the notebook",
         lambda: append(right(), "down_block", EXTRA_FILE), 7, False, files={"extra_weights.pt": b""}),
    Case("scratch", "right answers and a scratch cell of the student's own", lambda: insert_cell(right(), "down_block",
         SCRATCH), 7, False),
    Case("script", "right answers that print <script> and display raw HTML", lambda: append(right(), "down_block",
         SCRIPT), 7, False),
    Case("forker", "right answers that start a process in a new session", lambda: append(right(), "down_block", FORKER),
         7, False),
    Case("duplicate_ids", "an answer cell copied (one grade id twice: wrong, then right)", _duplicate_ids, 7, True),
    Case("unreadable", "a file that is not a notebook", lambda: b"\x89PNG this is not json", 0, True,
         status="unreadable"),
    Case("missing", "no notebook in the folder", lambda: None, 0, True, status="missing",
         files={"notes.txt": b"I forgot to attach it"}),
    # reaching for the grader (on wrong answers: they deserve 0 whatever the attack does)
    Case("transformer", "an IPython input transformer that blanks the checks",
         lambda: append(wrong(), "down_block", TRANSFORMER), 0, True),
    Case("builtins", "abs (used by check_close) replaced in builtins", lambda: append(wrong(), "down_block", BUILTIN), 0, True),
    Case("patch_grading", "utils.grading.isolated replaced in the kernel",
         lambda: append(wrong(), "down_block", PATCH_GRADING), 0, True),
    Case("disk", "appends no-op checks to utils/grading.py and reloads it", lambda: append(wrong(), "down_block", DISK),
         0, True),
    Case("sys_modules", "a fake utils.grading put in sys.modules", lambda: append(wrong(), "down_block", SYS_MODULES),
         0, True),
    Case("custom_exc", "a custom exception handler that swallows failures",
         lambda: append(wrong(), "down_block", CUSTOM_EXC), 0, True),
    Case("rebinder", "rebinds the check helpers, patches utils.grading and torch.allclose",
         lambda: append(wrong(), "down_block", REBIND), 0, True),
    Case("editor", "a test cell emptied and given 100 points", _edited_test, 0, True),
    Case("pasted_utils", "utils' BasicUNet pasted as the answer, names changed", _pasted, 4, True),
    Case("gradebook", "opens gradebook.db to change scores", lambda: append(wrong(), "down_block", GRADEBOOK), 0, True),
    Case("overwrite", "overwrites a classmate's notebook, nbgrader_config.py, utils and the environment",
         lambda: append(wrong(), "down_block", OVERWRITE), 0, True),
    Case("reader", "prints the solutions, the gradebook and a classmate's notebook",
         lambda: append(wrong(), "down_block", READER), 0, True),
    Case("network", "connects to the internet", lambda: append(wrong(), "down_block", NETWORK), 0, True),
    Case("kill_parent", "kills its parent process (right blocks, attack in the U-Net cell)",
         lambda: append(right(), "basic_unet", "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)"), 4, True),
    Case("shadow", "hands in utils/grading.py with checks that pass everything", wrong, 0, True,
         files={"utils/__init__.py": b"", "utils/grading.py": SHADOW_GRADING}),
    # failures: the cells before keep their points
    Case("fork_bomb", "starts 400 processes in the U-Net cell", lambda: append(right(), "basic_unet", FORK_BOMB), 4,
         True, status="crashed"),
    Case("exit", "os._exit(1) in the U-Net cell (right blocks before)",
         lambda: append(right(), "basic_unet", "import os\nos._exit(1)"), 4, True, status="crashed"),
    Case("memory", "allocates 16 GB in the U-Net cell", lambda: append(right(), "basic_unet", MEMORY), 4, True,
         status="out_of_memory", limits={"memory": 3 << 30}),
    Case("flood", "prints without end in the U-Net cell", lambda: append(right(), "basic_unet", FLOOD), 4, True,
         status="crashed", limits={"output_flood": 16 << 20, "output_kept": 256 << 10}),
    Case("loop", "loops for ever in the U-Net cell", lambda: append(right(), "basic_unet", LOOP), 4, True,
         status="timeout", limits={"cell_timeout": 60}),
    Case("sleeper", "sleeps forever in the U-Net cell (no CPU, no output)",
         lambda: append(right(), "basic_unet", SLEEPER), 4, True, status="timeout", limits={"stall_seconds": 10}),
    Case("stalled_once", "right answers; the grader's kernel freezes once (a lost message)", right, 7, False,
         freeze_before="test_up_block", limits={"stall_seconds": 10}),
    # handing an answer to the course's finished version (the other cells right: they keep their points)
    Case("delegate_blank", "from the blank notebook, every class delegates to utils.basic_unet under another name",
         _blank_delegating, 0, True),
    Case("delegate_alias", "DownBlock takes the finished block's layers through a module alias",
         lambda: replaced(right(), "down_block", ALIAS_WRAP), 5, True),
    Case("delegate_importlib", "BasicUNet copies the finished U-Net reached with importlib",
         lambda: replaced(right(), "basic_unet", IMPORTLIB), 4, True),
    Case("delegate_getattr", "UpBlock reached with getattr and names built from pieces",
         lambda: replaced(right(), "up_block", GETATTR_MODULE), 5, True),
    Case("delegate_sys_modules", "UpBlock taken from sys.modules, reached through getattr",
         lambda: replaced(right(), "up_block", SYS_MODULES_ROUTE), 5, True),
    Case("delegate_dict", "DownBlock copies a finished instance's __dict__",
         lambda: replaced(right(), "down_block", DICT_COPY), 5, True),
    Case("delegate_class_dict", "DownBlock built with type() from the finished class's __dict__ and its children",
         lambda: replaced(right(), "down_block", CLASS_DICT_COPY), 5, True),
    Case("delegate_methods", "UpBlock's forward copied from the finished class",
         lambda: replaced(right(), "up_block", METHOD_COPY), 5, True),
    Case("delegate_subclass", "DownBlock derives from the finished block through a class of its own",
         lambda: replaced(right(), "down_block", SUBCLASS), 5, True),
    Case("delegate_new", "DownBlock's __new__ is a lambda that returns the finished block",
         lambda: replaced(right(), "down_block", NEW_WRAPPER), 5, True),
    Case("delegate_partial", "UpBlock made with functools.partial(finished), forward a partialmethod of its forward",
         lambda: replaced(right(), "up_block", PARTIAL), 5, True),
    Case("helpers_allowed", "right answers that also use the course helpers the notebook imports",
         _honest_with_helpers, 7, False),
]

# The other notebooks: right answers and one wrong answer each must raise no flag.
OTHER_NOTEBOOKS = ["02_Diffusion_Models", "03_Optimizations", "04_Classifier_Free_Diffusion"]


def other_cases() -> list[Case]:
    from conftest import ROOT

    cases = []
    for assignment in OTHER_NOTEBOOKS:
        if not (ROOT / "solutions" / assignment / f"{assignment}.ipynb").exists():
            continue
        tests = {k: float(c["metadata"]["nbgrader"]["points"]) for k, c in cells_by_grade_id(
            read(solution_path(assignment))).items() if c["metadata"]["nbgrader"].get("grade")
            and c["cell_type"] == "code"}
        total = sum(tests.values())
        cases.append(Case(f"right_{assignment[:2]}", f"{assignment}: the instructor's answers", lambda a=assignment: right(a),
                          total, False, assignment=assignment))
        last_answer = [c for c in cells_by_grade_id(read(solution_path(assignment))).values()
                       if c["metadata"]["nbgrader"].get("solution")
                       and c["cell_type"] == "code"][-1]["metadata"]["nbgrader"]["grade_id"]  # not a written answer
        mutant = next(m for m in load_mutants(assignment) if m.cell == last_answer)  # nothing later depends on it
        cases.append(Case(f"wrong_{assignment[:2]}", f"{assignment}: {mutant.name}",
                          lambda a=assignment, m=mutant.name: mutated(a, [m]),
                          total - sum(tests[g] for g in mutant.fails), False, assignment=assignment))
    return cases


def write_submission(case: Case, folder) -> None:
    """The case's hand-in under ``folder`` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    content = case.notebook()
    name = case.filename or f"{case.assignment}.ipynb"
    if isinstance(content, dict):
        (folder / name).write_text(json.dumps(content))
    elif isinstance(content, bytes):
        (folder / name).write_bytes(content)
    for file, data in case.files.items():
        (folder / file).parent.mkdir(parents=True, exist_ok=True)
        (folder / file).write_bytes(data or _weights())
