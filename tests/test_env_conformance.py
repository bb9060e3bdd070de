"""One contract, every env: BrowserEnv, MobileWebEnv, DesktopEnv (a private Xvfb), AndroidEnv on the
device double, and FakeEnv (as a browser, and as a HiDPI phone) all pass the same checks.

Each env is built by ``envs.make``, the way the CLI and the collector build them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import pytest
from PIL import Image

from pixelpilot import envs
from pixelpilot.actions import (
    ACTION_TYPES,
    ACTIONS_BY_ENV,
    FINAL_ACTIONS,
    Click,
    Observation,
    Task,
    Type,
    action_from_dict,
    ground,
    png_size,
)
from pixelpilot.envs import (
    Box,
    Clipboard,
    DescribesTargets,
    Env,
    PageScripting,
    Recoverable,
    TabInfo,
    Tabs,
    TargetInfo,
    TextQueries,
    UrlDecision,
    UrlGuarded,
    UrlPolicy,
    WindowInfo,
    Windows,
)
from pixelpilot.envs.android_double import AndroidDeviceDouble

CAPABILITIES = (Recoverable, UrlGuarded, TextQueries, DescribesTargets, PageScripting, Tabs, Windows, Clipboard)
ALL = set(CAPABILITIES) - {Windows, Clipboard}  # a browser's: all but a desktop's windows and clipboard


@dataclass
class Case:
    name: str  # the envs.make kind
    cls: str
    kind: str
    input_space: str
    capabilities: set[type]
    text: str | None = None  # text on the first screen, for TextQueries (None: it shows none)
    options: dict[str, Any] = field(default_factory=dict)
    page: bool = False  # opens tests/pages/labels.html


CASES = [
    Case("browser", "BrowserEnv", "browser", "css", ALL, "Username", page=True),
    Case("mobile-web", "MobileWebEnv", "mobile", "css", ALL, "Username", page=True),
    Case(
        "desktop",
        "DesktopEnv",
        "desktop",
        "screen",
        {TextQueries, Windows, Clipboard},
        options={"virtual_display": (640, 480)},
    ),
    Case("android", "AndroidEnv", "mobile", "device", set(), options={"settle_interval": 0.01, "settle_timeout": 0.5}),
    Case("fake", "FakeEnv", "browser", "css", {Recoverable, TextQueries, DescribesTargets}, "Username"),
    Case(
        "fake",
        "FakeEnv",
        "mobile",
        "device",
        {Recoverable, TextQueries, DescribesTargets},
        "Sign in",
        {"kind": "mobile", "size": (360, 640), "scale": 2},
    ),
]

#: One instance of every action, for sending the ones an env has no handler for.
SAMPLES = {
    data["action"]: action_from_dict(data)
    for data in (
        {"action": "click", "x": 500, "y": 500},
        {"action": "double_click", "x": 500, "y": 500},
        {"action": "triple_click", "x": 500, "y": 500},
        {"action": "move", "x": 500, "y": 500},
        {"action": "drag", "x": 100, "y": 100, "x2": 200, "y2": 200},
        {"action": "scroll", "dy": 100},
        {"action": "type", "text": "x"},
        {"action": "key", "keys": ["tab"]},
        {"action": "wait", "seconds": 0},
        {"action": "navigate", "url": "about:blank"},
        {"action": "back"},
        {"action": "long_press", "x": 500, "y": 500, "seconds": 0.1},
        {"action": "swipe", "x": 500, "y": 700, "x2": 500, "y2": 300},
        {"action": "system_button", "button": "menu"},
        {"action": "open_app", "name": "Settings"},
        {"action": "window", "op": "focus", "window": "Settings"},
        {"action": "set_clipboard", "text": "x"},
        {"action": "tool", "name": "calculator"},
        {"action": "answer", "text": "done"},
        {"action": "terminate"},
    )
}


@pytest.fixture(params=CASES, ids=lambda c: f"{c.name}-{c.kind}" if c.name == "fake" else c.name)
def case(request) -> Case:
    return request.param


@pytest.fixture
async def make(case: Case, request):
    """Builds the case's env with envs.make (as many as a test wants); closes them all afterwards."""
    made: list[Env] = []

    def build() -> Env:
        options = dict(case.options)
        if case.name in ("browser", "mobile-web"):
            options["browser"] = request.getfixturevalue("chromium")
            options["url_policy"] = UrlPolicy.of(allow=["127.0.0.1"])
        if case.name == "android":
            options["device"] = AndroidDeviceDouble()
        env = envs.make(case.name, **options)
        made.append(env)
        return env

    yield build
    for env in made:
        await env.aclose()


@pytest.fixture
def task(case: Case, request) -> Task:
    url = request.getfixturevalue("pages_url") + "labels.html" if case.page else None
    return Task(instruction="conformance", url=url)


def _check_observation(obs: Observation, case: Case, size: tuple[int, int]) -> None:
    assert (obs.input_width, obs.input_height) == size
    assert obs.input_space == case.input_space
    png = obs.png
    assert png_size(png) == (obs.width, obs.height)
    with Image.open(io.BytesIO(png)) as img:
        assert img.format == "PNG" and img.size == (obs.width, obs.height)
    # the screenshot covers the input space, at the same scale on both axes (HiDPI: more pixels)
    assert obs.width >= obs.input_width and obs.height >= obs.input_height
    assert obs.width * obs.input_height == obs.height * obs.input_width


def test_make_builds_each_env_and_refuses_unknown_kinds(case: Case, make) -> None:
    env = make()
    assert isinstance(env, Env) and isinstance(env, getattr(envs, case.cls))
    assert env.kind == case.kind
    with pytest.raises(ValueError, match="unknown env 'fridge'; known: browser, mobile-web, desktop, android, fake"):
        envs.make("fridge")


async def test_reset_and_observe_give_consistent_observations(case: Case, make, task: Task) -> None:
    env = make()
    first = await env.reset(task)
    size = await env.input_size()
    _check_observation(first, case, size)
    again = await env.observe()
    _check_observation(again, case, size)
    assert (again.width, again.height) == (first.width, first.height)


@pytest.mark.parametrize("point", [(0, 0), (500, 500), (1000, 1000), (123, 877)])
async def test_clicks_are_grounded_into_the_input_space(case: Case, make, task: Task, point) -> None:
    env = make()
    obs = await env.reset(task)
    width, height = obs.input_width, obs.input_height  # as the step records them
    action = Click(x=point[0], y=point[1])
    outcome = await env.execute(action)
    assert outcome.ok, outcome.error
    assert outcome.pixel_action == ground(action, width, height, env.grid)
    assert 0 <= outcome.pixel_action["x"] < width and 0 <= outcome.pixel_action["y"] < height
    assert outcome.info["act_ms"] >= 0 and outcome.info["settle_ms"] >= 0


async def test_scrolls_and_swipes_are_grounded_too(case: Case, make, task: Task) -> None:
    env = make()
    obs = await env.reset(task)
    width, height = obs.input_width, obs.input_height
    action = SAMPLES["scroll"] if "scroll" in env.actions else SAMPLES["swipe"]
    outcome = await env.execute(action)
    assert outcome.ok, outcome.error
    assert outcome.pixel_action == ground(action, width, height, env.grid)


def test_the_samples_cover_every_action() -> None:
    assert set(SAMPLES) == set(ACTION_TYPES)


def test_the_handler_table_covers_the_kinds_actions(case: Case, make) -> None:
    env = make()
    table = env.handlers()
    wanted = set(ACTIONS_BY_ENV[env.kind]) - set(FINAL_ACTIONS)
    assert wanted <= set(table), sorted(wanted - set(table))
    assert env.actions == tuple(table) and all(callable(h) for h in table.values())


async def test_unsupported_actions_are_error_outcomes_naming_what_the_env_can_do(case: Case, make, task) -> None:
    env = make()
    await env.reset(task)
    missing = [kind for kind in SAMPLES if kind not in env.actions]
    assert "answer" in missing and "terminate" in missing and "tool" in missing  # never the env's to do
    for kind in missing:
        outcome = await env.execute(SAMPLES[kind])
        assert not outcome.ok and f"cannot do {kind!r}" in outcome.error
        assert outcome.error.endswith("it can do " + ", ".join(env.actions))


async def test_declared_capabilities_are_the_expected_ones_and_behave(case: Case, make, task: Task) -> None:
    env = make()
    first = await env.reset(task)
    assert {c for c in CAPABILITIES if isinstance(env, c)} == case.capabilities
    width, height = await env.input_size()

    if isinstance(env, UrlGuarded):
        decisions = env.url_decisions()
        assert decisions and all(set(d) == set(UrlDecision.__annotations__) for d in decisions)
        assert decisions[0]["kind"] == "navigation" and decisions[0]["allowed"] is True
        assert env.url_decisions() == []  # taken

    if isinstance(env, TextQueries):
        assert await env.locate_text("no such text on this screen") is None
    if isinstance(env, TextQueries) and case.text is not None:  # an empty desktop shows no text
        assert case.text in await env.page_text()
        box = await env.locate_text(case.text)
        assert isinstance(box, Box)
        cx, cy = box.center
        assert 0 <= cx < width and 0 <= cy < height
        if isinstance(env, DescribesTargets):
            gx, gy = env.grid.point_to_grid(cx, cy, width, height)
            target = await env.describe_target(Click(x=gx, y=gy))
            assert target is not None and set(target) == set(TargetInfo.__annotations__)
            assert target["tag"] in ("input", "button")

    if isinstance(env, DescribesTargets):
        focused = await env.describe_target(Type(text="x"))
        assert focused is None or set(focused) == set(TargetInfo.__annotations__)

    if isinstance(env, PageScripting):
        assert await env.evaluate("1 + 2") == 3
        assert await env.evaluate("n => n * 2", 21) == 42
        assert env.url == first.url and env.url.endswith("/labels.html")

    if isinstance(env, Tabs):
        tabs = await env.tabs()
        assert len(tabs) == 1 and set(tabs[0]) == set(TabInfo.__annotations__)
        assert tabs[0]["active"] and tabs[0]["url"] == first.url and tabs[0]["title"] == "Labels"
        await env.focus_tab(0)
        with pytest.raises(ValueError, match="no tab 3"):
            await env.focus_tab(3)

    if isinstance(env, Windows):
        windows = await env.list_windows()
        assert all(isinstance(w, WindowInfo) for w in windows)
        assert await env.find_window("no such window") is None

    if isinstance(env, Clipboard):
        await env.write_clipboard("copied ✓")
        assert await env.read_clipboard() == "copied ✓"

    if isinstance(env, Recoverable):
        again = await env.recover()  # a relaunch brings it back where it was
        assert again.url == first.url and (again.input_width, again.input_height) == (width, height)
        assert (await env.execute(Click(x=500, y=500))).ok


async def test_async_with_starts_it_and_closing_twice_is_fine(case: Case, make, task: Task) -> None:
    env = make()
    async with env as entered:
        assert entered is env
        obs = await env.reset(task)
        assert obs.input_width > 0
    await env.aclose()
    await env.aclose()
