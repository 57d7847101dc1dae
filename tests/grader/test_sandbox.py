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
    for flag in ("--unshare-all", "--die-with-parent", "--new-session", "--clearenv"):
        assert flag in args, flag
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
for name, target in (("course", course / "utils" / "x.txt"), ("home", Path(sys.argv[3]) / "x.txt")):
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
results["solutions"] = Path(sys.argv[4]).exists()
print(repr(results))
"""


@pytest.mark.skipif(not sandbox_available()[0], reason=sandbox_available()[1])
def test_a_process_in_the_sandbox_writes_only_its_folder_and_has_no_network(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "course" / "solutions").mkdir(parents=True)
    python = Path(sys.executable)
    environment = Path(sys.prefix).resolve()
    config = _config(tmp_path, read_only=[tmp_path / "course" / "utils", environment, python.resolve().parent],
                     env={"COURSE_GRADER_RUN": "m1", "PATH": "/usr/bin"})
    work = config["writable"][0]
    command = bwrap_command(config) + ["--", str(python), "-c", PROBE, work, str(tmp_path / "course"), str(home),
                                       str(tmp_path / "course" / "solutions")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "SECRET_TOKEN": "grader-only"})
    assert done.returncode == 0, done.stderr
    results = eval(done.stdout.strip().splitlines()[-1])  # noqa: S307 (our own repr of plain values)
    assert results["work"] == "written", results
    assert results["course"] in ("OSError", "PermissionError") and results["home"] != "written", results
    assert results["network"] != "connected"
    assert results["env"] == ["COURSE_GRADER_RUN", "PATH"], results["env"]
    assert results["solutions"] is False  # not bound: not there at all
