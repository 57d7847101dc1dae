"""The probe the grader installs in the grading kernel (``grader.probe``), run in-process without a kernel:
what it calls a change, what it lets pass, what its audit hook notes; and the code that installs it,
run in a fresh interpreter."""
from __future__ import annotations

import builtins
import os
import subprocess
import sys
import types

import pytest

from conftest import ROOT
from grader import probe, tamper
from grader.watchlist import PROBE_SENSITIVE_PATHS

CELLS = ("<ipython-input",)   # how the file names of code compiled from a cell begin, in these tests
WORK = "/work/ann"            # the submission's folder


def from_cell(code: str, name: str, filename: str = "<ipython-input-3-0>", module: str = "__main__"):
    """What ``code`` defines as ``name``, compiled as a notebook cell (or as ``filename`` of ``module``)."""
    namespace = {"__name__": module}
    exec(compile(code, filename, "exec"), namespace)
    return namespace[name]


class Shell:
    """The parts of IPython's shell the probe reads."""

    def __init__(self):
        self.input_transformers_cleanup, self.input_transformers_post, self.ast_transformers = [], [], []
        self.input_transformer_manager = types.SimpleNamespace(cleanup_transforms=[], line_transforms=[])
        self.events = types.SimpleNamespace(callbacks={"pre_run_cell": [], "post_run_cell": []})
        self.custom_exceptions = ()
        self.run_cell = lambda cell: None


@pytest.fixture
def kernel(monkeypatch):
    """A library and a course module the checks rely on, a shell; ``kernel.probe()`` makes the probe."""
    library = types.ModuleType("fakelib")
    exec(compile("def mean(x):\n    return sum(x) / len(x)\n", "fakelib.py", "exec"), library.__dict__)
    course = types.ModuleType("utils.fake_grading")
    exec(compile("def check(a, b):\n    assert a == b\n", "fake_grading.py", "exec"), course.__dict__)
    monkeypatch.setitem(sys.modules, "fakelib", library)
    monkeypatch.setitem(sys.modules, "utils.fake_grading", course)
    shell, audit = Shell(), probe.Audit((WORK, "/tmp"), PROBE_SENSITIVE_PATHS)
    watched = ("fakelib", "utils.fake_grading", "not.imported")
    return types.SimpleNamespace(library=library, course=course, shell=shell, audit=audit,
                                 probe=lambda: probe.Probe(shell, CELLS, watched, audit))


def test_an_untouched_kernel_shows_nothing(kernel):
    assert kernel.probe()() == ()


@pytest.mark.parametrize("owner, code, filename, module, expected", [
    # a library's function replaced from a cell or from the main script: seen
    ("library", "def mean(x):\n    return 0.0\n", "<ipython-input-3-0>", "__main__", ("module fakelib: mean replaced",)),
    ("library", "def mean(x):\n    return 0.0\n", "script.py", "__main__", ("module fakelib: mean replaced",)),
    # the library rewrapping its own function (torch does, lazily), or another library's: not tampering
    ("library", "def mean(x):\n    return sum(x) / max(len(x), 1)\n", "fakelib.py", "fakelib", ()),
    ("library", "def mean(x):\n    return 0.0\n", "otherlib.py", "otherlib", ()),
    # the course's checks replaced by anything: seen; the same code loaded again: not tampering
    ("course", "def check(a, b):\n    pass\n", "elsewhere.py", "elsewhere", ("module utils.fake_grading: check replaced",)),
    ("course", "def check(a, b):\n    assert a == b\n", "fake_grading.py", "utils.fake_grading", ()),
])
def test_a_watched_function_replaced(kernel, monkeypatch, owner, code, filename, module, expected):
    look = kernel.probe()
    name = code[len("def "):code.index("(")]
    monkeypatch.setattr(getattr(kernel, owner), name, from_cell(code, name, filename, module))
    assert look() == expected


def test_a_removed_attribute_and_a_removed_module_are_seen(kernel, monkeypatch):
    look = kernel.probe()
    monkeypatch.delattr(kernel.course, "check")
    monkeypatch.delitem(sys.modules, "fakelib")
    assert look() == ("module fakelib: mean removed", "module utils.fake_grading: check removed",
                      "modules: fakelib removed")


def test_a_module_swapped_in_sys_modules_is_seen(kernel, monkeypatch):
    look = kernel.probe()
    monkeypatch.setitem(sys.modules, "fakelib", types.ModuleType("fakelib"))
    assert look() == ("module fakelib: mean removed", "modules: fakelib replaced")


def test_builtins_replaced_or_added_are_seen_but_not_those_ipython_manages(kernel, monkeypatch):
    look = kernel.probe()
    monkeypatch.setattr(builtins, "abs", from_cell("def abs(x):\n    return x\n", "abs"))
    monkeypatch.setattr(builtins, "course_probe_test_helper", print, raising=False)
    monkeypatch.setattr(builtins, "_", 42, raising=False)
    assert look() == ("builtins: abs replaced", "builtins: course_probe_test_helper added")


def test_a_method_of_a_watched_class_replaced_from_a_cell_is_seen(kernel, monkeypatch):
    import torch

    look = kernel.probe()
    monkeypatch.setattr(torch.Tensor, "backward", from_cell("def backward(self, *a, **k):\n    pass\n", "backward"))
    monkeypatch.setattr(kernel.shell, "run_cell", from_cell("def run_cell(cell):\n    pass\n", "run_cell"))
    assert look() == ("class torch.Tensor: backward replaced", "shell attributes: run_cell replaced")


def test_hooks_written_in_a_cell_are_named(kernel, monkeypatch):
    look = kernel.probe()
    shell = kernel.shell
    shell.input_transformers_cleanup.append(from_cell("def clean(lines):\n    return []\n", "clean"))
    shell.input_transformers_post.append(str.strip)   # not a cell's: not named
    visitor = from_cell("class Rewrite:\n    def visit(self, node):\n        return node\n", "Rewrite")
    shell.ast_transformers.append(visitor())
    shell.events.callbacks["pre_run_cell"].append(from_cell("def before(info):\n    pass\n", "before"))
    shell.custom_exceptions = (ValueError,)
    monkeypatch.setattr(sys, "excepthook", from_cell("def hook(*a):\n    pass\n", "hook"))
    monkeypatch.setattr(sys, "path_hooks", [*sys.path_hooks, from_cell("def finder(path):\n    raise ImportError\n",
                                                                       "finder")])
    assert look() == ("'pre_run_cell' event hook written in a cell", "AST transformer written in a cell",
                      "custom exception handler", "import hook written in a cell",
                      "input transformer written in a cell", "sys.excepthook replaced")


def test_a_trace_function_from_a_cell_is_named(kernel):
    look = kernel.probe()
    tracer, saved = from_cell("def tracer(frame, event, arg):\n    return None\n", "tracer"), sys.gettrace()
    sys.settrace(tracer)
    try:
        seen = look()
    finally:
        sys.settrace(saved)
    assert seen == ("a trace function",)


def test_the_audit_hook_notes_writes_outside_the_folder_and_the_graders_files():
    audit = probe.Audit((WORK, "/tmp"), PROBE_SENSITIVE_PATHS)
    events = [
        ("open", (f"{WORK}/samples.png", "wb", 0)),           # the submission's own folder: fine
        ("open", ("/course/data/train.npz", "rb", 0)),        # reading the course's data: fine
        ("open", ("/course/utils/grading.py", "a", 0)),
        ("open", ("/course/gradebook.db", "r", 0)),
        ("open", ("/course/source/01/01.ipynb", None, os.O_RDONLY)),
        ("open", ("/course/notes.txt", None, os.O_WRONLY | os.O_CREAT)),
        ("os.remove", ("/course/utils/grading.py",)),
        ("socket.connect", (None, ("10.0.0.1", 80))),
        ("socket.connect", (None, "/run/kernel.sock")),       # the kernel's own Unix sockets: fine
        ("sys.addaudithook", ()),
        ("exec", (None,)),                                    # not a file event
        ("open", (3, "r", 0)),                                # a file descriptor: no path
    ]
    for event, args in events:
        audit(event, args)
    assert audit.accesses == ["writes /course/utils/grading.py", "opens /course/gradebook.db",
                              "opens /course/source/01/01.ipynb", "writes /course/notes.txt",
                              "os.remove /course/utils/grading.py", "connects to ('10.0.0.1', 80)",
                              "adds an audit hook"]
    for n in range(20):
        audit("open", (f"/course/out{n}.txt", "w", 0))
    assert len(audit.accesses) == probe.MAX_ACCESSES


def test_accesses_are_part_of_the_answer_and_the_answer_is_capped(kernel, monkeypatch):
    look = kernel.probe()
    kernel.audit("open", ("/course/gradebook.db", "r", 0))
    assert look() == ("file or network access: opens /course/gradebook.db",)
    for n in range(30):
        monkeypatch.setattr(builtins, f"course_probe_test_{n:02}", n, raising=False)
    assert len(look()) == probe.MAX_CHANGES


INSTALLED = """
import builtins, sys, types
shell = types.SimpleNamespace(
    input_transformers_cleanup=[], input_transformers_post=[], ast_transformers=[], custom_exceptions=(),
    input_transformer_manager=types.SimpleNamespace(), events=types.SimpleNamespace(callbacks={}))
builtins.get_ipython = lambda: shell
exec(INSTALL, {"__name__": "__main__"})
module = sys.modules[NAME]
print(module.Probe.__call__.__code__.co_filename, module.__name__ == NAME)
print(repr(eval(ASK)))
exec(compile("def allclose(*a, **k):\\n    return True\\n", "<ipython-input-2-0>", "exec"), vars(sys.modules["torch"]))
print(repr(eval(ASK)))
"""


def test_the_install_code_runs_the_probe_as_a_module_of_its_own(tmp_path):
    """The code the grader sends, run in a fresh interpreter with a stand-in for IPython's shell: the probe
    runs as a module of its own (its code is not a cell's), answers the expression the grader asks, and
    sees a watched function replaced from a cell."""
    name = "_course_probe_test"
    script = f"INSTALL = {tamper.probe_install_code(name)!r}\nNAME = {name!r}\nASK = {tamper.probe_expression(name)!r}\n"
    done = subprocess.run([sys.executable, "-c", script + INSTALLED], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["<course-probe> True", "()", "('module torch: allclose replaced',)"]
