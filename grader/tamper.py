"""Signs that a submission reaches for the grader, seen from the trusted side.

Two independent looks, so that defeating one is not enough:

- ``scan_source``: the code of every cell the student wrote, read (never run) before grading.
  It names constructs honest answers never need: IPython input/AST transformers and event hooks,
  custom exception handlers, ``sys.modules``, builtins, import hooks, tracing, assigning to an
  attribute of a module (``torch.allclose = ...``, ``utils.grading.check = ...``), rebinding the
  checks' helpers, ``importlib.reload``, dynamic code (``exec``/``eval``/``compile``), writing to
  the course's files, signalling other processes. One rule a method of ``_Scanner``.
- ``PROBE``: code the grader runs in the kernel before the first cell. It records the identity
  of every builtin, of the attributes of the modules the checks rely on (``torch``,
  ``torch.nn``, ``torch.nn.functional``, ``torch.Tensor``, ``nn.Module``, ``math``, ``utils.*``),
  of IPython's and the kernel's methods, the transformer and hook lists, and the code of the
  checks. After every cell the grader asks it, through ``user_expressions`` (which no input
  transformer sees), what changed. Hooks whose code was written in a cell are named.

What the scanner watches is listed once, in ``grader.watchlist``.

``copied_utils`` finds answers that are the course's own ``utils`` code with names changed:
definitions are compared after renaming every identifier by order of appearance and dropping
docstrings and formatting. Code that is also the instructor's answer is not counted (writing the
answer is not copying it).
"""
from __future__ import annotations

import ast
import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

from grader.watchlist import (COURSE_PATH_WORDS, GRADER_WORDS, INTERNAL_MODULES, MODULE_NAMES, NETWORK_MODULES,
                              SENSITIVE_STRINGS)

HOOK_ATTRIBUTES = {
    "input_transformers_cleanup": "an IPython input transformer",
    "input_transformers_post": "an IPython input transformer",
    "input_transformer_manager": "IPython's input transformer manager",
    "ast_transformers": "an IPython AST transformer",
    "register_transformer": "an IPython input transformer",
    "set_custom_exc": "a custom exception handler",
    "custom_exceptions": "a custom exception handler",
    "showtraceback": "IPython's traceback display",
    "_showtraceback": "IPython's traceback display",
    "run_cell": "IPython's cell runner",
    "run_cell_async": "IPython's cell runner",
    "run_ast_nodes": "IPython's cell runner",
    "run_code": "IPython's cell runner",
    "transform_cell": "IPython's cell transformer",
    "user_expressions": "the kernel's expression evaluation",
    "do_execute": "the kernel's execution",
    "excepthook": "the exception hook",
    "displayhook": "the display hook",
    "meta_path": "the import system",
    "path_hooks": "the import system",
    "settrace": "tracing",
    "setprofile": "tracing",
    "addaudithook": "an audit hook",
    "getframe": "the interpreter's frames",
    "_getframe": "the interpreter's frames",
    "f_globals": "another frame's globals",
    "f_locals": "another frame's locals",
    "f_back": "another frame",
    "__code__": "a function's code",
    "__globals__": "a function's globals",
    "__builtins__": "builtins",
    "__subclasses__": "the class hierarchy",
    "reload": "reloading a module",
    "_exit": None,  # a crash, reported by its status, not tampering
}
EVENT_METHODS = {"register", "unregister"}
DYNAMIC_CODE = {"exec", "eval", "compile", "__import__", "globals", "vars", "setattr", "delattr"}
SIGNALS = {"kill", "killpg", "pidfd_send_signal"}
WRITE_CALLS = {"write_text", "write_bytes", "unlink", "rmtree", "remove", "rename", "replace",
               "copy", "copyfile", "copytree", "move", "symlink_to", "chmod", "truncate"}
CHECK_HELPERS = {"check", "check_close", "check_defined_here", "check_fingerprint", "check_parameters",
                 "check_shape", "check_type", "count_parameters", "fill_deterministic", "wave_input",
                 "fingerprint", "isolated", "CheckFailed", "G", "_reference"}
LOCATING = {"__file__", "prefix", "base_prefix", "exec_prefix"}
# IPython magics an honest notebook uses.
ALLOWED_MAGICS = ("%matplotlib", "%time", "%%time", "%timeit", "%%timeit", "%load_ext autoreload", "%autoreload",
                  "%pip", "%config")


@dataclass
class Finding:
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.what} (line {self.line})"


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    elif isinstance(node, ast.Call):
        parts.append(_dotted(node.func) + "()")
    return ".".join(reversed(parts))


def _strings(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _strip_magics(source: str) -> str:
    """Cell source as Python: IPython magics and shell escapes become comments (they stay visible)."""
    lines = []
    for line in source.splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")):
            lines.append(line[: len(line) - len(stripped)] + "pass  # " + stripped)
        else:
            lines.append(line)
    return "\n".join(lines)


class _Scanner(ast.NodeVisitor):
    """The rules for one cell's tree, one ``visit_*`` method a kind of node. ``scan`` visits the nodes
    in ``ast.walk``'s order, each once (no method goes deeper), so findings come in reading order, by
    depth. ``modules``: the names that stand for modules in the cell."""

    def __init__(self, modules: set[str]):
        self.modules = modules
        self.findings: list[Finding] = []

    def scan(self, tree: ast.AST) -> list[Finding]:
        for node in ast.walk(tree):
            self.visit(node)
        return self.findings

    def generic_visit(self, node: ast.AST) -> None:
        """Nodes no rule is about (``scan`` walks the tree, not the visitor)."""

    def found(self, node: ast.AST, what: str) -> None:
        self.findings.append(Finding(getattr(node, "lineno", 0), what))

    def visit_Constant(self, node: ast.Constant) -> None:
        """A string that names the grader's files."""
        if isinstance(node.value, str):
            hit = [w for w in SENSITIVE_STRINGS if w in node.value]
            if hit:
                self.found(node, f"names the grader's files ({hit[0]})")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        """``module.__file__`` and ``sys.prefix`` (where files are); IPython's, the kernel's and the
        interpreter's hooks, IPython's events, ``sys.modules``."""
        dotted = _dotted(node)
        if node.attr in LOCATING and dotted.split(".")[0] in self.modules:
            self.found(node, f"locates the course's or the environment's files ({dotted})")
        if HOOK_ATTRIBUTES.get(node.attr):
            self.found(node, f"reaches for {HOOK_ATTRIBUTES[node.attr]} ({dotted})")
        elif node.attr in EVENT_METHODS and "events" in dotted:
            self.found(node, f"registers an IPython event hook ({dotted})")
        elif node.attr == "modules" and dotted.endswith("sys.modules"):
            self.found(node, "reaches into sys.modules")

    def visit_Name(self, node: ast.Name) -> None:
        """The builtins module, under either name."""
        if node.id in ("builtins", "__builtins__"):
            self.found(node, f"reaches for builtins ({node.id})")

    def visit_alias(self, node: ast.alias) -> None:
        """``import X`` (and the names of ``from ... import X``) of a module answers never need."""
        if node.name.split(".")[0] in INTERNAL_MODULES + NETWORK_MODULES:
            self.found(node, f"imports {node.name}")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        """``from X import ...`` of the interpreter's, the kernel's or the grader's insides."""
        if (node.module or "").split(".")[0] in INTERNAL_MODULES:
            self.found(node, f"imports from {node.module}")

    def visit_Call(self, node: ast.Call) -> None:
        """Dynamic code, signals to other processes, writing (or opening to read) the course's files."""
        name = _dotted(node.func)
        last = name.rsplit(".", 1)[-1]
        if name in DYNAMIC_CODE:
            self.found(node, f"runs or changes code dynamically ({name})")
        elif last in SIGNALS and name.startswith("os."):
            self.found(node, f"signals another process ({name})")
        elif last in WRITE_CALLS or last == "open":
            mentioned = " ".join(_strings(node)).lower()
            mode = any(isinstance(a, ast.Constant) and isinstance(a.value, str) and any(m in a.value for m in "wax+")
                       for a in node.args[1:2]) or any(k.arg == "mode" for k in node.keywords)
            if (last != "open" or mode) and any(word in mentioned for word in COURSE_PATH_WORDS):
                self.found(node, f"writes to the course's files ({name})")
            elif name == "open" and any(word in mentioned for word in GRADER_WORDS):
                self.found(node, f"reads the grader's files ({name})")

    def visit_Assign(self, node: ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete) -> None:
        """Assigning to (or deleting) a module's attribute or one of the checks' helpers."""
        targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
        for target in targets:
            for sub in ast.walk(target):
                if isinstance(sub, ast.Attribute) and _dotted(sub).split(".")[0] in self.modules:
                    self.found(node, f"changes a module's attribute ({_dotted(sub)})")
                elif isinstance(sub, ast.Name) and sub.id in CHECK_HELPERS and isinstance(sub.ctx, (ast.Store, ast.Del)):
                    self.found(node, f"rebinds the checks' helper {sub.id}")

    visit_AugAssign = visit_AnnAssign = visit_Delete = visit_Assign

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        """A function or a class named like one of the checks' helpers."""
        if node.name in CHECK_HELPERS:
            self.found(node, f"redefines the checks' helper {node.name}")

    visit_AsyncFunctionDef = visit_ClassDef = visit_FunctionDef

    def visit_Global(self, node: ast.Global | ast.Nonlocal) -> None:
        """``global check``: the way to rebind a helper from inside a function."""
        for name in node.names:
            if name in CHECK_HELPERS:
                self.found(node, f"rebinds the checks' helper {name}")

    visit_Nonlocal = visit_Global


def _magics(source: str) -> list[Finding]:
    """IPython magics and shell commands, but those an honest notebook uses."""
    findings = []
    for line_no, line in enumerate(source.splitlines(), 1):
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")) and not stripped.startswith(ALLOWED_MAGICS):
            findings.append(Finding(line_no, f"IPython magic or shell command {stripped.split()[0]!r}"))
    return findings


def _imported_names(tree: ast.AST) -> set[str]:
    """The names the cell's imports bind (``import torch.nn as tnn``: ``tnn``)."""
    return {(alias.asname or alias.name).split(".")[0] for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}


def scan_source(source: str, imported_modules: set[str] | None = None) -> list[Finding]:
    """Constructs in one cell's code that reach for the grader. An empty list for honest code.
    ``imported_modules``: names that stand for modules beyond ``MODULE_NAMES`` and the cell's imports."""
    findings = _magics(source)
    try:
        tree = ast.parse(_strip_magics(source))
    except SyntaxError:
        return findings  # it fails to run; its checks fail on their own
    modules = MODULE_NAMES | set(imported_modules or ()) | _imported_names(tree)
    findings += _Scanner(modules).scan(tree)
    return list({(f.line, f.what): f for f in findings}.values())


# ---------------------------------------------------------------- the in-kernel probe

PROBE = r'''
def __course_probe_install(name, cell_dirs):
    import builtins, sys, types, hashlib, importlib
    ip = get_ipython()
    kernel = getattr(ip, "kernel", None)
    _id, _len, _isinstance, _getattr, _sorted, _vars, _list = id, len, isinstance, getattr, sorted, vars, list
    _startswith = str.startswith
    watched_modules = ("torch", "torch.nn", "torch.nn.functional", "math", "utils", "utils.grading",
                       "utils.basic_unet", "utils.unet_utils", "utils.ddpm_utils", "utils.guidance", "utils.blocks",
                       "utils.timesteps", "utils.fast", "einops",
                       "importlib", "types", "IPython.core.interactiveshell")
    def classes():
        import torch
        found = [torch.Tensor, torch.nn.Module, type(ip)] + _list(type(ip).__mro__) + _list(type(kernel).__mro__ if kernel else [])
        for value in _list(_vars(torch.nn).values()):
            if _isinstance(value, type):
                found.append(value)
        return found
    def code_of(value):
        code = _getattr(value, "__code__", None)
        if code is None:
            code = _getattr(_getattr(value, "__func__", None), "__code__", None)
        if not _isinstance(code, types.CodeType):
            return None
        return hashlib.sha1(code.co_code + repr(code.co_consts).encode() + repr(code.co_names).encode()).hexdigest()
    def module_state(module):
        state = {}
        for key, value in _list(_vars(module).items()):
            state[key] = (_id(value), code_of(value))
        return state
    def cell_defined(value):
        for candidate in (value, _getattr(value, "__call__", None), _getattr(value, "__func__", None),
                          _getattr(value, "func", None), _getattr(type(value), "__call__", None)):
            code = _getattr(candidate, "__code__", None)
            if _isinstance(code, types.CodeType) and any(_startswith(code.co_filename, d) for d in cell_dirs):
                return True
        for attr in ("transform", "visit", "visit_Module", "__call__"):
            code = _getattr(_getattr(type(value), attr, None), "__code__", None)
            if _isinstance(code, types.CodeType) and any(_startswith(code.co_filename, d) for d in cell_dirs):
                return True
        return False
    def snapshot():
        state = {"builtins": {k: _id(v) for k, v in _list(_vars(builtins).items())}}
        for m in watched_modules:
            module = sys.modules.get(m)
            if module is not None:
                state["module " + m] = module_state(module)
        for cls in classes():
            state["class " + cls.__module__ + "." + cls.__qualname__] = {k: _id(v) for k, v in _list(_vars(cls).items())}
            live["class " + cls.__module__ + "." + cls.__qualname__] = cls
        state["modules"] = {k: _id(v) for k, v in _list(sys.modules.items())}
        state["shell attributes"] = {k: _id(v) for k, v in _list(_vars(ip).items()) if callable(v)}
        state["kernel attributes"] = {k: _id(v) for k, v in _list(_vars(kernel).items()) if callable(v)} if kernel else {}
        return state
    managed = {"exit", "quit", "get_ipython", "input", "raw_input", "getpass", "display", "help", "_",
               "__IPYTHON__", "copyright", "credits", "license", "dreload", "runfile"}
    import os
    _abspath, _fsdecode = os.path.abspath, os.fsdecode
    allowed = (os.path.realpath(os.getcwd()), os.getcwd(), "/tmp", "/dev/")
    sensitive = ("gradebook", "/solutions/", "/submitted/", "/autograded/", "nbgrader_config", "/source/")
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    path_events = {"os.remove", "os.rename", "os.rmdir", "os.chmod", "os.chown", "os.truncate", "os.link",
                   "os.symlink", "os.mkdir", "shutil.rmtree", "shutil.move", "shutil.copyfile", "os.utime"}
    accesses = []
    def audit(event, args):
        if event != "open" and event not in path_events and event not in ("socket.connect", "sys.addaudithook"):
            return
        if _len(accesses) >= 10:
            return
        try:
            if event == "socket.connect":
                address = args[1]
                if not (_isinstance(address, (str, bytes))):  # Unix sockets are the kernel's own
                    accesses.append("connects to " + repr(address)[:60])
                return
            if event == "sys.addaudithook":
                accesses.append("adds an audit hook")
                return
            target = args[0]
            if not _isinstance(target, (str, bytes)) or not target:
                return
            path = _abspath(_fsdecode(target))
            if event == "open":
                mode, flags = args[1], args[2] if _len(args) > 2 else 0
                writing = (mode is not None and any(c in mode for c in "wax+")) or \
                    (mode is None and _isinstance(flags, int) and flags & write_flags)
            else:
                writing = True
            if _startswith(path, allowed):
                return
            if writing:
                accesses.append(("writes " if event == "open" else event + " ") + path)
            elif any(w in path for w in sensitive):
                accesses.append("opens " + path)
        except Exception:
            pass
    sys.addaudithook(audit)
    live = {}
    base = snapshot()
    def current(part, key):
        if _startswith(part, "module "):
            module = sys.modules.get(part[7:])
            return _vars(module).get(key) if module is not None else None
        if part in live:
            return _vars(live[part]).get(key)
        return None
    def library_part(part):
        return (_startswith(part, "module ") or _startswith(part, "class ")) and not _startswith(part, "module utils") \
            and not _startswith(part, "class utils")
    def foreign(part, value):
        """A library attribute replaced by code written in a cell, or by something from elsewhere."""
        if cell_defined(value):
            return True
        owner = part.split(" ", 1)[1].split(".")[0]
        origin = _getattr(value, "__module__", None) or ""
        if callable(value) and origin and not _startswith(origin, owner) and origin not in ("builtins",):
            return origin == "__main__"
        return False
    def hooks():
        found = []
        lists = {"input transformer": ip.input_transformers_cleanup + ip.input_transformers_post
                 + _list(_getattr(ip.input_transformer_manager, "cleanup_transforms", []))
                 + _list(_getattr(ip.input_transformer_manager, "line_transforms", [])),
                 "AST transformer": _list(ip.ast_transformers),
                 "import hook": _list(sys.meta_path) + _list(sys.path_hooks)}
        for event, callbacks in ip.events.callbacks.items():
            lists["'" + event + "' event hook"] = _list(callbacks)
        for kind, items in lists.items():
            for item in items:
                if cell_defined(item):
                    found.append(kind + " written in a cell")
        if ip.custom_exceptions:
            found.append("custom exception handler")
        for hook_name in ("excepthook", "displayhook"):
            if cell_defined(_getattr(sys, hook_name)):
                found.append("sys." + hook_name + " replaced")
        if sys.gettrace() is not None and cell_defined(sys.gettrace()):
            found.append("a trace function")
        if sys.getprofile() is not None and cell_defined(sys.getprofile()):
            found.append("a profile function")
        return found
    def compare():
        now = snapshot()
        changed = []
        for part, before in base.items():
            after = now.get(part, {})
            lax = part in ("modules",)
            for key, value in before.items():
                if part == "builtins" and key in managed:
                    continue
                if key.startswith("__") and key.endswith("__") and key not in ("__import__", "__build_class__", "__code__", "__file__", "__call__", "__init__", "__getattr__"):
                    continue
                if key not in after:
                    changed.append(part + ": " + key + " removed")
                elif after[key] != value and not lax:
                    old, new = value, after[key]
                    if _isinstance(old, tuple) and old[1] is not None and old[1] == new[1]:
                        continue  # reloaded, same code
                    if library_part(part) and not foreign(part, current(part, key)):
                        continue  # the library rewrapped its own function (torch does, lazily)
                    changed.append(part + ": " + key + " replaced")
                elif lax and after[key] != value and not _startswith(key, "_"):
                    changed.append(part + ": " + key + " replaced")
            if part == "builtins":
                for key in after:
                    if key not in before and key not in managed:
                        changed.append("builtins: " + key + " added")
        return changed
    class Probe:
        def __call__(self):
            return tuple(sorted(set(compare() + hooks() + ["file or network access: " + a for a in accesses])))[:20]
    sys.modules[name] = types.ModuleType(name)
    sys.modules[name].probe = Probe()
__course_probe_install({name!r}, {cell_dirs!r})
del __course_probe_install
'''

PRELOAD = """\
def __course_preload():
    # The course's and the libraries' modules come from the environment, never from files the
    # submission put in its folder (which is on the path, first, once the kernel runs).
    import os, sys
    saved, cwd = list(sys.path), os.getcwd()
    sys.path[:] = [p for p in sys.path if p not in ("", ".", cwd)]
    try:
        import torch, torch.nn, torch.nn.functional, math, einops, matplotlib, matplotlib.pyplot
        import utils, utils.grading
    finally:
        sys.path[:] = saved
__course_preload()
del __course_preload
"""


def cell_dirs() -> list[str]:
    """How the file names of code compiled from a notebook's cells begin, in the kernel."""
    import tempfile

    return ["<ipython-input", "<string>", "<stdin>", tempfile.gettempdir().rstrip("/") + "/ipykernel_",
            "/tmp/ipykernel_"]


def probe_install_code(name: str) -> str:
    """Code that preloads what the checks use and installs the probe under ``sys.modules[name]``."""
    return PRELOAD + PROBE.replace("{name!r}", repr(name)).replace("{cell_dirs!r}", repr(cell_dirs()))


def probe_expression(name: str) -> str:
    return f"__import__('sys').modules[{name!r}].probe()"


# ---------------------------------------------------------------- answers copied from utils

class _Normalise(ast.NodeTransformer):
    """Rename every identifier by order of first appearance; drop docstrings and annotations."""

    def __init__(self):
        self.names: dict[str, str] = {}

    def _name(self, name: str) -> str:
        return self.names.setdefault(name, f"v{len(self.names)}")

    def visit_Name(self, node):
        return ast.copy_location(ast.Name(id=self._name(node.id), ctx=ast.Load()), node)

    def visit_arg(self, node):
        return ast.copy_location(ast.arg(arg=self._name(node.arg), annotation=None), node)

    def visit_Attribute(self, node):
        self.generic_visit(node)
        node.attr = self._name(node.attr)
        node.ctx = ast.Load()
        return node

    def visit_keyword(self, node):
        self.generic_visit(node)
        if node.arg:
            node.arg = self._name(node.arg)
        return node

    def _body(self, node):
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                and isinstance(body[0].value.value, str):
            body = body[1:] or [ast.Pass()]
        node.body = body

    def visit_FunctionDef(self, node):
        self._body(node)
        node.name = self._name(node.name)
        node.returns = None
        node.decorator_list = []
        self.generic_visit(node)
        return node

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        self._body(node)
        node.name = self._name(node.name)
        node.decorator_list = []
        self.generic_visit(node)
        return node

    def visit_Constant(self, node):
        return node


def _normal(node: ast.AST) -> str:
    import copy

    return ast.dump(_Normalise().visit(copy.deepcopy(node)), annotate_fields=False)


def _size(node: ast.AST) -> int:
    return sum(1 for _ in ast.walk(node))


def definitions(source: str, min_size: int = 40) -> list[tuple[str, str]]:
    """(name, normalised code) of every class, function and method in ``source`` big enough to matter."""
    try:
        tree = ast.parse(_strip_magics(source))
    except SyntaxError:
        return []
    return [(node.name, _normal(node)) for node in ast.walk(tree)
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and _size(node) >= min_size]


@functools.lru_cache(maxsize=8)
def utils_definitions(utils_dir: str) -> dict[str, str]:
    """Normalised code -> qualified name, for every definition in the course's ``utils`` package."""
    table: dict[str, str] = {}
    for path in sorted(Path(utils_dir).glob("*.py")):
        for name, code in definitions(path.read_text()):
            table.setdefault(code, f"utils.{path.stem}.{name}")
    return table


def copied_utils(source: str, utils_dir: Path, allowed: set[str]) -> list[str]:
    """Names of ``utils`` definitions that ``source`` reproduces (up to names and formatting),
    other than those in ``allowed`` (normalised definitions of the instructor's own answers)."""
    table = utils_definitions(str(utils_dir))
    hits = []
    for name, code in definitions(source):
        if code in table and code not in allowed:
            hits.append(f"{name} = {table[code]}")
    return hits


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
