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
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

COURSE = Path(__file__).resolve().parent.parent
DEFAULT_PREFIX = Path("/srv/diffusion-course")
# The comment of every login `make hub` creates; `make hub-clean` removes only logins that carry it.
DEMO_MARK = "diffusion-course demo user"
PROXY_PACKAGE = "configurable-http-proxy@5.3.0"
ROLES = ("instructor", "student")
NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
COURSE_ID = "diffusion-course"


@dataclass(frozen=True)
class Member:
    """One line of the roster: a login name and its role ("instructor" or "student")."""
    name: str
    role: str


@dataclass(frozen=True)
class Layout:
    """The folders of a class server under ``prefix`` (see the module's docstring)."""
    prefix: Path

    @property
    def env(self) -> Path:
        return self.prefix / "env"

    @property
    def code(self) -> Path:
        return self.prefix / "code"

    @property
    def course(self) -> Path:
        return self.prefix / "course"

    @property
    def exchange(self) -> Path:
        return self.prefix / "exchange"

    @property
    def etc(self) -> Path:
        return self.prefix / "etc"

    @property
    def proxy(self) -> Path:
        return self.prefix / "proxy"

    @property
    def state(self) -> Path:
        return self.prefix / "state"

    @property
    def proxy_command(self) -> Path:
        return self.proxy / "node_modules" / ".bin" / "configurable-http-proxy"

    def role_config(self, role: str) -> Path:
        """The Jupyter settings folder of a role (``etc/<role>``)."""
        return self.etc / role

    @property
    def password_file(self) -> Path:
        return self.state / "demo-password"

    @property
    def token_file(self) -> Path:
        return self.state / "admin-token"

    @property
    def pid_file(self) -> Path:
        return self.state / "jupyterhub.pid"

    @property
    def log_file(self) -> Path:
        return self.state / "jupyterhub.log"


def read_roster(path: Path) -> list[Member]:
    """The members listed in a roster file: CSV lines "username,role", a header line "username,role",
    blank lines and lines starting with # are skipped.

    Raises:
        ValueError: a name that is not a valid login name, a role other than instructor or student, a
            name listed twice, or not exactly one instructor (the message names the line).
    """
    members: list[Member] = []
    lines = [(n, line) for n, line in enumerate(Path(path).read_text().splitlines(), 1)
             if line.strip() and not line.lstrip().startswith("#")]
    for number, row in zip((n for n, _ in lines), csv.reader(line for _, line in lines)):
        cells = [cell.strip() for cell in row]
        if cells == ["username", "role"]:
            continue
        if len(cells) != 2 or not NAME.match(cells[0]) or cells[1] not in ROLES:
            raise ValueError(f"{path}, line {number}: expected 'username,role' with a login name and a role "
                             f"out of {', '.join(ROLES)}; got {','.join(row)!r}")
        if any(m.name == cells[0] for m in members):
            raise ValueError(f"{path}, line {number}: {cells[0]} is listed twice")
        members.append(Member(*cells))
    if sum(m.role == "instructor" for m in members) != 1:
        raise ValueError(f"{path}: the roster needs exactly one instructor")
    return members


def instructor_of(roster: list[Member]) -> Member:
    return next(m for m in roster if m.role == "instructor")


def run(command: list[str], **kw) -> subprocess.CompletedProcess:
    """Run ``command``; raise RuntimeError with its output when it fails."""
    done = subprocess.run(command, capture_output=True, text=True, **kw)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done


def ensure_user(member: Member) -> pwd.struct_passwd:
    """The login of ``member``; created (home folder closed to others, mode 700) when missing.

    An existing login is used as it is (a real class reuses the machine's accounts).
    """
    try:
        return pwd.getpwnam(member.name)
    except KeyError:
        pass
    run(["useradd", "--create-home", "--shell", "/bin/bash", "--comment", DEMO_MARK, member.name])
    user = pwd.getpwnam(member.name)
    os.chmod(user.pw_dir, 0o700)
    return user


def is_demo_user(name: str) -> bool:
    try:
        return pwd.getpwnam(name).pw_gecos == DEMO_MARK
    except KeyError:
        return False


def files_of_course(source: Path) -> list[str]:
    """The course's tracked files (git), relative to ``source``; without git, every file but build outputs."""
    try:
        listed = run(["git", "ls-files", "-z"], cwd=source).stdout
        return [name for name in listed.split("\0") if name and (source / name).is_file()]
    except (OSError, RuntimeError):
        skip = {".git", ".venv", "artifacts", "exchange", "checkpoints", "data", "__pycache__"}
        return [str(p.relative_to(source)) for p in source.rglob("*")
                if p.is_file() and not skip & set(p.relative_to(source).parts)]


def copy_files(source: Path, names: list[str], dest: Path) -> None:
    for name in names:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, target)


def chown_tree(root: Path, user: pwd.struct_passwd) -> None:
    for folder, dirs, files in os.walk(root):
        for name in [folder, *(os.path.join(folder, d) for d in dirs), *(os.path.join(folder, f) for f in files)]:
            os.lchown(name, user.pw_uid, user.pw_gid)


def site_packages(prefix: Path, python: Path) -> Path:
    """The site-packages folder of the environment at ``prefix`` whose interpreter is ``python``."""
    return Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip())


def python_version(python: Path | str) -> str:
    return run([str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]).stdout.strip()


WRAPPER = """#!{python}
# {name}: a command of the course's environment, run by the class environment's interpreter.
import sys
from importlib.metadata import EntryPoint
sys.exit(EntryPoint({name!r}, {value!r}, "console_scripts").load()())
"""
LIST_COMMANDS = ("import json; from importlib.metadata import entry_points; "
                 "print(json.dumps({e.name: e.value for e in entry_points(group='console_scripts')}))")


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


def install_code(layout: Layout, source: Path) -> None:
    """Copy the course's Python packages (utils/, grader/) to ``code/``, readable by all, replacing the old."""
    names = [n for n in files_of_course(source) if n.split("/")[0] in ("utils", "grader")]
    if layout.code.exists():
        shutil.rmtree(layout.code)
    copy_files(source, names, layout.code)
    for folder, _, files in os.walk(layout.code):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)


def as_user(user: pwd.struct_passwd, layout: Layout, command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run ``command`` as ``user`` in ``cwd`` with their home and the class environment's commands (and
    as the Makefile's VENV, so `make` in the course uses it).

    Raises:
        RuntimeError: the command fails (its output is in the message).
    """
    env = ["env", "-i", f"HOME={user.pw_dir}", f"USER={user.pw_name}", f"LOGNAME={user.pw_name}",
           f"PATH={layout.env / 'bin'}:/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", f"VENV={layout.env}"]
    return run(["runuser", "-u", user.pw_name, "--", *env, *command], cwd=cwd)


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


def write_role_configs(layout: Layout) -> None:
    """The Jupyter settings of each role, read through JUPYTER_CONFIG_PATH: nbgrader's exchange and
    course id for everyone; for students, nbgrader's Formgrader, course list and assignment-creation
    toolbar switched off, in the server and in JupyterLab."""
    for role in ROLES:
        folder = layout.role_config(role)
        (folder / "labconfig").mkdir(parents=True, exist_ok=True)
        (folder / "nbgrader_config.py").write_text(nbgrader_settings(layout, role))
        (folder / "jupyter_server_config.json").write_text(json.dumps(server_settings(role), indent=1))
        hidden = ["formgrader", "course-list", "create-assignment"] if role == "student" else []
        (folder / "labconfig" / "page_config.json").write_text(json.dumps(
            {"disabledExtensions": {f"@jupyter/nbgrader:{name}": True for name in hidden}}, indent=1))
    for folder, _, files in os.walk(layout.etc):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)


def nbgrader_settings(layout: Layout, role: str) -> str:
    """nbgrader_config.py of a role. Students: the class's exchange and course id. The instructor: the
    course's own nbgrader_config.py (its folder, gradebook, grader hooks; its exchange is linked to the
    class's), which nbgrader would otherwise look for only in the server's working folder, their home."""
    head = "# Written by `make hub` (hub/hubctl.py).\nc = get_config()  # noqa: F821\n"
    if role == "instructor":
        return head + f"load_subconfig({str(layout.course / 'nbgrader_config.py')!r})  # noqa: F821\n"
    return head + f"c.CourseDirectory.course_id = {COURSE_ID!r}\nc.Exchange.root = {str(layout.exchange)!r}\n"


def server_settings(role: str) -> dict:
    """The Jupyter server's settings of a role: the Formgrader and course list off for students; for the
    instructor, JupyterLab may show the Formgrader's own pages in a frame (JupyterHub forbids every frame
    by default); no news or update checks from the internet for anyone."""
    closed = {"formgrader": role == "student", "course_list": role == "student"}
    settings = {"ServerApp": {"jpserver_extensions": {
        f"nbgrader.server_extensions.{name}": not off for name, off in closed.items()}},
        "LabApp": {"news_url": None, "check_for_updates_class": "jupyterlab.NeverCheckForUpdate"}}
    if role == "instructor":
        settings["ServerApp"]["tornado_settings"] = {"headers": {"Content-Security-Policy": "frame-ancestors 'self'"}}
    return settings


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


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def free_port(ip: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


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
    env = {**os.environ, "COURSE_HUB_PREFIX": str(layout.prefix), "COURSE_HUB_ROSTER": str(roster_path),
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
    needle = f"COURSE_HUB_PREFIX={layout.prefix}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if needle in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


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
