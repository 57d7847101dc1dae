"""Where a submission's kernel runs: a bubblewrap sandbox with resource limits, killed whole at the end.

The grading kernel is started through this module's launcher::

    python -m grader.sandbox CONFIG.json -- KERNEL ARGV ...

The launcher stays the kernel's parent (so a submission that kills its parent kills only the
launcher), makes itself a child subreaper (orphaned descendants come back to it and die with it),
sets the resource limits and then runs the kernel, inside ``bwrap`` when the sandbox is on:

- no network (``--unshare-net``; the grader talks to the kernel over Unix sockets), own process,
  IPC and host-name namespaces, and a fresh ``/tmp``;
- the filesystem is read-only and shows only the system, the Python environment, the course's
  ``utils/`` and ``judge/`` and the data folder; the submission's working folder is the one
  writable place. Solutions, the gradebook, the configuration, other students' work and the
  grader itself are not there at all;
- limits: address space, open files, core files and file size (setrlimit); the grader adds
  resident memory, process count and output size, cell and notebook wall time (see ``Limits``).

Where bubblewrap cannot run (no user namespaces), ``sandbox_available`` says why and the grader
runs the kernel without it, saying so loudly in every result's log; the limits still apply.
"""
from __future__ import annotations

import ctypes
import functools
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
RUN_MARK = "COURSE_GRADER_RUN"  # set in the kernel's environment; the cleanup finds stragglers by it


@dataclass
class Limits:
    """Resource limits for one submission. Times in seconds, sizes in bytes."""

    cell_timeout: float = 300.0        # one cell's wall time
    notebook_timeout: float = 1800.0   # the whole notebook's wall time
    memory: int = 6 << 30              # resident memory of the kernel and its children together
    address_space: int = 32 << 30      # RLIMIT_AS backstop (torch maps much more than it uses)
    processes: int = 64                # processes of the kernel's tree (launcher and sandbox included)
    tasks: int = 1024                  # processes and threads, where a pids cgroup can be made
    file_size: int = 2 << 30           # largest file the kernel may write
    output_kept: int = 2 << 20         # output kept in the executed notebook (the rest is dropped)
    output_flood: int = 64 << 20       # output received before the kernel is stopped
    stall_seconds: float = 120.0       # no CPU and no message for this long: the kernel stalled
    retries: int = 1                   # fresh attempts after a stall


@functools.lru_cache(maxsize=1)
def sandbox_available() -> tuple[bool, str]:
    """Whether bubblewrap can start a sandbox here, and if not, why."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return False, "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
    try:
        probe = subprocess.run([bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                                "--unshare-all", "--die-with-parent", "true"],
                               capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return False, f"bubblewrap does not start: {error}"
    if probe.returncode != 0:
        return False, f"bubblewrap cannot create namespaces here: {probe.stderr.strip()[:300]}"
    return True, "bubblewrap " + bwrap


def bwrap_command(config: dict) -> list[str]:
    """The bwrap arguments for ``config`` (made by ``launcher_config``)."""
    args = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--clearenv",
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for system in ("/usr", "/bin", "/lib", "/lib32", "/lib64", "/sbin", "/etc"):
        if os.path.lexists(system):
            # /bin, /lib... are symbolic links on merged-/usr systems; keep them links
            if os.path.islink(system):
                args += ["--symlink", os.readlink(system), system]
            else:
                args += ["--ro-bind", system, system]
    for path in config["read_only"]:
        args += ["--ro-bind", path, path]
    for path in config["writable"]:
        args += ["--bind", path, path]
    for key, value in config["env"].items():
        args += ["--setenv", key, value]
    args += ["--chdir", config["cwd"]]
    return args


def launcher_config(*, sandbox: bool, read_only: list[Path], writable: list[Path], env: dict[str, str],
                    cwd: Path, limits: Limits) -> dict:
    """What ``python -m grader.sandbox`` needs to start one kernel."""
    ro: list[str] = []
    for path in read_only:
        path = Path(path).resolve()
        if path.exists() and str(path) not in ro:
            ro.append(str(path))
    # Bind parents before children: a child bound first would be hidden by its parent.
    ro.sort(key=lambda p: p.count(os.sep))
    return {"sandbox": sandbox, "read_only": ro, "writable": [str(Path(p).resolve()) for p in writable],
            "env": env, "cwd": str(Path(cwd).resolve()), "limits": asdict(limits)}


CGROUP_ROOTS = (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup"))


def cgroup_path(mark: str) -> Path | None:
    """The pids cgroup for run ``mark`` (cgroup v1 ``pids`` or a v2 hierarchy with the pids controller)."""
    for root in CGROUP_ROOTS:
        if (root / "pids.max").exists() or (root / "cgroup.procs").exists() and (
                root.name == "pids" or "pids" in _read(root / "cgroup.subtree_control")):
            return root / f"course-grader-{mark}"
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def join_cgroup(mark: str, tasks: int) -> bool:
    """Put this process (and so the kernel and all it starts) in a cgroup of at most ``tasks`` tasks
    (processes and threads): a fork bomb stops there. False where cgroups cannot be written."""
    path = cgroup_path(mark)
    if path is None:
        return False
    try:
        path.mkdir(exist_ok=True)
        (path / "pids.max").write_text(str(tasks))
        (path / "cgroup.procs").write_text(str(os.getpid()))
        return True
    except OSError:
        return False


def remove_cgroup(mark: str) -> None:
    path = cgroup_path(mark)
    for _ in range(40):  # killed processes leave the cgroup once reaped
        if path is None or not path.exists():
            return
        try:
            path.rmdir()
        except OSError:
            time.sleep(0.05)


def _set_limits(limits: dict) -> None:
    def cap(kind, value):
        soft, hard = resource.getrlimit(kind)
        value = min(value, hard) if hard != resource.RLIM_INFINITY else value
        resource.setrlimit(kind, (value, value))

    cap(resource.RLIMIT_AS, limits["address_space"])
    cap(resource.RLIMIT_FSIZE, limits["file_size"])
    cap(resource.RLIMIT_CORE, 0)
    cap(resource.RLIMIT_NOFILE, 4096)


def launch(config_path: str, argv: list[str]) -> int:
    """Run the kernel ``argv`` under ``config``; return its exit status. Used as a process of its own."""
    config = json.loads(Path(config_path).read_text())
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    join_cgroup(config["env"].get(RUN_MARK, str(os.getpid())), config["limits"]["tasks"])
    command = (bwrap_command(config) + ["--"] + argv) if config["sandbox"] else argv
    env = None if config["sandbox"] else dict(config["env"])
    child = os.fork()
    if child == 0:
        try:
            os.setsid()
            _set_limits(config["limits"])
            if not config["sandbox"]:
                os.chdir(config["cwd"])
            if env is None:
                os.execvp(command[0], command)
            os.execvpe(command[0], command, env)
        finally:
            os._exit(127)

    def forward(signum, _frame):
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)
    status = 0
    while True:
        try:
            pid, wait_status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == child:
            status = os.waitstatus_to_exitcode(wait_status)
            # The kernel is gone: nothing it started may outlive it.
            kill_tree(os.getpid(), include_root=False)
    return status if status >= 0 else 128 - status


# ---------------------------------------------------------------- process trees, seen from outside

def _stat(pid: int) -> tuple[int, float, int] | None:
    """(parent pid, CPU seconds, resident bytes) of ``pid``, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except OSError:
        return None
    fields = data[data.rfind(")") + 2:].split()
    ticks = os.sysconf("SC_CLK_TCK")
    page = os.sysconf("SC_PAGE_SIZE")
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks, int(fields[21]) * page


def descendants(root: int) -> list[int]:
    """All live processes below ``root`` (not ``root`` itself)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _stat(int(entry))
            if info:
                children.setdefault(info[0], []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def tree_usage(root: int) -> tuple[float, int, int]:
    """(CPU seconds, resident bytes, number of processes) of ``root`` and everything below it."""
    cpu = rss = count = 0
    for pid in [root, *descendants(root)]:
        info = _stat(pid)
        if info:
            cpu += info[1]
            rss += info[2]
            count += 1
    return cpu, rss, count


def _thread_files(pid: int | str, name: str, skip_leader: bool = False) -> Iterator[bytes]:
    """The contents of ``/proc/PID/task/TID/name`` for each thread of ``pid`` still there."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return
    for tid in tasks:
        if skip_leader and tid == str(pid):
            continue
        try:
            with open(f"/proc/{pid}/task/{tid}/{name}", "rb") as f:
                yield f.read()
        except OSError:
            continue


def _read_environ(pid: str) -> bytes:
    """``pid``'s environment; through a live thread where the main thread has exited (a zombie leader,
    whose own environ reads empty or fails, depending on the kernel)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            data = f.read()
        if data:
            return data
    except PermissionError:
        return b""  # another user's process: none of its threads can be read either
    except OSError:
        pass
    return next((data for data in _thread_files(pid, "environ", skip_leader=True) if data), b"")


def processes_with_env(name: str, value: str) -> list[int]:
    """Processes but this one whose environment holds ``name=value``: what a run started, however far its
    processes went from the tree (a server, the kernels it started, a launcher's orphans)."""
    needle = f"{name}={value}".encode()
    return [int(entry) for entry in os.listdir("/proc")
            if entry.isdigit() and int(entry) != os.getpid() and needle in _read_environ(entry).split(b"\0")]


def marked_processes(mark: str) -> list[int]:
    """Processes whose environment carries ``RUN_MARK=mark`` (stragglers that left the tree)."""
    return processes_with_env(RUN_MARK, mark)


def _alive(pid: int) -> bool:
    """Whether any thread of ``pid`` is still running: not a zombie waiting for its parent to read its
    status. A process whose main thread has exited shows as a zombie while its other threads run on."""
    return any(_state(stat) not in (b"Z", b"X") for stat in _thread_files(pid, "stat"))


def _state(stat: bytes) -> bytes:
    """The state letter of a ``/proc/.../stat`` line (after the command name, which may hold ")")."""
    end = stat.rfind(b")")
    return stat[end + 2:end + 3]


def kill_tree(root: int, include_root: bool = True, mark: str | None = None) -> None:
    """SIGKILL everything below ``root`` (and ``root``), and every process marked with ``mark``."""
    for _ in range(3):
        pids = descendants(root) + ([root] if include_root else []) + (marked_processes(mark) if mark else [])
        pids = [pid for pid in pids if _alive(pid)]  # zombies are dead already: no reason to wait for them
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.05)


if __name__ == "__main__":
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        print("usage: python -m grader.sandbox CONFIG.json -- KERNEL ARGV ...", file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(launch(sys.argv[1], sys.argv[3:]))
