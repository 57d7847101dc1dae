"""The class environment ``env/`` and the course's code ``code/``: what every user's server and kernel run
(for hub/hubctl.py, as root)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from hub_layout import Layout
from hub_system import copy_files, files_of_course, run

WRAPPER = """#!{python}
# {name}: a command of the course's environment, run by the class environment's interpreter.
import sys
from importlib.metadata import EntryPoint
sys.exit(EntryPoint({name!r}, {value!r}, "console_scripts").load()())
"""
LIST_COMMANDS = ("import json; from importlib.metadata import entry_points; "
                 "print(json.dumps({e.name: e.value for e in entry_points(group='console_scripts')}))")


def site_packages(prefix: Path, python: Path) -> Path:
    """The site-packages folder of the environment at ``prefix`` whose interpreter is ``python``."""
    return Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip())


def python_version(python: Path | str) -> str:
    return run([str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]).stdout.strip()


def build_env(layout: Layout, venv: Path, python: Path) -> None:
    """Make ``env/``: a virtual environment of ``python`` (an interpreter every user may run) holding the
    packages of the course's environment ``venv`` and its Jupyter data (JupyterLab, nbgrader's extensions),
    with the course's own packages from ``code/`` first on the path, and the commands of those packages.

    The packages are hard links to the course environment's files when both are on one file system (no
    second copy, seconds to make), else copies. They are real files inside ``env/`` because the grader's
    sandbox shows a kernel its environment's folder and no other. Kept as it is while the course's
    environment is unchanged.

    Raises:
        RuntimeError: ``python`` and ``venv`` are different Python versions (compiled packages would not
            load), or a command fails.
    """
    venv_python = venv / "bin" / "python"
    if python_version(python) != python_version(venv_python):
        raise RuntimeError(f"{python} is Python {python_version(python)} but the course's environment {venv} is "
                           f"{python_version(venv_python)}: set HUB_PYTHON to a Python {python_version(venv_python)}")
    source = site_packages(venv, venv_python)
    made_from = f"{source} {source.stat().st_mtime_ns}\n"
    record = layout.env / ".made-from"
    if record.exists() and record.read_text() == made_from:
        return
    if layout.env.exists():
        shutil.rmtree(layout.env)
    run([str(python), "-m", "venv", "--without-pip", str(layout.env)])
    env_python = layout.env / "bin" / "python"
    target = site_packages(layout.env, env_python)
    target.rmdir()
    link_or_copy(source, target)
    # A line of a .pth file is a folder put on sys.path: the course's code, installed for everyone.
    (target / "00-diffusion-course.pth").write_text(f"{layout.code}\n")
    for shared in ("share/jupyter", "etc/jupyter"):
        (layout.env / shared).parent.mkdir(parents=True, exist_ok=True)
        link_or_copy(venv / shared, layout.env / shared)
    write_commands(layout.env)
    record.write_text(made_from)


def link_or_copy(source: Path, target: Path) -> None:
    """The folder ``source`` at ``target``: its files hard-linked, or copied where that is not possible.

    Raises:
        RuntimeError: neither works.
    """
    if subprocess.run(["cp", "-al", str(source), str(target)], capture_output=True).returncode != 0:
        shutil.rmtree(target, ignore_errors=True)
        run(["cp", "-a", str(source), str(target)])  # another file system


def write_commands(env: Path) -> None:
    """A script in ``env/bin`` for every command (console script) of the environment's packages."""
    env_python = env / "bin" / "python"
    commands = json.loads(run([str(env_python), "-c", LIST_COMMANDS]).stdout)
    for name, value in commands.items():
        script = env / "bin" / name
        if not script.exists():
            script.write_text(WRAPPER.format(python=env_python, name=name, value=value))
            script.chmod(0o755)


def class_python(layout: Layout, venv: Path) -> Path:
    """An interpreter every user may run, the one the course's environment ``venv`` was made from: in its
    place when others can run it there, else its installation hard-linked into ``python/`` (a Python
    under /root, as pyenv installs it), with the interpreter's own library path pointing into the copy.

    Raises:
        RuntimeError: the copy's interpreter links a shared libpython and patchelf is missing.
    """
    venv_python = venv / "bin" / "python"
    base = Path(run([str(venv_python), "-c", "import sys; print(sys.base_prefix)"]).stdout.strip())
    binary = base / "bin" / f"python{python_version(venv_python)}"
    if subprocess.run(["runuser", "-u", "nobody", "--", str(binary), "-c", "pass"], capture_output=True,
                      cwd="/").returncode == 0:
        return binary
    copy = layout.prefix / "python" / "bin" / binary.name
    if not copy.exists():
        shutil.rmtree(layout.prefix / "python", ignore_errors=True)
        link_or_copy(base, layout.prefix / "python")
        copy.unlink()
        shutil.copy2(binary, copy)  # a file of its own: its library path changes below
        if "RUNPATH" in run(["readelf", "-d", str(copy)]).stdout or "RPATH" in run(["readelf", "-d", str(copy)]).stdout:
            if shutil.which("patchelf") is None:
                raise RuntimeError(f"{binary} cannot be run by other users where it is; its copy needs patchelf "
                                   "(Debian: apt-get install patchelf), or set HUB_PYTHON")
            run(["patchelf", "--set-rpath", "$ORIGIN/../lib", str(copy)])
    return copy


def check_env_for(layout: Layout, user: str) -> None:
    """Check that ``user`` can run the class environment and import what a server and a kernel need.

    Raises:
        RuntimeError: the import fails as ``user`` (e.g. HUB_PYTHON lies in a folder others cannot enter).
    """
    probe = "import torch, nbgrader, jupyterhub, jupyterlab, ipykernel, utils, grader"
    done = subprocess.run(["runuser", "-u", user, "--", str(layout.env / "bin" / "python"), "-c", probe],
                          capture_output=True, text=True, cwd="/")
    if done.returncode != 0:
        raise RuntimeError(f"{user} cannot use the class environment {layout.env} ({probe!r} failed):\n"
                           f"{done.stderr[-2000:]}\nEvery user must be able to run HUB_PYTHON (not one under /root) and "
                           "read the class environment.")


# Instructors only: the wrong and the right answers that test the tests quote the model answers.
NOT_FOR_STUDENTS = "grader/answer_sets/"


def code_files(source: Path) -> list[str]:
    """The files of the course's Python packages (utils/, grader/) every user may read."""
    return [n for n in files_of_course(source)
            if n.split("/")[0] in ("utils", "grader") and not n.startswith(NOT_FOR_STUDENTS)]


def install_code(layout: Layout, source: Path) -> None:
    """Copy the course's Python packages (utils/, grader/) to ``code/``, readable by all, replacing the old.

    ``grader/answer_sets/`` stays out: it quotes the model answers (the instructor's ``course/`` has it)."""
    names = code_files(source)
    if layout.code.exists():
        shutil.rmtree(layout.code)
    copy_files(source, names, layout.code)
    for folder, _, files in os.walk(layout.code):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)
