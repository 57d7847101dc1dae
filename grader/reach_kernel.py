"""In the grading kernel: does an answer reach the course's finished version of what it asks for?

The course keeps a finished version of most answers in ``utils`` (``utils.basic_unet.DownBlock`` for
01's ``DownBlock``). An answer that hands the work to it, by whatever route, has not answered. Two
looks, both at run time, so that no spelling of the route hides it:

- ``Watch.inspect``: after the answer cell (and after each of its tests), the objects it is asked to
  define are walked: classes (their bases and everything in their ``__dict__``), functions (their
  closures, defaults, ``__wrapped__`` and the globals their code names, and attributes of those
  globals their code names), bound methods, ``functools.partial`` objects, containers and
  instances. Meeting a finished object, its code, or an instance of a finished class is a hit.
- ``Watch.start``/``Watch.stop``: while the answer cell and its tests run, a trace function (called
  as each Python function starts; it traces no lines) watches the code of the finished versions.
  Entering it is a hit when code the student wrote (a cell other than the course's, or a file handed
  in) is on the stack below it, or when it runs on an object whose class does not derive from the
  finished class (a method copied into the student's class).

The course's own test cells run the finished versions to compare with; their frames are trusted (the
grader passes their sources). Other course helpers (``utils`` functions the notebook imports, the
finished versions of what earlier notebooks taught) are never watched.

This module is sent to the kernel as source by ``grader.finished`` and runs there; it imports only the
standard library, so it can be tested in-process too.
"""
import functools
import importlib
import os
import sys
import threading
import types

_MAX_NODES = 4000
_MAX_HITS = 5


def _qualified(obj) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', getattr(obj, '__name__', '?'))}"


def resolve(target: str):
    """The object named ``module:qualname`` (``utils.ddpm_utils:DDPM.q_sample``), or None."""
    module_name, _, qualname = target.partition(":")
    try:
        obj = sys.modules.get(module_name) or importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except Exception:
        return None
    return obj


def _functions_of(value):
    """The plain functions behind a class attribute (methods, static and class methods, properties)."""
    if isinstance(value, (staticmethod, classmethod)):
        value = value.__func__
    if isinstance(value, property):
        return [f for f in (value.fget, value.fset, value.fdel) if isinstance(f, types.FunctionType)]
    return [value] if isinstance(value, types.FunctionType) else []


def _unwrapped(fn, module_file):
    """The functions behind ``fn`` (through ``__wrapped__``, as decorators such as ``torch.no_grad``
    leave it) whose code was written in ``module_file``: a decorator's own code is shared by every
    function it wraps, so it is never taken for the finished version's."""
    found, seen = [], set()
    while isinstance(fn, types.FunctionType) and id(fn) not in seen:
        seen.add(id(fn))
        if fn.__code__.co_filename == module_file:
            found.append(fn)
        fn = getattr(fn, "__wrapped__", None)
    return found


class Finished:
    """The finished versions of one answer: the objects, and the code that runs when they do."""

    def __init__(self, targets):
        self.objects = {}    # id -> label, every finished object (classes, functions, methods)
        self.classes = []    # finished classes
        self.codes = {}      # co_name -> [(code, owner class or None, label)]
        for target in targets:
            obj = resolve(target)
            if obj is None:
                continue
            label = target.replace(":", ".")
            qualname = target.partition(":")[2]
            # the file it was written in (a name re-exported by another utils module keeps its own)
            module_file = getattr(sys.modules.get(getattr(obj, "__module__", None) or ""), "__file__", None)
            self.objects[id(obj)] = label
            if isinstance(obj, type):
                self.classes.append(obj)
                for name, value in vars(obj).items():
                    for wrapper in _functions_of(value):
                        for fn in _unwrapped(wrapper, module_file):
                            self.objects[id(wrapper)] = self.objects[id(fn)] = f"{label}.{name}"
                            self._add_code(fn.__code__, obj, f"{label}.{name}")
            else:
                owner = resolve(target.rsplit(".", 1)[0]) if "." in qualname else None
                for wrapper in _functions_of(obj):
                    for fn in _unwrapped(wrapper, module_file):
                        self.objects[id(fn)] = label
                        self._add_code(fn.__code__, owner if isinstance(owner, type) else None, label)

    def _add_code(self, code, owner, label):
        self.codes.setdefault(code.co_name, []).append((code, owner, label))

    def code_label(self, code):
        for known, owner, label in self.codes.get(code.co_name, ()):
            if code is known or code == known:
                return known, owner, label
        return None

    def __bool__(self):
        return bool(self.objects)


class Watch:
    """One per kernel. ``answers``: grade id -> {"names": [...], "targets": ["module:qualname", ...]};
    ``trusted_sources``: the sources of the course's own cells (their frames are not the student's);
    ``cell_prefixes``: how the file names of code compiled from cells begin."""

    def __init__(self, answers, trusted_sources, cell_prefixes):
        self.answers = answers
        self.cell_prefixes = tuple(cell_prefixes)
        self.work = os.path.realpath(os.getcwd())
        self.trusted = set()
        shell = _shell()
        compiler = getattr(shell, "compile", None)
        for source in trusted_sources:
            for raw in (source, source.rstrip("\n"), source + "\n"):
                try:
                    self.trusted.add(compiler.get_code_name(raw, raw, 0))
                except Exception:
                    pass
        self.finished_cache = {}
        self.active = None       # Finished watched now
        self.hits = []
        self.saved = None
        self.tracer = self._trace

    # ---------------------------------------------------------------- whose code is this

    def finished(self, gid):
        if gid not in self.finished_cache:
            self.finished_cache[gid] = Finished(self.answers.get(gid, {}).get("targets", []))
        return self.finished_cache[gid]

    def students(self, code) -> bool:
        """Code the student wrote: compiled from a cell that is not the course's, or a file handed in."""
        name = code.co_filename
        if name.startswith(self.cell_prefixes):
            return name not in self.trusted
        return name.startswith(self.work + os.sep)

    # ---------------------------------------------------------------- run time

    def start(self, gid) -> bool:
        """Watch the finished versions of answer ``gid`` until ``stop``. False if it has none."""
        self.stop()
        finished = self.finished(gid)
        if not finished.codes:
            return False
        self.active, self.hits = finished, []
        self.saved = sys.gettrace()
        sys.settrace(self.tracer)
        threading.settrace(self.tracer)
        return True

    def stop(self) -> list:
        """Stop watching; what was seen since ``start`` (one line per finished piece reached)."""
        if self.active is None:
            return []
        found = list(self.hits)
        if sys.gettrace() is not self.tracer:
            found.append("the grader's watch on the course's finished code was switched off while the cell ran")
        sys.settrace(self.saved)
        threading.settrace(None)
        self.active, self.hits, self.saved = None, [], None
        return found

    def _trace(self, frame, event, arg):
        """The global trace function: called as each Python function starts; returns None (no line events)."""
        active = self.active
        if active is None:
            return
        try:
            code = frame.f_code
            if code.co_name not in active.codes:
                return
            known = active.code_label(code)
            if known is None:
                return
            _code, owner, label = known
            why = None
            caller = frame.f_back
            while caller is not None:
                if self.students(caller.f_code):
                    why = f"your code runs {label} (line {caller.f_lineno} of {_where(caller.f_code)})"
                    break
                caller = caller.f_back
            if why is None and owner is not None and code.co_argcount:
                names = code.co_varnames
                if names and names[0] in frame.f_locals:
                    self_type = type(frame.f_locals[names[0]])
                    if owner not in getattr(self_type, "__mro__", ()):
                        why = f"{label} runs as a method of your class {self_type.__qualname__}"
            if why and why not in self.hits and len(self.hits) < _MAX_HITS:
                self.hits.append(why)
        except Exception:
            pass

    def begin(self, gid, namespace=None) -> list:
        """Look at the objects of answer ``gid`` in ``namespace`` (if given), then watch it run."""
        found = self.inspect(gid, namespace) if namespace is not None else []
        self.start(gid)
        return found

    def end(self, gid, namespace=None) -> list:
        """Stop watching; what was seen, and what the objects of ``gid`` in ``namespace`` (if given) hold."""
        return self.stop() + (self.inspect(gid, namespace) if namespace is not None else [])

    # ---------------------------------------------------------------- the objects

    def inspect(self, gid, namespace) -> list:
        """What, in the objects answer ``gid`` defines (looked up in ``namespace``), is finished code."""
        finished = self.finished(gid)
        if not finished:
            return []
        found = []
        for name in self.answers.get(gid, {}).get("names", []):
            if name in namespace:
                hit = _Walk(self, finished).first(namespace[name], name)
                if hit:
                    found.append(hit)
        return found


def _where(code) -> str:
    name = code.co_filename
    return "your cell" if name.startswith(("<", "/tmp/")) else os.path.basename(name)


def _shell():
    try:
        return get_ipython()  # noqa: F821 (a builtin in the kernel)
    except NameError:
        return None


def _code_names(code, seen=None):
    """Every name the code (and the code nested in it) loads: globals and attributes."""
    seen = set() if seen is None else seen
    if id(code) in seen:
        return set()
    seen.add(id(code))
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const, seen)
    return names


class _Walk:
    def __init__(self, watch, finished):
        self.watch, self.finished = watch, finished
        self.seen = set()

    def first(self, obj, path):
        try:
            return self._visit(obj, path, 0)
        except RecursionError:
            return None

    def _own(self, fn) -> bool:
        """Written in the notebook or in a file handed in: worth walking into."""
        code = getattr(fn, "__code__", None)
        if isinstance(code, types.CodeType) and self.watch.students(code):
            return True
        return getattr(fn, "__module__", None) == "__main__"

    def _visit(self, obj, path, depth):
        """The first finished thing ``obj`` is, holds or reaches (a line that says how), or None."""
        if id(obj) in self.finished.objects:
            return f"{path} is {self.finished.objects[id(obj)]}"
        if depth > 8 or id(obj) in self.seen or len(self.seen) > _MAX_NODES:
            return None
        self.seen.add(id(obj))
        if isinstance(obj, (str, bytes, int, float, complex, bool, type(None), types.ModuleType)):
            return None
        if isinstance(obj, types.CodeType):
            known = self.finished.code_label(obj)
            return f"{path} runs the code of {known[2]}" if known else None
        if isinstance(obj, type):
            return self._visit_class(obj, path, depth)
        if isinstance(obj, types.FunctionType):
            return self._visit_function(obj, path, depth)
        parts = _parts(obj, path)
        return self._first(parts, depth) if parts is not None else self._visit_instance(obj, path, depth)

    def _first(self, parts, depth):
        """The first hit among ``parts`` ((value, path) pairs), one level deeper."""
        for value, path in parts:
            hit = self._visit(value, path, depth + 1)
            if hit:
                return hit
        return None

    def _visit_class(self, cls, path, depth):
        """A finished base; else, for a class written by the student, what its attributes reach."""
        for base in cls.__mro__[1:]:
            if id(base) in self.finished.objects:
                return f"{path} derives from {self.finished.objects[id(base)]}"
        if cls.__module__ == "__main__" or any(self._own(f) for v in vars(cls).values() for f in _functions_of(v)):
            return self._first([(value, f"{path}.{key}") for key, value in list(vars(cls).items())
                                if key not in ("__dict__", "__weakref__", "__doc__", "__module__", "__qualname__")],
                               depth)
        return None

    def _visit_function(self, fn, path, depth):
        """Finished code; else, for the student's function, what its closure, defaults and globals reach."""
        hit = self._visit(fn.__code__, path, depth + 1)
        if hit or not self._own(fn):
            return hit
        parts = [(c.cell_contents, "a variable it closes over") for c in (fn.__closure__ or ()) if _filled(c)]
        parts += [(v, "a default argument") for v in (fn.__defaults__ or ())]
        parts += [(v, "a default argument") for v in (fn.__kwdefaults__ or {}).values()]
        parts += [(v, "an attribute") for v in vars(fn).values()]
        names = _code_names(fn.__code__)
        for name in sorted(names):
            if name in fn.__globals__:
                parts.append((fn.__globals__[name], f"the global {name}"))
        for value, how in parts:
            hit = self._attribute_hit(value, names, path, how) or self._visit(value, f"{path} ({how})", depth + 1)
            if hit:
                return hit
        return None

    def _visit_instance(self, obj, path, depth):
        """An instance of a finished class; else what its class (if the student's) and its state reach."""
        kind = type(obj)
        for finished_class in self.finished.classes:
            if isinstance(obj, finished_class):
                return f"{path} holds an instance of {self.finished.objects[id(finished_class)]}"
        if kind.__module__ == "__main__" or isinstance(getattr(obj, "__dict__", None), dict):
            hit = self._visit(kind, path, depth + 1) if kind.__module__ == "__main__" else None
            if hit:
                return hit
            state = getattr(obj, "__dict__", None)
            if isinstance(state, dict):
                return self._visit(state, path, depth + 1)
        return None

    def _attribute_hit(self, value, names, path, how):
        """``module.Finished`` or ``Class.finished_method`` spelled in the code, with the module or class
        reached through a global (under any name), or held in a dict or sequence (``sys.modules``)."""
        if isinstance(value, (dict, list, tuple)):
            for item in list(value.values() if isinstance(value, dict) else value):
                if isinstance(item, (types.ModuleType, type)):
                    hit = self._attribute_hit(item, names, path, how)
                    if hit:
                        return hit
            return None
        if not isinstance(value, (types.ModuleType, type)):
            return None
        owner = getattr(value, "__name__", "") if isinstance(value, types.ModuleType) else value.__module__
        if not str(owner).startswith("utils"):
            return None
        for name in names:
            try:
                attr = (getattr(value, name, None) if isinstance(value, types.ModuleType)
                        else next((vars(k)[name] for k in value.__mro__ if name in vars(k)), None))
            except Exception:
                continue
            for candidate in [attr, *_functions_of(attr)]:
                if candidate is not None and id(candidate) in self.finished.objects:
                    return f"{path} reaches {self.finished.objects[id(candidate)]} ({how})"
        return None


def _filled(cell) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


def _parts(obj, path):
    """What a wrapper or a container holds, as (value, path) pairs; None for anything else."""
    if isinstance(obj, (staticmethod, classmethod)):
        return [(obj.__func__, path)]
    if isinstance(obj, property):
        return [(fn, path) for fn in (obj.fget, obj.fset, obj.fdel) if fn is not None]
    if isinstance(obj, (functools.partial, functools.partialmethod)):
        return [(value, f"{path} (a partial)") for value in (obj.func, *obj.args, *(obj.keywords or {}).values())]
    if isinstance(obj, types.MethodType):
        return [(obj.__func__, path), (obj.__self__, path)]
    if isinstance(obj, (dict, list, tuple, set, frozenset)):
        return [(value, path) for value in list(obj.values() if isinstance(obj, dict) else obj)[:200]]
    return None
