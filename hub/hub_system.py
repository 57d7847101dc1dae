"""The machine under a class server: commands, logins and the course's files (for hub/hubctl.py, as root)."""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
from pathlib import Path

from hub_layout import Layout, Member

# The comment of every login `make hub` creates; `make hub-clean` removes only logins that carry it.
DEMO_MARK = "diffusion-course demo user"


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


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def as_user(user: pwd.struct_passwd, layout: Layout, command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run ``command`` as ``user`` in ``cwd`` with their home and the class environment's commands (and
    as the Makefile's VENV, so `make` in the course uses it).

    Raises:
        RuntimeError: the command fails (its output is in the message).
    """
    env = ["env", "-i", f"HOME={user.pw_dir}", f"USER={user.pw_name}", f"LOGNAME={user.pw_name}",
           f"PATH={layout.env / 'bin'}:/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", f"VENV={layout.env}"]
    return run(["runuser", "-u", user.pw_name, "--", *env, *command], cwd=cwd)


def chown_tree(root: Path, user: pwd.struct_passwd) -> None:
    for folder, dirs, files in os.walk(root):
        for name in [folder, *(os.path.join(folder, d) for d in dirs), *(os.path.join(folder, f) for f in files)]:
            os.lchown(name, user.pw_uid, user.pw_gid)


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


def free_port(ip: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]
