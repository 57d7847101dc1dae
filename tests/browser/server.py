"""A JupyterLab server on a temporary copy of the course, started with `make lab` as a student would.

The copy holds the repository's tracked files (the working tree's version of each), so the server
sees exactly what a fresh clone would. All of Jupyter's per-user folders (settings, workspaces,
runtime, data, the nbgrader cache) are temporary too, so no earlier tab reopens and nothing outside
the copy is read or written. ``stop`` ends the server and every kernel it started.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from grader.sandbox import processes_with_env

ROOT = Path(__file__).resolve().parents[2]
RUN_VARIABLE = "COURSE_BROWSER_TEST_RUN"  # in the environment of the server, make and the kernels they start


def copy_course(dest: Path) -> Path:
    """Copy the repository's tracked files (or, outside git, everything but build outputs) to dest."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        files = [f for f in listed.decode().split("\0") if f]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", "artifacts", "exchange", "checkpoints", "data", "__pycache__"}
        files = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*")
                 if p.is_file() and not skip & set(p.relative_to(ROOT).parts)]
    for name in files:
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is left out
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LabServer:
    course: Path
    port: int
    token: str
    log_path: Path
    env: dict = field(repr=False)
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def lab_url(self, path: str = "") -> str:
        """The URL that opens ``path`` (relative to the course) in JupyterLab, with a fresh workspace."""
        tree = f"/tree/{path}" if path else ""
        return f"{self.url}/lab{tree}?reset&token={self.token}"

    def api(self, path: str, method: str = "GET", body: dict | None = None):
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as reply:
            text = reply.read().decode()
        return json.loads(text) if text else None

    def shutdown_kernels(self) -> None:
        """End every notebook's kernel (its session), as closing a notebook with "shut down" does."""
        for session in self.api("/api/sessions"):
            self.api(f"/api/sessions/{session['id']}", method="DELETE")

    def write_notebook(self, path: str, nb: dict) -> str:
        """Put a notebook into the course copy at ``path`` (relative); return ``path``."""
        target = self.course / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(nb, indent=1))
        return path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout: float = 180) -> "LabServer":
        """Run `make lab` (the course's own command) and wait until the server answers."""
        venv = Path(sys.prefix)
        lab_args = (f"--port={self.port} --ServerApp.ip=127.0.0.1 --IdentityProvider.token={self.token} "
                    f"--ServerApp.port_retries=0 --LabApp.news_url=None --LabApp.check_for_updates_class="
                    f"jupyterlab.NeverCheckForUpdate")
        # VENV: the environment running these tests; -o: trust that it is installed (no pip run).
        command = ["make", "--no-print-directory", "lab", f"VENV={venv}", "-o", f"{venv}/.installed",
                   f"LAB_ARGS={lab_args}"]
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen(command, cwd=self.course, env=self.env, stdout=log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"`make lab` exited with {self.process.returncode}:\n{self.log()}")
            try:
                self.api("/api/status")
                return self
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"JupyterLab did not answer within {timeout:.0f} s:\n{self.log()}")

    def stop(self) -> None:
        """Stop the server and everything it started, whatever state it is in."""
        marker = self.env[RUN_VARIABLE]
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)  # make and the server: kernels shut down cleanly
                self.process.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        for pid in processes_with_env(RUN_VARIABLE, marker):  # whatever survived (a hung kernel, a killed server)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass


def make_server(base: Path, extra_env: dict[str, str]) -> LabServer:
    """A LabServer (not started) on a fresh copy of the course under ``base``."""
    course = copy_course(base / "course")
    home = base / "jupyter"
    env = dict(os.environ)
    env.update({
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "IPYTHONDIR": str(home / "ipython"),
        "PYTHONPATH": str(course),  # kernels import this copy's utils
        "PATH": str(Path(sys.prefix) / "bin") + os.pathsep + os.environ.get("PATH", ""),
        RUN_VARIABLE: "run-" + secrets.token_hex(8),
        "PYTHONUNBUFFERED": "1",
    })
    for name in ("JUPYTER_PATH", "MPLBACKEND"):  # a student's kernel draws inline, not to Agg
        env.pop(name, None)
    env.update(extra_env)
    for key in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        Path(env[key]).mkdir(parents=True, exist_ok=True)
    return LabServer(course=course, port=free_port(), token=secrets.token_hex(16),
                     log_path=base / "jupyterlab.log", env=env)


def add_kernel(server: LabServer, name: str, display_name: str, env: dict[str, str]) -> None:
    """A kernel of this Python whose environment adds ``env`` (what `VAR=value make lab` would give)."""
    folder = Path(server.env["JUPYTER_DATA_DIR"]) / "kernels" / name
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": display_name, "language": "python", "env": env}
    (folder / "kernel.json").write_text(json.dumps(spec, indent=1))
