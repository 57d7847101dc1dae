"""Signs that a submission reaches for the grader, seen from the trusted side.

Two independent looks, so that defeating one is not enough:

- ``scan_source``: the code of every cell the student wrote, read (never run) before grading.
  It names constructs honest answers never need: IPython input/AST transformers and event hooks,
  custom exception handlers, ``sys.modules``, builtins, import hooks, tracing, assigning to an
  attribute of a module (``torch.allclose = ...``, ``utils.grading.check = ...``), rebinding the
  checks' helpers, ``importlib.reload``, dynamic code (``exec``/``eval``/``compile``), writing to
  the course's files, signalling other processes. One rule a method of ``_Scanner``.
- ``grader.probe``: code the grader runs in the kernel before the first cell (``probe_install_code``).
  It records the identity of every builtin, of the attributes of the watched modules, of IPython's
  and the kernel's methods, the transformer and hook lists, and the code of the checks. After every
  cell the grader asks it, through ``user_expressions`` (which no input transformer sees), what
  changed (``probe_expression``). Hooks whose code was written in a cell are named.

What is watched is listed once, in ``grader.watchlist``: the scanner reads it, the probe receives it.

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

from grader import kernel_code
from grader.watchlist import (COURSE_PATH_WORDS, GRADER_WORDS, INTERNAL_MODULES, MODULE_NAMES, NETWORK_MODULES,
                              PROBE_SENSITIVE_PATHS, SENSITIVE_STRINGS, WATCHED_MODULES)

PROBE_SOURCE = Path(__file__).with_name("probe.py")

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

def cell_dirs() -> list[str]:
    """How the file names of code compiled from a notebook's cells begin, in the kernel."""
    import tempfile

    return ["<ipython-input", "<string>", "<stdin>", tempfile.gettempdir().rstrip("/") + "/ipykernel_",
            "/tmp/ipykernel_"]


def probe_install_code(name: str) -> str:
    """Code that preloads what the checks use and installs ``grader.probe`` as ``sys.modules[name]``, its
    probe taking the kernel's first snapshot."""
    args = [cell_dirs(), list(WATCHED_MODULES), list(PROBE_SENSITIVE_PATHS)]
    return kernel_code.install_code(name, PROBE_SOURCE, "install", args, "probe")


def probe_expression(name: str) -> str:
    """What changed in the kernel since the probe was installed (a tuple of lines; empty: nothing)."""
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
