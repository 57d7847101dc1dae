"""In the grading kernel: has anything the checks rely on changed since the kernel started?

``install`` runs before the first cell. It loads the course's and the libraries' modules from the
environment (``preload``), adds an audit hook that notes file and network access (``Audit``), and
records (``Probe``) the identity of every builtin, of the attributes of the watched modules, of the
classes the checks use (``torch.Tensor``, every class of ``torch.nn``, IPython's and the kernel's), of
IPython's and the kernel's methods, and of ``sys.modules``. After every cell the grader calls the probe
through ``user_expressions`` (which no input transformer sees): what changed, which hooks whose code
was written in a cell are installed, what was accessed.

This module is sent to the kernel as source by ``grader.tamper``, with the watch lists as data, and runs
there; it imports only the standard library, so it can be tested in-process too.
"""
import builtins
import hashlib
import os
import sys
import types

# Bound when this module runs, before any cell: a cell that replaces the builtins cannot blind the probe.
_id, _len, _isinstance, _getattr, _vars, _list = id, len, isinstance, getattr, vars, list
_startswith = str.startswith
_abspath, _fsdecode = os.path.abspath, os.fsdecode

# Builtins that IPython itself sets and replaces.
MANAGED_BUILTINS = frozenset({
    "exit", "quit", "get_ipython", "input", "raw_input", "getpass", "display", "help", "_", "__IPYTHON__",
    "copyright", "credits", "license", "dreload", "runfile"})
# The only dunder names compared (the others change on their own).
COMPARED_DUNDERS = frozenset({"__import__", "__build_class__", "__code__", "__file__", "__call__", "__init__",
                              "__getattr__"})
# Audit events that change a path; the audit hook reports them outside the allowed folders.
PATH_EVENTS = frozenset({
    "os.remove", "os.rename", "os.rmdir", "os.chmod", "os.chown", "os.truncate", "os.link", "os.symlink",
    "os.mkdir", "shutil.rmtree", "shutil.move", "shutil.copyfile", "os.utime"})
AUDITED = PATH_EVENTS | {"open", "socket.connect", "sys.addaudithook"}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
MAX_ACCESSES = 10   # accesses noted at the most
MAX_CHANGES = 20    # lines of one answer at the most


def preload() -> None:
    """Import what the checks use from the environment, never from files the submission put in its
    folder (which is on the path, first, once the kernel runs)."""
    saved, cwd = _list(sys.path), os.getcwd()
    sys.path[:] = [p for p in sys.path if p not in ("", ".", cwd)]
    try:
        import torch, torch.nn, torch.nn.functional, math, einops, matplotlib, matplotlib.pyplot  # noqa: F401, E401
        import utils, utils.grading  # noqa: F401, E401
    finally:
        sys.path[:] = saved


def install(cell_dirs, watched_modules, sensitive_paths):
    """In the kernel, before the first cell: preload, start the audit hook, take the first snapshot.
    ``cell_dirs``: how the file names of code compiled from cells begin; ``watched_modules``: the modules
    whose attributes are recorded; ``sensitive_paths``: parts of the paths of the grader's files."""
    preload()
    cwd = os.getcwd()
    audit = Audit((os.path.realpath(cwd), cwd, "/tmp", "/dev/"), sensitive_paths)
    sys.addaudithook(audit)
    return Probe(get_ipython(), cell_dirs, watched_modules, audit)  # noqa: F821 (a builtin in the kernel)


# ---------------------------------------------------------------- whose code is this

def code_digest(value):
    """A digest of the code of ``value`` (a function or a method): equal after a reload of the same code."""
    code = _getattr(value, "__code__", None)
    if code is None:
        code = _getattr(_getattr(value, "__func__", None), "__code__", None)
    if not _isinstance(code, types.CodeType):
        return None
    return hashlib.sha1(code.co_code + repr(code.co_consts).encode() + repr(code.co_names).encode()).hexdigest()


def cell_defined(value, cell_dirs) -> bool:
    """Whether ``value`` (a function, a method, a callable object, a transformer) runs code compiled from
    a cell: code whose file name begins with one of ``cell_dirs``."""
    kind = type(value)
    for candidate in (value, _getattr(value, "__call__", None), _getattr(value, "__func__", None),
                      _getattr(value, "func", None), _getattr(kind, "__call__", None)):
        if _compiled_in(candidate, cell_dirs):
            return True
    return any(_compiled_in(_getattr(kind, attr, None), cell_dirs)
               for attr in ("transform", "visit", "visit_Module", "__call__"))


def _compiled_in(function, cell_dirs) -> bool:
    code = _getattr(function, "__code__", None)
    return _isinstance(code, types.CodeType) and any(_startswith(code.co_filename, d) for d in cell_dirs)


def _identities(namespace, only_callable=False) -> dict:
    return {k: _id(v) for k, v in _list(namespace.items()) if not only_callable or callable(v)}


def _module_state(module) -> dict:
    return {k: (_id(v), code_digest(v)) for k, v in _list(_vars(module).items())}


def _library_part(part) -> bool:
    """A part of the snapshot that a library owns (and may rewrap on its own): not the course's ``utils``."""
    return (_startswith(part, "module ") or _startswith(part, "class ")) and not _startswith(part, "module utils") \
        and not _startswith(part, "class utils")


# ---------------------------------------------------------------- file and network access

class Audit:
    """An audit hook (``sys.addaudithook``): notes, at most ``MAX_ACCESSES`` times, a write or a path
    change outside ``allowed`` (folders), an opening of a path that holds one of ``sensitive``, a
    connection other than a Unix socket's, a new audit hook."""

    def __init__(self, allowed, sensitive):
        self.allowed, self.sensitive = tuple(allowed), tuple(sensitive)
        self.accesses = []

    def __call__(self, event, args):
        if event not in AUDITED or _len(self.accesses) >= MAX_ACCESSES:
            return
        try:
            note = self.note(event, args)
        except Exception:
            return
        if note:
            self.accesses.append(note)

    def note(self, event, args):
        """What the event says of the submission, or None."""
        if event == "socket.connect":
            address = args[1]
            return None if _isinstance(address, (str, bytes)) else "connects to " + repr(address)[:60]
        if event == "sys.addaudithook":
            return "adds an audit hook"
        target = args[0]
        if not _isinstance(target, (str, bytes)) or not target:
            return None
        path = _abspath(_fsdecode(target))
        if _startswith(path, self.allowed):
            return None
        if event != "open":
            return event + " " + path
        mode, flags = args[1], args[2] if _len(args) > 2 else 0
        if (mode is not None and any(c in mode for c in "wax+")) or \
                (mode is None and _isinstance(flags, int) and flags & WRITE_FLAGS):
            return "writes " + path
        return "opens " + path if any(w in path for w in self.sensitive) else None


# ---------------------------------------------------------------- the probe

class Probe:
    """The state of the kernel when made; called, what changed since (a sorted tuple of lines).
    ``shell``: IPython's shell; ``audit``: the ``Audit`` hook whose accesses are reported."""

    def __init__(self, shell, cell_dirs, watched_modules, audit):
        self.shell, self.kernel = shell, _getattr(shell, "kernel", None)
        self.cell_dirs, self.watched = tuple(cell_dirs), tuple(watched_modules)
        self.audit = audit
        self.live = {}      # "class NAME" -> the class, as last seen
        self.base = self.snapshot()

    def __call__(self):
        changes = self.compare() + self.hooks() + ["file or network access: " + a for a in self.audit.accesses]
        return tuple(sorted(set(changes)))[:MAX_CHANGES]

    def classes(self) -> list:
        import torch

        shell_type, kernel = type(self.shell), self.kernel
        found = [torch.Tensor, torch.nn.Module, shell_type] + _list(shell_type.__mro__) \
            + _list(type(kernel).__mro__ if kernel else [])
        return found + [value for value in _list(_vars(torch.nn).values()) if _isinstance(value, type)]

    def snapshot(self) -> dict:
        """part ("builtins", "module NAME", "class NAME", ...) -> {key: identity}."""
        state = {"builtins": _identities(_vars(builtins))}
        for name in self.watched:
            module = sys.modules.get(name)
            if module is not None:
                state["module " + name] = _module_state(module)
        for cls in self.classes():
            part = "class " + cls.__module__ + "." + cls.__qualname__
            state[part] = _identities(_vars(cls))
            self.live[part] = cls
        state["modules"] = _identities(sys.modules)
        state["shell attributes"] = _identities(_vars(self.shell), only_callable=True)
        state["kernel attributes"] = _identities(_vars(self.kernel), only_callable=True) if self.kernel else {}
        return state

    def current(self, part, key):
        """The value of ``key`` in ``part`` now."""
        if _startswith(part, "module "):
            module = sys.modules.get(part[7:])
            return _vars(module).get(key) if module is not None else None
        if part in self.live:
            return _vars(self.live[part]).get(key)
        return None

    def foreign(self, part, value) -> bool:
        """A library attribute replaced by code written in a cell, or by something from elsewhere."""
        if cell_defined(value, self.cell_dirs):
            return True
        owner = part.split(" ", 1)[1].split(".")[0]
        origin = _getattr(value, "__module__", None) or ""
        if callable(value) and origin and not _startswith(origin, owner) and origin not in ("builtins",):
            return origin == "__main__"
        return False

    def compare(self) -> list:
        """What was removed, replaced or (builtins) added since the first snapshot."""
        now = self.snapshot()
        changed = []
        for part, before in self.base.items():
            after = now.get(part, {})
            changed += self._changed(part, before, after)
            if part == "builtins":
                changed += ["builtins: " + key + " added" for key in after
                            if key not in before and key not in MANAGED_BUILTINS]
        return changed

    def _changed(self, part, before, after) -> list:
        """The keys of one part removed or replaced (in ``sys.modules``: public names replaced only)."""
        changed = []
        lax = part == "modules"
        for key, value in before.items():
            if part == "builtins" and key in MANAGED_BUILTINS:
                continue
            if key.startswith("__") and key.endswith("__") and key not in COMPARED_DUNDERS:
                continue
            if key not in after:
                changed.append(part + ": " + key + " removed")
            elif after[key] != value and not lax:
                old, new = value, after[key]
                if _isinstance(old, tuple) and old[1] is not None and old[1] == new[1]:
                    continue  # reloaded, same code
                if _library_part(part) and not self.foreign(part, self.current(part, key)):
                    continue  # the library rewrapped its own function (torch does, lazily)
                changed.append(part + ": " + key + " replaced")
            elif lax and after[key] != value and not _startswith(key, "_"):
                changed.append(part + ": " + key + " replaced")
        return changed

    def hooks(self) -> list:
        """The hooks installed now whose code was written in a cell."""
        ip, found = self.shell, []
        manager = ip.input_transformer_manager
        lists = {"input transformer": ip.input_transformers_cleanup + ip.input_transformers_post
                 + _list(_getattr(manager, "cleanup_transforms", [])) + _list(_getattr(manager, "line_transforms", [])),
                 "AST transformer": _list(ip.ast_transformers),
                 "import hook": _list(sys.meta_path) + _list(sys.path_hooks)}
        for event, callbacks in ip.events.callbacks.items():
            lists["'" + event + "' event hook"] = _list(callbacks)
        for kind, items in lists.items():
            found += [kind + " written in a cell" for item in items if cell_defined(item, self.cell_dirs)]
        if ip.custom_exceptions:
            found.append("custom exception handler")
        for hook_name in ("excepthook", "displayhook"):
            if cell_defined(_getattr(sys, hook_name), self.cell_dirs):
                found.append("sys." + hook_name + " replaced")
        for what, hook in (("a trace function", sys.gettrace()), ("a profile function", sys.getprofile())):
            if hook is not None and cell_defined(hook, self.cell_dirs):
                found.append(what)
        return found
