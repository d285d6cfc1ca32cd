"""Browser tests: Playwright for Python driving Debian's Chromium against a live gateway.

One browser for all the browser tests of a run (``browser``), a fresh context per page. ``watched_page`` opens a
page that records every request it makes, console error and uncaught exception; when the test ends
it fails if any request left the gateway's origin (``data:`` and ``blob:`` URLs excepted: they never
leave the browser) or if the page logged an error (a Content-Security-Policy violation logs one).
Screenshots go to ``ARTIFACTS`` (printed at the end of the run); with
``PIXELGATE_UPDATE_SCREENSHOTS=1`` they are also copied to ``docs/screenshots/``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from PIL import Image
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, Request, ViewportSize, sync_playwright

from tests.browser.chromium import ChromiumUnavailable, ensure_chromium

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ARTIFACTS = ROOT / "build" / "test-artifacts" / "browser"
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"
WIDE: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}
ACTION_TIMEOUT_MS = 15_000
LOCAL_SCHEMES = ("data:", "blob:")
API_PREFIXES = ("/v1/", "/admin/")
"""The API's paths (the dashboard page itself is ``/admin``, without the slash)."""

BROWSER_TEST_TIMEOUT_SECONDS = 600
"""Room for installing Chromium (about a minute) in the first test; each wait in a test is bounded by
Playwright's action timeout anyway."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.timeout(BROWSER_TEST_TIMEOUT_SECONDS))


class SharedBrowser:
    """One Chromium for a run of consecutive browser tests, stopped when the run of them ends.

    Playwright's sync API keeps its event loop marked as running in the main thread for as long as
    it is started, which breaks every asyncio test after it; so it is stopped as soon as the next
    test is not a browser test (see ``pytest_runtest_teardown``), not at the end of the session.
    """

    def __init__(self) -> None:
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None

    def get(self) -> Browser:
        if self._browser is None:
            executable = ensure_chromium()
            self._playwright = sync_playwright().start()
            self._browser = self._playwright.chromium.launch(
                executable_path=str(executable), headless=True, args=["--no-sandbox"]
            )
        return self._browser

    def stop(self) -> None:
        browser, playwright = self._browser, self._playwright
        self._browser = self._playwright = None
        if browser is not None:
            browser.close()
        if playwright is not None:
            playwright.stop()


SHARED_BROWSER = SharedBrowser()


@pytest.fixture
def browser() -> Browser:
    try:
        return SHARED_BROWSER.get()
    except ChromiumUnavailable as exc:
        pytest.fail(f"the browser tests need Chromium: {exc}", pytrace=False)


@pytest.hookimpl(trylast=True)  # after the test's fixtures (its pages) are torn down
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    if nextitem is None or HERE not in nextitem.path.parents:
        SHARED_BROWSER.stop()


@dataclass
class PageWatch:
    """What a page did: every request's URL, console errors and uncaught exceptions."""

    origin: str
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def on_request(self, request: Request) -> None:
        self.requests.append(request.url)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        # Chromium logs every API answer with an error status; the pages show those themselves.
        api_answer = urlsplit(message.location.get("url", "")).path.startswith(API_PREFIXES)
        if api_answer and message.text.startswith("Failed to load resource"):
            return
        self.errors.append(f"console: {message.text} ({message.location.get('url')})")

    def on_page_error(self, error: Exception) -> None:
        self.errors.append(f"uncaught: {error}")

    def foreign_requests(self) -> list[str]:
        """Requests that went anywhere but the gateway (data: and blob: URLs stay in the browser)."""
        return [url for url in self.requests if not url.startswith(LOCAL_SCHEMES) and origin_of(url) != self.origin]


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


OpenPage = Callable[..., AbstractContextManager[tuple[Page, PageWatch]]]


@pytest.fixture
def watched_page(browser: Browser) -> OpenPage:
    """``with watched_page(base_url, viewport=WIDE) as (page, watch):`` a fresh context and page.

    Leaving the block checks the page made no request outside ``base_url``'s origin and logged no error.
    """

    @contextmanager
    def open_page(
        base_url: str, *, viewport: ViewportSize = WIDE, allow_errors: tuple[str, ...] = ()
    ) -> Iterator[tuple[Page, PageWatch]]:
        context = browser.new_context(viewport=viewport, base_url=base_url)
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url)
        page = context.new_page()
        page.set_default_timeout(ACTION_TIMEOUT_MS)
        watch = PageWatch(origin=origin_of(base_url))
        page.on("request", watch.on_request)
        page.on("console", watch.on_console)
        page.on("pageerror", watch.on_page_error)
        try:
            yield page, watch
        finally:
            context.close()
        assert watch.foreign_requests() == [], "the page requested something outside the gateway"
        unexpected = [error for error in watch.errors if not any(allowed in error for allowed in allow_errors)]
        assert unexpected == [], "the page logged errors"

    return open_page


def save_screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """A screenshot ``name``.png in ``ARTIFACTS`` (and in docs/ when asked to update them): the whole
    page, or with ``full_page=False`` the window as it is scrolled."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    if not full_page:
        page.screenshot(path=str(path), animations="disabled", caret="hide")
    else:
        # A window as tall as the page rather than a stitched full-page shot: the sticky Run bar then
        # sits where it does on a tall screen instead of over the form.
        viewport = page.viewport_size
        assert viewport is not None
        height = page.evaluate("document.documentElement.scrollHeight")
        page.set_viewport_size({"width": viewport["width"], "height": height})
        try:
            page.screenshot(path=str(path), animations="disabled", caret="hide")
        finally:
            page.set_viewport_size(viewport)
    if os.environ.get("PIXELGATE_UPDATE_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        # A 256-colour palette keeps the committed copies about a third of the size, legible as before.
        with Image.open(path) as shot:
            palette = shot.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
        palette.save(DOCS_SCREENSHOTS / path.name, optimize=True)
    return path


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if ARTIFACTS.is_dir() and any(ARTIFACTS.glob("*.png")):
        terminalreporter.write_line(f"browser screenshots: {ARTIFACTS}")
