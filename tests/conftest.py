"""Shared fixtures: the example app, a static page server, real headless Chromium, and the local model
backend serving a tiny Qwen3-VL."""

from __future__ import annotations

import socket
import subprocess
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


#: Hostnames under .test resolve to loopback in the tests' Chromium (the URL-policy tests' "other sites").
RESOLVER = "--host-resolver-rules=MAP *.test 127.0.0.1"


@pytest.fixture(scope="session")
async def chromium():
    """The session's one Chromium launcher (envs/chromium.py), launched on first use and again if a
    test killed it; stopped when the session ends."""
    from pixelpilot.envs.chromium import SharedChromium

    launcher = SharedChromium(extra_args=[RESOLVER])
    try:
        yield launcher
    finally:
        await launcher.aclose()


@pytest.fixture(scope="session")
async def shared_browser(chromium):
    """One real headless Chromium for the session; envs open their own contexts in it."""
    return await chromium.get()


@pytest.fixture
async def browser(chromium):
    """The session's Chromium (relaunched if an earlier test killed it), for tests that open their
    own BrowserEnv(browser=…)."""
    return await chromium.get()


@pytest.fixture
async def browser_env(chromium):
    """A factory for BrowserEnv instances (contexts in the session's Chromium), all closed after the test."""
    from pixelpilot.envs.browser import BrowserEnv

    envs: list[BrowserEnv] = []

    def make(**kwargs) -> BrowserEnv:
        kwargs.setdefault("browser", chromium)
        env = BrowserEnv(**kwargs)
        envs.append(env)
        return env

    yield make
    for env in envs:
        await env.aclose()


# --- the local model backend on a tiny random Qwen3-VL (shared by the serving and script tests) ---


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen3-VL checkpoint (built in seconds, no download); needs the 'local' extra."""
    from pixelpilot.serving.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-qwen3-vl"))


@pytest.fixture(scope="session")
async def server_url(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """The tiny model behind ``pixelpilot serve`` (the local backend) on 127.0.0.1; its /v1 URL."""
    from pixelpilot._process import stop_group
    from pixelpilot.serving.client import wait_until_ready

    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pixelpilot.cli",
                "serve",
                "--backend",
                "transformers",
                "--model",
                str(tiny_model),
                "--port",
                str(port),
                "--served-name",
                "tiny",
                "--threads",
                "1",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        try:
            await wait_until_ready(url, timeout=180, process=proc)
        except Exception:
            pytest.fail(f"the local backend did not start:\n{log.read_text()[-3000:]}")
        yield url
    finally:
        stop_group(proc)


def pip_target(tmp_path_factory: pytest.TempPathFactory, name: str, *requirements: str, timeout: float) -> str:
    """A folder of this session's own holding ``requirements`` (installed with ``--no-deps``, never into
    the project's venv), for a subprocess to put on its path; skips, naming what failed, when pip cannot."""
    target = tmp_path_factory.mktemp(name)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), *requirements],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        why = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
        pytest.skip(f"{requirements[0]} cannot be installed here: {why}")
    return str(target)
