"""Fixtures of the browser tests: one JupyterLab server (started by `make lab` on a temporary copy of
the course), one headless Chromium, a fresh page per test, and a screenshot of every step.

Run them with `make test-browser`. The browser is the system's Chromium (Debian package ``chromium``)
or the one in $COURSE_CHROMIUM; without either, Playwright's own (``python -m playwright install
chromium``). Screenshots go to artifacts/browser/<test>/, one numbered PNG per step, and a last one
when a test fails.
"""
from __future__ import annotations

import atexit
import gzip
import json
import os
import re
import shutil
import signal
from pathlib import Path

import pytest
from playwright.sync_api import expect

from conftest import write_idx_fashion_mnist

from .server import ROOT, add_kernel, make_server
from .ui import FAST_KERNEL, UI_TIMEOUT_MS

ARTIFACTS = ROOT / "artifacts" / "browser"
expect.set_options(timeout=UI_TIMEOUT_MS)
SYSTEM_CHROMIUM = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser", "google-chrome")


def chromium_executable() -> str | None:
    """The browser binary: $COURSE_CHROMIUM, else the system's Chromium, else None (Playwright's own).

    Debian's /usr/bin/chromium is a shell wrapper; the binary it starts is /usr/lib/chromium/chromium.
    """
    if os.environ.get("COURSE_CHROMIUM"):
        return os.environ["COURSE_CHROMIUM"]
    for candidate in SYSTEM_CHROMIUM:
        path = candidate if os.path.isabs(candidate) else shutil.which(candidate)
        if path and os.access(path, os.X_OK):
            return path
    return None


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """The screenshot folder, emptied at the start of a run."""
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    ARTIFACTS.mkdir(parents=True)
    return ARTIFACTS


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
    from playwright.sync_api import sync_playwright

    executable = chromium_executable()
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=executable, headless=True)
        except Exception as error:  # noqa: BLE001 (any failure to start gets the same advice)
            pytest.fail(f"could not start Chromium ({executable or 'Playwright download'}): {error}\n"
                        "Install it (Debian: apt-get install chromium), point COURSE_CHROMIUM at a Chrome or "
                        "Chromium binary, or run `python -m playwright install chromium`.", pytrace=False)
        yield chromium
        chromium.close()


class Steps:
    """Numbered screenshots of one test: artifacts/browser/<test>/<NN>-<step>.png."""

    def __init__(self, page, folder: Path):
        self.page, self.folder, self.count = page, folder, 0
        folder.mkdir(parents=True, exist_ok=True)

    def shot(self, name: str, target=None, end: bool = False) -> Path:
        """Save the page as the next step, after scrolling ``target`` (a locator) into view: its top,
        or with ``end`` its bottom (the message at the end of a long error)."""
        if target is not None:
            target.scroll_into_view_if_needed(timeout=UI_TIMEOUT_MS)
            if end:
                target.evaluate("element => element.scrollIntoView({block: 'end'})")
        self.count += 1
        path = self.folder / f"{self.count:02d}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
        self.page.screenshot(path=path)
        return path


@pytest.fixture
def page(browser, artifacts, lab, request):
    """A fresh browser tab (its own cookies) that only reaches the JupyterLab server.

    Requests to any other host are refused and listed in ``page.external_requests``.
    """
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(UI_TIMEOUT_MS)
    tab = context.new_page()
    tab.external_requests = []

    def offline(route):
        if re.match(r"https?://(127\.0\.0\.1|localhost)(:\d+)?/", route.request.url):
            route.continue_()
        else:
            tab.external_requests.append(route.request.url)
            route.abort()

    context.route("**/*", offline)
    tab.steps = Steps(tab, artifacts / request.node.name)
    yield tab
    if getattr(request.node, "failed_call", False):
        try:
            tab.steps.shot("failure")
        except Exception:  # noqa: BLE001 (the page may be gone; the test's own error matters)
            pass
    context.close()
    try:
        lab.shutdown_kernels()  # each test starts its own; they would compete for the cores
    except OSError:
        pass  # the server is gone: the test has already failed
