"""The grader's own modules that run in the grading kernel (``grader.probe``, ``grader.reach_kernel``).

Each is an ordinary module of this package, read as a file and sent to the kernel as source; what it
needs to know arrives as data, the arguments of one call written as a literal. There it runs as a
module of its own, under a name the submission cannot guess, with code whose file name is
``<course-ATTRIBUTE>`` (no cell's: its frames are never taken for the student's).
"""
from __future__ import annotations

from pathlib import Path


def install_code(name: str, module_file: Path, entry: str, args: list, attribute: str) -> str:
    """Code that runs ``module_file`` in the kernel as the module ``sys.modules[name]`` and sets its
    ``attribute`` to what ``entry(*args)`` returns (``args``: data with a Python literal, no code). The
    module is put in ``sys.modules`` once ``entry`` has returned, so a snapshot taken by ``entry`` does
    not hold it."""
    source = Path(module_file).read_text()
    filename = f"<course-{attribute}>"
    return (
        "def __course_install(name, source, filename, entry, args, attribute):\n"
        "    import sys, types\n"
        "    module = types.ModuleType(name)\n"
        "    exec(compile(source, filename, 'exec'), module.__dict__)\n"
        "    module.__dict__[attribute] = module.__dict__[entry](*args)\n"
        "    sys.modules[name] = module\n"
        f"__course_install({name!r}, {source!r}, {filename!r}, {entry!r}, {args!r}, {attribute!r})\n"
        "del __course_install\n"
    )

