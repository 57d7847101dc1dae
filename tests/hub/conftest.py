"""Fixtures of the class-server test: `make hub` on a fresh prefix with a roster of its own (an
instructor and two students, logins made for this run), one headless Chromium, and a screenshot of
every step in artifacts/hub/.

Run with `make test-hub`, as root (the class server creates logins and runs each user's server as
them). Without root the tests are skipped. At the end `make hub-clean` stops the server and removes the
run's logins and folders; its log is kept in artifacts/hub/jupyterhub.log.
"""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from browser.chromium import fresh_folder, launched_chromium, offline_tab, shoot_failure
from browser.conftest import small_fashion_mnist
from browser.server import free_port
from conftest import ROOT

ARTIFACTS = ROOT / "artifacts" / "hub"


@dataclass
class ClassServer:
    """A running `make hub`: its URL, folders, logins and the seconds it took to a usable login."""
    url: str
    prefix: Path
    instructor: str
    students: list[str]
    password: str
    data: Path
    startup_s: float
    timings: dict = field(default_factory=dict)

    @property
    def course(self) -> Path:
        return self.prefix / "course"

    @property
    def exchange(self) -> Path:
        return self.prefix / "exchange" / "diffusion-course"

    def home(self, user: str) -> Path:
        return Path(os.path.expanduser(f"~{user}"))


def make(target: str, prefix: Path, *extra: str, env: dict | None = None, timeout: float = 1800):
    """Run `make <target>` in the course for the class server at ``prefix``, with this environment."""
    venv = sys.prefix
    command = ["make", "--no-print-directory", target, f"VENV={venv}", "-o", f"{venv}/.installed",
               "-o", f"{venv}/.hub-installed", f"HUB_PREFIX={prefix}", *extra]
    return subprocess.run(command, cwd=ROOT, env=env or dict(os.environ), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def write_roster(path: Path, tag: str) -> tuple[str, list[str]]:
    """A roster of this run: dc-<tag>-teach (instructor), dc-<tag>-alice and dc-<tag>-bob (students)."""
    instructor, students = f"dc-{tag}-teach", [f"dc-{tag}-alice", f"dc-{tag}-bob"]
    path.write_text("username,role\n" + f"{instructor},instructor\n" + "".join(f"{s},student\n" for s in students))
    return instructor, students


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """The screenshot folder, emptied at the start of a run."""
    return fresh_folder(ARTIFACTS)


@pytest.fixture(scope="session")
def class_server(artifacts):
    """`make hub` for a roster of this run, on a free port; `make hub-clean` afterwards, whatever happens."""
    if os.geteuid() != 0:
        pytest.skip("the class server creates logins: run `make test-hub` as root")
    tag = secrets.token_hex(2)
    prefix, data = Path(f"/srv/dc-test-{tag}"), Path(f"/srv/dc-test-{tag}-data")
    small_fashion_mnist(data)
    for folder, _, _ in os.walk(data):
        os.chmod(folder, 0o755)
    roster = data / "roster.csv"
    instructor, students = write_roster(roster, tag)
    port = free_port()
    env = {**os.environ, "COURSE_PROFILE": "grade", "COURSE_DATA_DIR": str(data)}
    began = time.monotonic()
    try:
        started = make("hub", prefix, f"HUB_ROSTER={roster}", f"HUB_PORT={port}", "HUB_ASSIGNMENTS=01_UNets", env=env)
        startup_s = time.monotonic() - began
        (artifacts / "make-hub.log").write_text(started.stdout + started.stderr)
        assert started.returncode == 0, f"make hub failed:\n{started.stdout}\n{started.stderr}"
        url = f"http://127.0.0.1:{port}"
        assert f"{url}/" in started.stdout, started.stdout
        password = (prefix / "state" / "demo-password").read_text().strip()
        assert f"password for all: {password}" in started.stdout
        yield ClassServer(url, prefix, instructor, students, password, data, startup_s)
    finally:
        log = prefix / "state" / "jupyterhub.log"
        if log.exists():
            shutil.copy2(log, artifacts / "jupyterhub.log")
        cleaned = make("hub-clean", prefix)
        (artifacts / "make-hub-clean.log").write_text(cleaned.stdout + cleaned.stderr)
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def browser(artifacts):
    with launched_chromium() as chromium:
        yield chromium


@pytest.fixture
def tabs(browser, artifacts, request):
    """open(user) gives a fresh browser tab with its own cookies (one person) and numbered screenshots in
    artifacts/hub/<test>/<user>/NN-<step>.png; requests to hosts other than this machine are refused."""
    opened = []

    def open_tab(user: str):
        opened.append(offline_tab(browser, artifacts / request.node.name / user))
        return opened[-1]

    yield open_tab
    shoot_failure(request, opened)
    for tab in opened:
        tab.context.close()
