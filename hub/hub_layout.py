"""What a class server is: the people of its roster and its folders under one prefix (see hub/hubctl.py).

Read by `make hub` (hub/hubctl.py) and by JupyterHub itself (hub/jupyterhub_config.py).
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PREFIX = Path("/srv/diffusion-course")
ROLES = ("instructor", "student")
NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
COURSE_ID = "diffusion-course"
# In the environment of every process of a class server, with its prefix: `make hub-stop` finds them by it.
PREFIX_VARIABLE = "COURSE_HUB_PREFIX"


@dataclass(frozen=True)
class Member:
    """One line of the roster: a login name and its role ("instructor" or "student")."""
    name: str
    role: str


@dataclass(frozen=True)
class Layout:
    """The folders of a class server under ``prefix`` (see hub/hubctl.py's docstring)."""
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
