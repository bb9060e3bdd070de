"""Shared fixtures: the example app, a static page server, and real headless Chromium."""

from __future__ import annotations

import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))

from todo_app import TodoApp  # noqa: E402

PAGES = Path(__file__).resolve().parent / "pages"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def todo_app():
    """The example to-do app on 127.0.0.1, on a free port."""
    with TodoApp() as app:
        yield app


@pytest.fixture(scope="session")
def pages_url():
    """tests/pages served over HTTP on 127.0.0.1; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(PAGES)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
async def shared_browser():
    """One real headless Chromium for the session; envs open their own contexts in it."""
    from playwright.async_api import async_playwright

    from pixelpilot.envs.browser import CHROMIUM_FLAGS, find_chromium

    pw = await async_playwright().start()
    browser = await pw.chromium.launch(executable_path=find_chromium(), args=list(CHROMIUM_FLAGS))
    try:
        yield browser
    finally:
        await browser.close()
        await pw.stop()


@pytest.fixture
async def browser_env(shared_browser):
    """A factory for BrowserEnv instances (in the shared Chromium), all closed after the test."""
    from pixelpilot.envs.browser import BrowserEnv

    envs: list[BrowserEnv] = []

    def make(**kwargs) -> BrowserEnv:
        kwargs.setdefault("browser", shared_browser)
        env = BrowserEnv(**kwargs)
        envs.append(env)
        return env

    yield make
    for env in envs:
        await env.close()
