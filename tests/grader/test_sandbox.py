"""The sandbox's arguments, without a kernel: what ``launcher_config`` keeps and what ``bwrap_command``
asks bubblewrap for; then, where bubblewrap runs, that a process started with those arguments really
cannot write outside its working folder, reach the network or see the grader's environment."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from grader.sandbox import Limits, bwrap_command, launcher_config, sandbox_available


def _config(tmp_path: Path, **changes) -> dict:
    course = tmp_path / "course"
    for folder in ("utils", "judge", "utils/sub"):
        (course / folder).mkdir(parents=True, exist_ok=True)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    settings = dict(sandbox=True, read_only=[course / "utils" / "sub", course / "utils", course / "judge",
                                             course / "utils", tmp_path / "missing"],
                    writable=[work], env={"HOME": str(work), "COURSE_GRADER_RUN": "m1"}, cwd=work,
                    limits=Limits(cell_timeout=7.0))
    settings.update(changes)
    return launcher_config(**settings)


def _pairs(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args) if arg == flag]


# every bwrap option the sandbox may use, with how many values follow it; anything else is a hole
OPTIONS = {"--unshare-all": 0, "--die-with-parent": 0, "--new-session": 0, "--clearenv": 0, "--proc": 1,
           "--dev": 1, "--tmpfs": 1, "--ro-bind": 2, "--symlink": 2, "--bind": 2, "--setenv": 2, "--chdir": 1}


def _options(args: list[str]) -> list[str]:
    """The options of a bwrap command line, checked against OPTIONS as they are read."""
    found, i = [], 1
    while i < len(args):
        assert args[i] in OPTIONS, f"bwrap option {args[i]!r} is not one the sandbox may use"
        found.append(args[i])
        i += 1 + OPTIONS[args[i]]
    return found


def test_the_config_keeps_existing_read_only_folders_once_parents_first(tmp_path):
    config = _config(tmp_path)
    course = (tmp_path / "course").resolve()
    assert config["read_only"] == [str(course / "utils"), str(course / "judge"), str(course / "utils" / "sub")]
    assert config["writable"] == [str((tmp_path / "work").resolve())]
    assert config["cwd"] == str((tmp_path / "work").resolve())
    assert config["limits"]["cell_timeout"] == 7.0 and config["limits"]["memory"] == Limits().memory
    json.dumps(config)  # the launcher reads it from a file


def test_bwrap_isolates_everything_and_binds_only_what_the_config_names(tmp_path):
    config = _config(tmp_path)
    args = bwrap_command(config)
    assert args[0] == "bwrap"
    options = _options(args)
    for flag in ("--unshare-all", "--die-with-parent", "--new-session", "--clearenv"):
        assert flag in options, flag
    assert "--share-net" not in args                      # no network: --unshare-all includes it
    assert _pairs(args, "--tmpfs") == ["/tmp"]            # a fresh /tmp, not the host's
    assert _pairs(args, "--bind") == config["writable"]   # the one writable place
    ro = _pairs(args, "--ro-bind")
    assert all(path in ro for path in config["read_only"])
    assert not set(ro) & set(config["writable"])
    assert all(path.startswith(("/usr", "/bin", "/lib", "/sbin", "/etc")) or path in config["read_only"] for path in ro)
    assert str(Path.home()) not in ro and "/" not in ro   # no home folder, not the whole disk
    assert [args[i + 1:i + 3] for i, arg in enumerate(args) if arg == "--setenv"] == \
        [[key, value] for key, value in config["env"].items()]
    assert _pairs(args, "--chdir") == [config["cwd"]]
    # parents are bound before their children (a child bound first would be hidden by its parent)
    assert ro.index(config["read_only"][0]) < ro.index(config["read_only"][-1])


PROBE = r"""
import os, socket, sys
from pathlib import Path
work, course = Path(sys.argv[1]), Path(sys.argv[2])
(work / "ok.txt").write_text("written")
results = {"work": (work / "ok.txt").read_text()}
for name, target in (("course", course / "utils" / "x.txt"), ("environment", Path(sys.prefix) / "x.txt")):
    try:
        target.write_text("x")
        results[name] = "written"
    except OSError as error:
        results[name] = type(error).__name__
try:
    socket.create_connection(("1.1.1.1", 53), timeout=2)
    results["network"] = "connected"
except OSError as error:
    results["network"] = type(error).__name__
results["env"] = sorted(k for k in os.environ if k not in ("LC_CTYPE", "PWD"))  # set by Python, by bwrap
results["visible"] = [p for p in sys.argv[3:] if Path(p).exists()]
print(repr(results))
"""


@pytest.mark.skipif(not sandbox_available()[0], reason=sandbox_available()[1])
def test_a_process_in_the_sandbox_writes_only_its_folder_and_has_no_network(tmp_path):
    python = Path(sys.executable)
    environment = Path(sys.prefix).resolve()
    config = _config(tmp_path, read_only=[tmp_path / "course" / "utils", environment, python.resolve().parent],
                     env={"COURSE_GRADER_RUN": "m1", "PATH": "/usr/bin"})
    work = config["writable"][0]
    # outside /tmp (which the sandbox replaces): the course's solutions and grader, and what the home
    # folder holds apart from the way to a bound folder (bwrap makes the folders leading to a bind)
    bound = config["read_only"] + config["writable"]
    home = [str(entry) for entry in sorted(Path.home().iterdir())[:20]
            if not any(path == str(entry) or path.startswith(str(entry) + os.sep) for path in bound)]
    hidden = [str(ROOT / "solutions"), str(ROOT / "grader"), str(ROOT / "nbgrader_config.py"), *home]
    assert all(Path(path).exists() for path in hidden)
    command = bwrap_command(config) + ["--", str(python), "-c", PROBE, work, str(tmp_path / "course"), *hidden]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "SECRET_TOKEN": "grader-only"})
    assert done.returncode == 0, done.stderr
    results = eval(done.stdout.strip().splitlines()[-1])  # noqa: S307 (our own repr of plain values)
    assert results["work"] == "written", results
    assert results["course"] != "written" and results["environment"] != "written", results
    assert results["network"] != "connected"
    assert results["env"] == ["COURSE_GRADER_RUN", "PATH"], results["env"]
    assert results["visible"] == [], results["visible"]  # not bound: not there at all
