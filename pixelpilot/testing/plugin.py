"""The pytest plugin (entry point ``pytest11: pixelpilot``): the ``pilot`` fixture.

    def test_sign_in(pilot, todo_app):
        pilot.goto(todo_app.url)
        pilot.type("alice", into="Username")
        pilot.click("Sign in")
        pilot.expect_text("Welcome, alice")

Every test gets a fresh browser context in one headless Chromium shared by the session
(``--headed`` shows it). Each pilot call is recorded as a step of the test's episode; when the
test fails, the episode and an HTML report of it are kept under ``--pilot-out`` and their paths
are shown in the test's report (a ``pixelpilot`` section, and ``user_properties`` for JUnit XML).
A passing test's episode is deleted unless ``--pilot-keep=all``.

Budgets: ``--pilot-max-steps`` / ``--pilot-max-seconds`` (the whole test) and ``--pilot-do-steps``
(each ``do``), or per test ``@pytest.mark.pilot(max_steps=…, max_seconds=…, do_steps=…)``.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..agent import Limits
from .pilot import AsyncPilot
from .pilot_sync import Pilot

_PILOT = pytest.StashKey["Pilot"]()
_FAILED = pytest.StashKey[bool]()
_RUNTIME = pytest.StashKey["_Runtime"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pixelpilot", "pixelpilot browser tests (the pilot fixture)")
    try:
        group.addoption("--headed", action="store_true", default=False, help="Show the pilot's browser window.")
    except ValueError:
        pass  # another browser plugin (pytest-playwright) defines --headed: share it
    group.addoption(
        "--pilot-out",
        default="pilot-runs",
        help="Where failed tests' episodes and reports go (relative to the rootdir). Default: pilot-runs",
    )
    group.addoption(
        "--pilot-keep",
        choices=("failed", "all"),
        default="failed",
        help="Keep the episodes of failed tests only (default), or of all tests.",
    )
    group.addoption("--pilot-max-steps", type=int, default=200, help="Step budget of one test (default 200).")
    group.addoption("--pilot-max-seconds", type=float, default=None, help="Time budget of one test.")
    group.addoption("--pilot-do-steps", type=int, default=5, help="Actions one `do` may take (default 5).")
    group.addoption(
        "--pilot-model-url",
        default=None,
        help="An OpenAI-compatible model server for do/expect/by='model' (e.g. SGLang).",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "pilot(max_steps=None, max_seconds=None, do_steps=None): budgets for this test's pilot"
    )


class _Runtime:
    """The session's event loop thread and its one Chromium (launched on first use)."""

    def __init__(self, headless: bool) -> None:
        from ..envs import SharedChromium

        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="pixelpilot-pilot", daemon=True)
        self._thread.start()
        self.chromium = SharedChromium(headless=headless)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.chromium.aclose(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


def pytest_unconfigure(config: pytest.Config) -> None:
    runtime = config.stash.get(_RUNTIME, None)
    if runtime is not None:
        runtime.close()


def _setting(request: pytest.FixtureRequest, name: str) -> Any:
    marker = request.node.get_closest_marker("pilot")
    if marker is not None and marker.kwargs.get(name) is not None:
        return marker.kwargs[name]
    return request.config.getoption(f"pilot_{name}")


@pytest.fixture
def pilot(request: pytest.FixtureRequest) -> Iterator[Pilot]:
    """A browser for this test whose every step is recorded; see the plugin's docstring."""
    from ..envs import make as make_env

    config = request.config
    runtime = config.stash.get(_RUNTIME, None)
    if runtime is None:
        runtime = config.stash[_RUNTIME] = _Runtime(headless=not config.getoption("headed"))
    out = Path(config.rootpath, config.getoption("pilot_out"))
    limits = Limits(max_steps=_setting(request, "max_steps"), max_seconds=_setting(request, "max_seconds"))
    name = re.sub(r"[^\w.-]+", "-", request.node.name)
    model_url = config.getoption("pilot_model_url")

    def build() -> AsyncPilot:
        models: dict[str, Any] = {}
        if model_url:
            from ..agent.model_checks import model_helpers
            from ..agent.model_policy import ModelPolicy

            models = model_helpers(ModelPolicy(model_url))
        return AsyncPilot(
            make_env("browser", browser=runtime.chromium),
            name=name,
            instruction=request.node.nodeid,
            out=out,
            limits=limits,
            do_steps=_setting(request, "do_steps"),
            **models,
        )

    p = Pilot(build, loop=runtime.loop)
    request.node.stash[_PILOT] = p
    try:
        yield p
    finally:
        episode = p.close()
        keep = request.node.stash.get(_FAILED, False) or config.getoption("pilot_keep") == "all"
        if not keep and episode.path:
            shutil.rmtree(episode.path, ignore_errors=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """On a failure, end the test's episode as failed, write its report and attach both paths."""
    report = yield
    p = item.stash.get(_PILOT, None)
    if p is None or not report.failed or item.stash.get(_FAILED, False):
        return report
    item.stash[_FAILED] = True
    why = call.excinfo.exconly().splitlines()[0][:300] if call.excinfo else "the test failed"
    episode = p.finish("failure", f"the test failed: {why}")
    from ..trajectories import write_report

    assert episode.path is not None  # a recorded episode always has its folder
    html = write_report(episode.path)
    report.sections.append(("pixelpilot", f"episode: {episode.path}\nreport:  {html}"))
    props = [("pixelpilot_episode", episode.path), ("pixelpilot_report", str(html))]
    report.user_properties.extend(props)
    item.user_properties.extend(props)  # later reports (JUnit XML reads teardown's) carry them too
    return report
