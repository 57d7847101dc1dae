"""The headless Chromium of the browser tests (tests/browser/) and the class-server test (tests/hub/): which
binary, one browser per session, offline tabs of their own, and numbered screenshots of every step.

The browser is $COURSE_CHROMIUM, else the system's Chromium (Debian package ``chromium``), else
Playwright's own (``python -m playwright install chromium``).
"""
from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import expect

from .ui import UI_TIMEOUT_MS

expect.set_options(timeout=UI_TIMEOUT_MS)
SYSTEM_CHROMIUM = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser", "google-chrome")
LOCAL = re.compile(r"https?://(127\.0\.0\.1|localhost)(:\d+)?/")


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


@contextmanager
def launched_chromium() -> Iterator:
    """A headless Chromium, closed at the end; a test fails with what to install when none starts."""
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


def fresh_folder(folder: Path) -> Path:
    """``folder``, emptied (the screenshots of an earlier run go)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


class Steps:
    """Numbered screenshots of one test: <folder>/<NN>-<step>.png."""

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


def offline_tab(browser, screenshots: Path):
    """A fresh tab with cookies of its own (one person) that reaches only this machine: requests to any
    other host are refused and listed in ``tab.external_requests``; ``tab.steps`` saves its screenshots
    in ``screenshots``. Close it with ``tab.context.close()``."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(UI_TIMEOUT_MS)
    tab = context.new_page()
    tab.external_requests = []

    def offline(route):
        if LOCAL.match(route.request.url):
            route.continue_()
        else:
            tab.external_requests.append(route.request.url)
            route.abort()

    context.route("**/*", offline)
    tab.steps = Steps(tab, screenshots)
    return tab


def shoot_failure(request, tabs) -> None:
    """A last screenshot of each tab when the test's call failed (the page may be gone by then)."""
    if not getattr(request.node, "failed_call", False):
        return
    for tab in tabs:
        try:
            tab.steps.shot("failure")
        except Exception:  # noqa: BLE001 (the page may be gone; the test's own error matters)
            pass
