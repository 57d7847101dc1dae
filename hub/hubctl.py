"""The class server behind `make hub`, `make hub-stop` and `make hub-clean`: JupyterHub on this machine
for the people of a roster (hub/roster.csv), with nbgrader's exchange between them.

Run as root (it creates logins and JupyterHub starts each user's server as that user):

    python hub/hubctl.py start   set up whatever is missing, start JupyterHub, print the URL and logins
    python hub/hubctl.py stop    stop JupyterHub and every user's server; homes, course and exchange stay
    python hub/hubctl.py clean   stop, remove the course's demo logins (with their homes) and the prefix

Everything lives under one prefix (``--prefix``, default /srv/diffusion-course):

- ``env/``: the class environment, readable by all: a virtual environment of the system's Python with
  the packages of the course's own environment (``--venv``), hard-linked (torch is neither downloaded
  nor stored a second time); it holds ``jupyterhub-singleuser`` and the other commands of those packages.
- ``code/``: the course's Python packages (``utils``, ``grader``), installed once for every kernel.
- ``course/``: the instructor's copy of the course (nbgrader's course folder: solutions, gradebook,
  submissions), owned by the instructor and closed to everyone else (mode 700).
- ``exchange/``: nbgrader's exchange, a folder everyone may write to (mode 1777), as nbgrader documents.
- ``etc/student/``, ``etc/instructor/``: the Jupyter settings of each role (JUPYTER_CONFIG_PATH).
- ``proxy/``: configurable-http-proxy, installed from npm.
- ``python/``: the course environment's interpreter, hard-linked here when other users cannot run it
  where it is (a Python under /root).
- ``state/``: root's alone: the hub's database, cookie secret, demo password, admin token, pid and log.

Each job has its module beside this one: the roster and the folders (``hub_layout``), commands, logins
and files (``hub_system``), the class environment and the course's code (``hub_env``), each role's Jupyter
settings (``hub_settings``). This one sets a class up, starts, stops and removes it.
"""
from __future__ import annotations

import argparse
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
COURSE = HERE.parent
# This folder's modules, and the course's own grader (not another checkout's), however this is run:
# `python hub/hubctl.py`, `python -m hub.hubctl`, or imported by the tests.
for folder in (str(COURSE), str(HERE)):
    if folder not in sys.path:
        sys.path.insert(0, folder)

from grader.sandbox import processes_with_env  # noqa: E402
from hub_env import build_env, check_env_for, class_python, install_code  # noqa: E402
from hub_layout import DEFAULT_PREFIX, PREFIX_VARIABLE, Layout, Member, instructor_of, read_roster  # noqa: E402
from hub_settings import write_role_configs  # noqa: E402
from hub_system import (as_user, chown_tree, copy_files, ensure_user, files_of_course, free_port,  # noqa: E402
                        is_demo_user, run, user_exists)

PROXY_PACKAGE = "configurable-http-proxy@5.3.0"


def install_course(layout: Layout, source: Path, instructor: pwd.struct_passwd, assignments: str = "") -> None:
    """Give the instructor their copy of the course, the first time only: the course's files in
    ``course/`` (theirs alone, mode 700), its exchange linked to the class's, and the
    assignments recorded in its gradebook (`make release`, run as the instructor, of ``assignments``,
    ids separated by spaces, or of every assignment when empty)."""
    if layout.course.exists():
        return
    staging = layout.prefix / "course.partial"
    if staging.exists():
        shutil.rmtree(staging)
    copy_files(source, files_of_course(source), staging)
    (staging / "exchange").symlink_to(layout.exchange)  # nbgrader_config.py's exchange is the class's
    chown_tree(staging, instructor)
    os.chmod(staging, 0o700)
    (layout.env / ".installed").touch()  # the Makefile's stamp: this environment is ready
    chosen = [f"ASSIGNMENTS={assignments}"] if assignments.strip() else []
    as_user(instructor, layout, ["make", "--no-print-directory", "release", *chosen], cwd=staging)
    staging.rename(layout.course)


def ensure_proxy(layout: Layout) -> None:
    """Install configurable-http-proxy from npm into ``proxy/`` unless it is there.

    Raises:
        RuntimeError: npm is missing or the installation fails.
    """
    if layout.proxy_command.exists():
        return
    if shutil.which("npm") is None:
        raise RuntimeError("npm is needed for configurable-http-proxy (Debian: apt-get install npm)")
    layout.proxy.mkdir(parents=True, exist_ok=True)
    run(["npm", "install", "--prefix", str(layout.proxy), "--no-audit", "--no-fund", "--loglevel=error",
         PROXY_PACKAGE])


def ensure_state(layout: Layout) -> None:
    """``state/`` (root only), the shared folders, the demo password and the measuring token."""
    layout.prefix.mkdir(parents=True, exist_ok=True)
    os.chmod(layout.prefix, 0o755)
    layout.state.mkdir(exist_ok=True)
    os.chmod(layout.state, 0o700)
    layout.exchange.mkdir(exist_ok=True)
    os.chmod(layout.exchange, 0o1777)  # nbgrader: every user writes here; sticky: nobody removes others' files
    for secret in (layout.password_file, layout.token_file):
        if not secret.exists():
            secret.write_text(secrets.token_urlsafe(12) + "\n")
            os.chmod(secret, 0o600)


def remember_users(layout: Layout, created: list[str]) -> None:
    """Add ``created`` to the logins `make hub-clean` may remove (``.demo-users`` in the prefix)."""
    record = layout.prefix / ".demo-users"
    known = json.loads(record.read_text()) if record.exists() else []
    record.write_text(json.dumps(sorted(set(known) | set(created))))


def set_up(layout: Layout, roster: list[Member], source: Path, venv: Path, python: Path | None, assignments: str) -> None:
    """Everything a class needs before JupyterHub starts; what is there already is kept (the course, the
    exchange, homes, the proxy, the secrets), the environment and the course's packages are renewed."""
    ensure_state(layout)
    python = python or class_python(layout, venv)
    created = [m.name for m in roster if not user_exists(m.name)]
    users = {m.name: ensure_user(m) for m in roster}
    remember_users(layout, created)
    build_env(layout, venv, python)
    install_code(layout, source)
    write_role_configs(layout)
    ensure_proxy(layout)
    (layout.env / ".installed").touch()
    check_env_for(layout, roster[-1].name)  # every login has the same rights to env/ and code/
    install_course(layout, source, users[instructor_of(roster).name], assignments)


def running_pid(layout: Layout) -> int | None:
    """The pid of this prefix's JupyterHub when it runs, else None."""
    try:
        pid = int(layout.pid_file.read_text())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def launch(layout: Layout, roster_path: Path, ip: str, port: int) -> subprocess.Popen:
    """Start JupyterHub with hub/jupyterhub_config.py in the background (its own session), logging to
    ``state/jupyterhub.log``; its internal ports are picked free."""
    env = {**os.environ, PREFIX_VARIABLE: str(layout.prefix), "COURSE_HUB_ROSTER": str(roster_path),
           "COURSE_HUB_URL": f"http://{ip}:{port}", "COURSE_HUB_API_PORT": str(free_port()),
           "COURSE_HUB_PROXY_API_PORT": str(free_port())}
    with open(layout.log_file, "ab") as log:
        hub = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(COURSE / "hub" / "jupyterhub_config.py")],
                               cwd=layout.state, env=env, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    layout.pid_file.write_text(str(hub.pid))
    return hub


def wait_for_login(hub: subprocess.Popen, url: str, layout: Layout, timeout: float) -> None:
    """Wait until the login page answers through the proxy.

    Raises:
        RuntimeError: JupyterHub exited (the end of its log is in the message).
        TimeoutError: no answer within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if hub.poll() is not None:
            raise RuntimeError(f"JupyterHub exited with {hub.returncode}; {layout.log_file}:\n"
                               + layout.log_file.read_text(errors="replace")[-4000:])
        try:
            with urllib.request.urlopen(f"{url}/hub/login", timeout=10) as reply:
                if reply.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"JupyterHub's login page did not answer within {timeout:.0f} s; see {layout.log_file}")


def announce(url: str, layout: Layout, roster: list[Member], seconds: float) -> None:
    password = layout.password_file.read_text().strip()
    print(f"\nThe class server is up ({seconds:.0f} s): {url}/")
    print(f"Demo logins (password for all: {password}, kept in {layout.password_file}):")
    for member in roster:
        where = "the course, with the Formgrader" if member.role == "instructor" else "their home folder"
        print(f"  {member.name:<20} {member.role:<11} opens {where}")
    print("Stop with `make hub-stop` (everyone's work stays); `make hub-clean` removes the demo logins too.")


def start(layout: Layout, roster_path: Path, source: Path, venv: Path, python: Path | None, ip: str, port: int,
          assignments: str = "") -> float:
    """Set up what is missing and start the class server; return the seconds until the login page answered.

    Raises:
        RuntimeError: not run as root, JupyterHub already runs on this prefix, or a step fails.
    """
    began = time.monotonic()
    if os.geteuid() != 0:
        raise RuntimeError("`make hub` creates logins and runs each user's server as them: run it as root")
    if running_pid(layout):
        raise RuntimeError(f"JupyterHub already runs for {layout.prefix} (pid {running_pid(layout)}); "
                           "`make hub-stop` first")
    roster = read_roster(roster_path)
    set_up(layout, roster, source, venv, python, assignments)
    url = f"http://{'127.0.0.1' if ip in ('0.0.0.0', '') else ip}:{port}"
    wait_for_login(launch(layout, roster_path, ip, port), url, layout, timeout=300)
    seconds = time.monotonic() - began
    announce(url, layout, roster, seconds)
    return seconds


def processes_of(layout: Layout) -> list[int]:
    """Processes started for this class server: their environment names its prefix (JupyterHub, the
    proxy, every user's server and kernels)."""
    return processes_with_env(PREFIX_VARIABLE, str(layout.prefix))


def signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def stop(layout: Layout, grace: float = 60) -> bool:
    """Stop JupyterHub (which stops every user's server and the proxy), then whatever of this class server
    is left; files stay. Return whether anything was running."""
    pid = running_pid(layout)
    if pid:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and running_pid(layout):
            time.sleep(0.5)
    left = processes_of(layout)
    signal_all(left, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = processes_of(layout)
    signal_all(left, signal.SIGKILL)
    layout.pid_file.unlink(missing_ok=True)
    return bool(pid or left)


def clean(layout: Layout) -> list[str]:
    """Stop the class server, remove the demo logins `make hub` created (with their homes) and the prefix.

    Logins that were there before (they lack the demo mark) are left alone. Return the removed logins.

    Raises:
        RuntimeError: the prefix was not made by `make hub` (no ``.demo-users`` record in it).
    """
    stop(layout)
    record = layout.prefix / ".demo-users"
    if not layout.prefix.exists():
        return []
    if not record.exists():
        raise RuntimeError(f"{layout.prefix} was not set up by `make hub` (no .demo-users): not removing it")
    removed = [name for name in json.loads(record.read_text()) if is_demo_user(name)]
    for name in removed:
        run(["userdel", "--remove", name])
    shutil.rmtree(layout.prefix)
    return removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("start", "stop", "clean"))
    parser.add_argument("--prefix", type=Path, default=DEFAULT_PREFIX, help="where the class server lives")
    parser.add_argument("--roster", type=Path, default=COURSE / "hub" / "roster.csv")
    parser.add_argument("--venv", type=Path, default=Path(sys.prefix), help="the course's environment")
    parser.add_argument("--python", type=Path, default=None,
                        help="an interpreter every user may run, the same Python version as --venv "
                             "(default: the one --venv was made from, copied into the prefix if need be)")
    parser.add_argument("--ip", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--assignments", default="", help="ids the instructor's course releases first (all if empty)")
    args = parser.parse_args(argv)
    layout = Layout(args.prefix.resolve())
    args.venv = args.venv.resolve()
    try:
        if args.action == "start":
            start(layout, args.roster.resolve(), COURSE, args.venv, args.python, args.ip, args.port, args.assignments)
        elif args.action == "stop":
            print("stopped" if stop(layout) else "not running", f"({layout.prefix}); homes, course and exchange kept")
        else:
            print("removed", layout.prefix, "and the demo logins:", ", ".join(clean(layout)) or "none")
    except (RuntimeError, TimeoutError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
