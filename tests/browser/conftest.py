"""Fixtures of the browser tests: one JupyterLab server (started by `make lab` on a temporary copy of
the course), one headless Chromium, a fresh page per test, and a screenshot of every step.

Run them with `make test-browser`. The browser: see tests/browser/chromium.py. Screenshots go to
artifacts/browser/<test>/, one numbered PNG per step, and a last one when a test fails.
"""
from __future__ import annotations

import atexit
import gzip
import json
import shutil
import signal
from pathlib import Path

import pytest

from conftest import write_idx_fashion_mnist

from .chromium import fresh_folder, launched_chromium, offline_tab, shoot_failure
from .server import ROOT, add_kernel, make_server
from .ui import FAST_KERNEL

ARTIFACTS = ROOT / "artifacts" / "browser"


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """The screenshot folder, emptied at the start of a run."""
    return fresh_folder(ARTIFACTS)


def small_fashion_mnist(root: Path) -> Path:
    """256 made-up images in FashionMNIST's layout, unpacked as torchvision reads them: the grade
    profile's whole training set, and 8 training steps in the fast profile."""
    write_idx_fashion_mnist(root, n_train=240, n_test=16)
    for packed in (root / "FashionMNIST" / "raw").glob("*.gz"):
        packed.with_suffix("").write_bytes(gzip.decompress(packed.read_bytes()))
    return root


@pytest.fixture(scope="session")
def lab(tmp_path_factory, artifacts):
    """A running JupyterLab on a fresh copy of the course, stopped whatever happens.

    The server's environment is a student's: COURSE_PROFILE=grade (so notebook 01 runs in seconds),
    a small dataset, and empty Jupyter settings, workspaces and checkpoints. One more kernel,
    ``course-fast``, adds COURSE_PROFILE=fast, for the checkpoint test.
    """
    base = tmp_path_factory.mktemp("lab")
    server = make_server(base, {
        "COURSE_PROFILE": "grade",
        "COURSE_DATA_DIR": str(small_fashion_mnist(base / "data")),
        "COURSE_CHECKPOINT_DIR": str(base / "checkpoints"),
    })
    add_kernel(server, FAST_KERNEL, "Python 3 (fast profile)", {"COURSE_PROFILE": "fast"})
    # The tests are offline: no "get Jupyter news?" prompt over the pages in the screenshots.
    settings = Path(server.env["JUPYTERLAB_SETTINGS_DIR"]) / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))

    def on_sigterm(signum, frame):  # a CI timeout: unwind, so the server is stopped below
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    atexit.register(server.stop)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        atexit.unregister(server.stop)
        signal.signal(signal.SIGTERM, previous)
        if server.log_path.exists():
            shutil.copy2(server.log_path, artifacts / "jupyterlab.log")


@pytest.fixture(scope="session")
def browser(artifacts):
    with launched_chromium() as chromium:
        yield chromium


@pytest.fixture
def page(browser, artifacts, lab, request):
    """A fresh browser tab (its own cookies) that only reaches the JupyterLab server.

    Requests to any other host are refused and listed in ``page.external_requests``.
    """
    tab = offline_tab(browser, artifacts / request.node.name)
    yield tab
    shoot_failure(request, [tab])
    tab.context.close()
    try:
        lab.shutdown_kernels()  # each test starts its own; they would compete for the cores
    except OSError:
        pass  # the server is gone: the test has already failed
