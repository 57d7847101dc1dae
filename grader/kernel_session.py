"""One grading kernel, from its start in the sandbox to the last process killed.

    session = KernelSession(nb, course_root, work, use_sandbox=True, limits=limits)   # files prepared
    with session:                                     # kernel started, the grader's probe installed
        done = session.execute(cell, index, timeout)  # one cell, through nbclient
        changes = session.probe()                     # what changed in the kernel since it started
    # kernel shut down, its whole process tree killed, its runtime folder and cgroup removed

The session owns the kernel manager (which launches the kernel through ``grader.sandbox``), the
nbclient client (which counts and caps output), the watchdog (``grader.watchdog``), the kernel's
environment and matplotlib folder, and the cleanup.
"""
from __future__ import annotations

import ast
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from functools import lru_cache
from pathlib import Path

import nbformat

from grader import sandbox as sb
from grader import tamper
from grader.sandbox import Limits
from grader.watchdog import Watchdog

PROBE = "the grader's probe"


@lru_cache(maxsize=None)
def widgetless_client_class():
    """nbclient's ``NotebookClient`` without widget stand-ins (also what ``benchmarks/course_run.py`` runs).

    nbclient's stand-in for an Output widget (what ``interact`` draws into) sends the widget's state
    to the kernel on the shell socket while the client waits on that same socket for the cell's
    reply; now and then the reply then sits unread in the client's socket, and the kernel looks idle
    for ever (jupyter/nbclient#312; 5 of 200 gradings, all at 01's ``interact`` cell, under ipykernel
    7 and 6 alike). Without the stand-in the client sends nothing while a cell runs; what
    ``interact`` prints is kept as the cell's own output.
    """
    from nbclient import NotebookClient

    class WidgetlessClient(NotebookClient):
        def on_comm_open_jupyter_widget(self, msg):
            return None

    return WidgetlessClient


def _client_class():
    """``widgetless_client_class`` that reports each message to its watchdog and caps the output kept."""

    class TrustedClient(widgetless_client_class()):
        watch: Watchdog
        kept = 0

        def process_message(self, msg, cell, cell_index):
            self.watch.touch()
            content = msg.get("content", {})
            self.watch.last_message = msg.get("msg_type", "") + (
                f" {content.get('execution_state')}" if msg.get("msg_type") == "status" else "")
            size = len(json.dumps(content)) if msg.get("msg_type") in (
                "stream", "display_data", "execute_result", "error", "update_display_data") else 0
            self.watch.output_bytes += size
            if size and self.kept + size > self.watch.limits.output_kept and msg.get("msg_type") != "error":
                if not getattr(self, "truncated", False):
                    self.truncated = True
                    cell.outputs.append(nbformat.v4.new_output(
                        "stream", name="stdout", text="\n[output truncated by the grader]\n"))
                return None if msg.get("msg_type") != "status" else super().process_message(msg, cell, cell_index)
            self.kept += size
            return super().process_message(msg, cell, cell_index)

    return TrustedClient


def _kernel_manager(launcher: list[str], connection_dir: Path):
    """A kernel manager whose kernel command starts with ``launcher``; its files are in ``connection_dir``."""
    from jupyter_client.manager import AsyncKernelManager

    class SandboxKernelManager(AsyncKernelManager):
        def format_kernel_cmd(self, extra_arguments=None):
            # -P: the working folder (the student's files) is not on the path while the kernel starts;
            # ipykernel puts it back afterwards, behind the modules the grader preloads.
            command = [sys.executable, "-P", "-m", "ipykernel_launcher", "-f", self.connection_file]
            return launcher + command + list(extra_arguments or [])

    km = SandboxKernelManager(kernel_name="python3", transport="ipc", ip=str(connection_dir / "k"))
    km.connection_file = str(connection_dir / "kernel.json")
    return km


@lru_cache(maxsize=None)
def font_list() -> Path | None:
    """matplotlib's font list (``fontlist-*.json``), built once per grading process.

    Each kernel starts with an empty matplotlib folder of its own; without this list there,
    ``import matplotlib.pyplot`` scans the system's fonts again (about half a second per submission).
    The kernel sees the same system fonts read-only, so the list built here is valid inside it.
    Returns None if it cannot be built (the kernel then builds its own).
    """
    from multiprocessing.util import Finalize

    folder = Path(tempfile.mkdtemp(prefix="course-fonts-"))
    # Removed when this process exits, also as a worker process (which skips atexit); never by a
    # forked child, which would otherwise delete its parent's copy.
    Finalize(None, shutil.rmtree, args=(folder,), kwargs={"ignore_errors": True}, exitpriority=0)
    env = {**os.environ, "MPLCONFIGDIR": str(folder), "MPLBACKEND": "agg"}
    try:
        # -I and an empty working folder: nothing but the environment's own matplotlib can load here
        subprocess.run([sys.executable, "-I", "-c", "import matplotlib.font_manager"], env=env, cwd=folder,
                       timeout=120, capture_output=True, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return next(folder.glob("fontlist-*.json"), None)


def kernel_env(work: Path, data: Path, mark: str, python_path: Path, matplotlib_dir: Path) -> dict[str, str]:
    """The kernel's whole environment: nothing of the grader's own but the few settings passed on."""
    venv_bin = str(Path(sys.executable).parent)
    env = {
        "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(work),
        "PYTHONPATH": str(python_path),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "COURSE_DATA_DIR": str(data),
        "COURSE_CHECKPOINT_DIR": str(work / "checkpoints"),
        "NBGRADER_EXECUTION": "autograde",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "MPLCONFIGDIR": str(matplotlib_dir),
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "IPYTHONDIR": "/tmp/ipython",
        "JUPYTER_RUNTIME_DIR": "/tmp/jupyter",
        sb.RUN_MARK: mark,
    }
    for key in ("COURSE_EAGER", "CUDA_VISIBLE_DEVICES"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def _launcher_env(mark: str) -> dict[str, str]:
    """The environment of the launcher (``grader.sandbox``), which builds the kernel's own from its config."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "HOME", "PYTHONPATH")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env[sb.RUN_MARK] = mark
    return env


def data_dir(course_root: Path) -> Path:
    """The course's data folder: ``$COURSE_DATA_DIR``, else ``<course_root>/data``."""
    return Path(os.environ.get("COURSE_DATA_DIR") or Path(course_root) / "data")


def ask_kernel(watch: Watchdog, silent, expression: str, what: str) -> list[str]:
    """Evaluate ``expression`` (a list of strings, in the kernel) and return its answer; ``what`` names
    the asker in the line returned when the kernel cannot answer.

    ``silent(code, expressions, timeout=...)`` sends a silent request and returns its reply's content.
    The watchdog counts the kernel as busy meanwhile, so a kernel that stops answering (frozen, or a
    lost request) is stopped as stalled after ``stall_seconds`` and the submission graded again, as
    for a cell, rather than waiting for the 60 s reply limit and being reported dead. An expression
    that raised gives ``"<what> was disabled (<error name>)"``, an answer that is not a list of strings
    ``"<what> answered nonsense"``. Errors of ``silent`` (a dead kernel, no reply) propagate.
    """
    watch.busy = True
    try:
        reply = silent("", {"q": expression}, timeout=60)
    finally:
        watch.busy = False
    found = reply.get("user_expressions", {}).get("q", {})
    if found.get("status") != "ok":
        return [f"{what} was disabled ({found.get('ename')})"]
    try:
        return [str(line) for line in ast.literal_eval(found["data"]["text/plain"])]
    except (ValueError, SyntaxError, KeyError, TypeError):
        return [f"{what} answered nonsense"]


class KernelSession:
    """A fresh kernel for one run of a notebook, in the sandbox or (``use_sandbox`` False) without it.

    Creating the session prepares its files (a runtime folder under /tmp, the launcher's config, the
    kernel's matplotlib folder; without the sandbox, private copies of the course's ``utils``); entering
    it starts the kernel, the watchdog and the grader's probe; leaving it shuts everything down, also
    when entering failed. ``work`` is the kernel's working folder and only writable place besides /tmp;
    the kernel's own output goes to ``work.parent / "kernel.log"``.

    Raises (on entering): RuntimeError if the probe does not start; nbclient's and jupyter_client's
    errors, TimeoutError or OSError if the kernel does not start or dies.
    """

    def __init__(self, nb: nbformat.NotebookNode, course_root: Path, work: Path, *, use_sandbox: bool,
                 limits: Limits):
        self.limits = limits
        self.work = work
        self.mark = secrets.token_hex(8)
        self.probe_name = "_course_probe_" + secrets.token_hex(6)
        self.watch_name = "_course_watch_" + secrets.token_hex(6)
        self.probe_seconds = 0.0               # time spent asking the probe, in seconds
        self.runtime = Path(tempfile.mkdtemp(prefix="cg", dir="/tmp"))
        self._stack = ExitStack()
        self._log = None
        config_path = self._write_config(Path(course_root).resolve(), use_sandbox)
        self.km = _kernel_manager([sys.executable, "-m", "grader.sandbox", str(config_path), "--"], self.runtime)
        self.client = _client_class()(nb, km=self.km, timeout=int(limits.cell_timeout), allow_errors=True,
                                      startup_timeout=120, interrupt_on_timeout=False, record_timing=False,
                                      resources={"metadata": {"path": str(work)}}, coalesce_streams=True)
        self.watch = Watchdog(limits, self.km.connection_file)
        self.client.watch = self.watch

    def _write_config(self, course_root: Path, use_sandbox: bool) -> Path:
        """Write the launcher's config (what the kernel may read and write, its environment); its path."""
        data = data_dir(course_root)
        work = self.work
        if use_sandbox:
            python_path = course_root
            read_only = [Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent,
                         course_root / "utils", course_root / "judge", data]
        else:
            # Without the sandbox the kernel gets private copies, so the course's own files stay out of reach
            # of ordinary writes (nothing stops a determined one: that is what the sandbox is for).
            python_path = work.parent / "course"
            if not (python_path / "utils").exists():
                shutil.copytree(course_root / "utils", python_path / "utils",
                                ignore=shutil.ignore_patterns("__pycache__"))
                if (course_root / "judge").exists():
                    (python_path / "judge").symlink_to(course_root / "judge")
            read_only = []
        matplotlib_dir = self.runtime / "matplotlib"
        matplotlib_dir.mkdir()
        fonts = font_list()
        if fonts is not None:
            shutil.copy2(fonts, matplotlib_dir)  # its time too: a kernel that rebuilt it would change that
        env = kernel_env(work, data, self.mark, python_path, matplotlib_dir)
        config = sb.launcher_config(sandbox=use_sandbox, read_only=read_only, writable=[work, self.runtime],
                                    env=env, cwd=work, limits=self.limits)
        config_path = self.runtime / "launch.json"
        config_path.write_text(json.dumps(config))
        return config_path

    @property
    def root(self) -> int | None:
        """The pid at the top of the kernel's process tree (the launcher), once started."""
        return self.watch.root

    @property
    def truncated(self) -> bool:
        """Whether some output was dropped at ``Limits.output_kept``."""
        return bool(getattr(self.client, "truncated", False))

    def __enter__(self) -> "KernelSession":
        try:
            self._log = open(self.work.parent / "kernel.log", "ab")
            self._stack.enter_context(self.client.setup_kernel(
                env=_launcher_env(self.mark), cwd=str(self.work), stdout=self._log, stderr=self._log))
            self.watch.start(self.km.provisioner.process.pid if self.km.provisioner else None, self.mark)
            self.watch.busy = True
            reply = self.silent(tamper.probe_install_code(self.probe_name))
            self.watch.busy = False
            if reply.get("status") != "ok":
                raise RuntimeError(f"the grader's probe did not start: {reply.get('ename')}: {reply.get('evalue')}")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Shut the kernel down, stop the watchdog, kill every process of the run, remove its files."""
        try:
            self._stack.close()
        finally:
            self.watch.stop()
            if self._log is not None:
                self._log.close()
            try:
                if self.watch.root:
                    sb.kill_tree(self.watch.root, mark=self.mark)
                else:
                    sb.kill_tree(os.getpid(), include_root=False, mark=self.mark)
            finally:
                for proc in sb.marked_processes(self.mark):
                    try:
                        os.kill(proc, 9)
                    except OSError:
                        pass
                shutil.rmtree(self.runtime, ignore_errors=True)
                sb.remove_cgroup(self.mark)

    def silent(self, code: str, expressions: dict | None = None, timeout: float = 120) -> dict:
        """Run ``code`` silently (no history, no output kept) with ``expressions`` to evaluate; the reply's content.

        Raises DeadKernelError if the kernel dies meanwhile, TimeoutError after ``timeout`` seconds.
        """
        from jupyter_core.utils import run_sync
        from nbclient.exceptions import DeadKernelError

        msg_id = self.client.kc.execute(code, silent=True, store_history=False, user_expressions=expressions or {})
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                reply = run_sync(self.client.kc.get_shell_msg)(timeout=1)
            except Exception:  # queue.Empty; the kernel is slow or dead
                if not run_sync(self.km.is_alive)():
                    raise DeadKernelError("kernel died")
                continue
            if reply.get("parent_header", {}).get("msg_id") == msg_id:
                return reply["content"]
        raise TimeoutError("no reply")

    def ask(self, expression: str, what: str) -> list[str]:
        """``ask_kernel`` on this session's kernel."""
        return ask_kernel(self.watch, self.silent, expression, what)

    def probe(self) -> list[str]:
        """What the probe saw change in the kernel (empty: nothing); the time taken adds to ``probe_seconds``."""
        started = time.monotonic()
        changes = self.ask(tamper.probe_expression(self.probe_name), PROBE)
        self.probe_seconds += time.monotonic() - started
        return changes

    def execute(self, cell: nbformat.NotebookNode, index: int, timeout: float) -> nbformat.NotebookNode:
        """Run ``cell`` as cell ``index`` of the notebook, for at most ``timeout`` seconds; the cell run.

        Raises nbclient's CellTimeoutError past the timeout, DeadKernelError if the kernel dies.
        """
        self.client.timeout = int(timeout)
        self.watch.touch()
        self.watch.busy = True
        try:
            return self.client.execute_cell(cell, index)
        finally:
            self.watch.busy = False

    def freeze(self) -> None:
        """Stop (SIGSTOP) every process of the kernel's tree, as a lost message leaves it: for tests only."""
        for pid in [self.root, *sb.descendants(self.root)]:
            try:
                os.kill(pid, signal.SIGSTOP)
            except OSError:
                pass
