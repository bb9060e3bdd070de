"""BrowserEnv in real headless Chromium: input lands where the grid says, at any scale."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from pixelpilot.actions import Back, Click, DoubleClick, Drag, Key, Navigate, Scroll, Type
from pixelpilot.actions.keys import canonical_keys
from pixelpilot.envs.browser import PLAYWRIGHT_KEYS, playwright_key


def grid_point(env, css_x: float, css_y: float) -> tuple[int, int]:
    w, h = env.viewport
    return env.grid.point_to_grid(css_x, css_y, w, h)


async def element_center(env, selector: str) -> tuple[float, float]:
    r = await env.page.evaluate(
        "s => { const r = document.querySelector(s).getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; }",
        selector,
    )
    return r[0], r[1]


async def click_element(env, selector: str, **kw):
    x, y = grid_point(env, *await element_center(env, selector))
    return await env.execute(Click(x=x, y=y, **kw))


@pytest.mark.parametrize("dpr", [1, 2])
async def test_clicks_hit_the_intended_buttons(browser_env, pages_url, dpr):
    env = browser_env(device_scale_factor=dpr)
    from pixelpilot.actions import Task

    obs = await env.reset(Task(instruction="t", url=pages_url + "clicks.html"))
    assert (obs.input_width, obs.input_height) == (1280, 800)
    assert (obs.width, obs.height) == (1280, 800)  # CSS-scale screenshots by default
    for target in ("#tl", "#tr", "#c", "#br"):
        outcome = await click_element(env, target)
        assert outcome.ok
    clicks = await env.page.evaluate("window.clicks")
    assert [c["id"] for c in clicks] == ["tl", "tr", "c", "br"]
    await click_element(env, "#c", button="right")
    assert (await env.page.evaluate("window.clicks.at(-1)"))["button"] == 2


async def test_device_scale_screenshots_keep_css_input_space(browser_env, pages_url):
    env = browser_env(device_scale_factor=2, screenshot_scale="device")
    from pixelpilot.actions import Task

    obs = await env.reset(Task(instruction="t", url=pages_url + "clicks.html"))
    assert (obs.width, obs.height) == (2560, 1600)
    assert (obs.input_width, obs.input_height) == (1280, 800)
    await click_element(env, "#br")
    assert (await env.page.evaluate("window.clicks"))[-1]["id"] == "br"


async def test_typed_text_lands_in_the_input_and_key_combos_work(browser_env, pages_url):
    env = browser_env()
    await env.reset()
    await env.execute(Navigate(url=pages_url + "clicks.html"))
    await click_element(env, "#name")
    await env.execute(Type(text="Grüße, 世界"))
    assert await env.page.input_value("#name") == "Grüße, 世界"
    await env.execute(Key(keys=["ctrl", "a"]))
    await env.execute(Type(text="replaced"))
    assert await env.page.input_value("#name") == "replaced"
    await env.execute(Key(keys=["ctrl", "a"]))
    await env.execute(Key(keys=["Backspace"]))
    assert await env.page.input_value("#name") == ""


async def test_click_after_scrolling_down_hits_the_far_button(browser_env, pages_url):
    env = browser_env()
    from pixelpilot.actions import Task

    await env.reset(Task(instruction="t", url=pages_url + "clicks.html"))
    for _ in range(3):
        outcome = await env.execute(Scroll(dy=1000))
        assert outcome.ok and outcome.pixel_action["dy"] == 800
    assert await env.page.evaluate("window.scrollY") >= 2000
    await click_element(env, "#tall")
    assert (await env.page.evaluate("window.clicks"))[-1]["id"] == "tall"


async def test_double_click_and_drag(browser_env, pages_url):
    env = browser_env()
    from pixelpilot.actions import Task

    await env.reset(Task(instruction="t", url=pages_url + "clicks.html"))
    x, y = grid_point(env, *await element_center(env, "#c"))
    await env.execute(DoubleClick(x=x, y=y))
    assert {"id": "c", "kind": "dblclick"} in await env.page.evaluate("window.clicks")
    sx, sy = grid_point(env, 70, 430)
    ex, ey = grid_point(env, 470, 430)
    outcome = await env.execute(Drag(x=sx, y=sy, x2=ex, y2=ey))
    assert outcome.pixel_action == {"action": "drag", "x": 70, "y": 430, "x2": 470, "y2": 430}
    drags = await env.page.evaluate("window.drags")
    assert drags == [{"from": {"x": 70, "y": 430}, "to": {"x": 470, "y": 430}}]


async def test_popup_tab_gets_focus_and_receives_input(browser_env, pages_url):
    env = browser_env()
    from pixelpilot.actions import Task

    await env.reset(Task(instruction="t", url=pages_url + "clicks.html"))
    await click_element(env, "#popup")
    obs = await env.observe()
    assert obs.url.endswith("/popup.html")
    assert any("new tab" in e for e in obs.events)
    await click_element(env, "#q")
    await env.execute(Type(text="kittens"))
    await click_element(env, "#go")
    assert (await env.observe()).title == "Searched: kittens"
    tabs = await env.tabs()
    assert [(t["index"], t["active"]) for t in tabs] == [(0, False), (1, True)]
    assert tabs[0]["url"].endswith("/clicks.html") and tabs[1]["title"] == "Searched: kittens"
    await env.focus_tab(0)  # back to the first tab: looks and actions go there
    assert (await env.observe()).url.endswith("/clicks.html") and env.url.endswith("/clicks.html")
    await click_element(env, "#c")
    assert (await env.evaluate("window.clicks"))[-1]["id"] == "c"


async def test_dialogs_are_recorded_and_dismissed(browser_env, pages_url):
    env = browser_env()
    from pixelpilot.actions import Task

    await env.reset(Task(instruction="t", url=pages_url + "clicks.html"))
    outcome = await click_element(env, "#alert")
    assert outcome.ok
    obs = await env.observe()
    assert env.dialogs == [{"type": "alert", "message": "hello there"}]
    assert any("alert dialog was dismissed" in e for e in obs.events)


async def test_navigate_back_and_errors(browser_env, pages_url):
    env = browser_env()
    await env.reset()
    await env.execute(Navigate(url=pages_url + "clicks.html"))
    await env.execute(Navigate(url="popup.html"))  # relative to the current page
    assert env.page.url.endswith("/popup.html")
    assert (await env.execute(Back())).ok
    assert env.page.url.endswith("/clicks.html")
    from pixelpilot.actions import SystemButton

    outcome = await env.execute(SystemButton(button="home"))
    assert not outcome.ok and "cannot do 'system_button'" in outcome.error
    assert "it can do click, double_click" in outcome.error and "navigate, back" in outcome.error


async def test_locate_text_prefers_interactive_exact_matches(browser_env, todo_app):
    from pixelpilot.actions import Task

    env = browser_env()
    await env.reset(Task(instruction="t", url=todo_app.url))
    button = await env.locate_text("Sign in")  # the heading says "Sign in" too
    tag = await env.page.evaluate("([x, y]) => document.elementFromPoint(x, y).tagName", list(button.center))
    assert tag == "BUTTON"
    field = await env.locate_text("Username")
    assert field is not None
    assert await env.locate_text("No such text anywhere") is None


async def _rect(env, selector: str) -> list[float]:
    return await env.evaluate(
        "s => { const r = document.querySelector(s).getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; }",
        selector,
    )


@pytest.mark.parametrize(
    "text,selector",
    [
        ("Username", "#user"),  # label text and placeholder tie: the input, not the label
        ("Email address", "#email"),  # a wrapping label
        ("Nickname", "#nick"),  # text inside a label bound with for=
        ("Home city", "#city"),  # aria-labelledby
        ("Just a label", "#orphan"),  # a label bound to nothing is itself the target
    ],
)
async def test_a_label_locates_its_control(browser_env, pages_url, text, selector):
    from pixelpilot.actions import Task

    env = browser_env()
    await env.reset(Task(instruction="t", url=pages_url + "labels.html"))
    assert list(await env.locate_text(text)) == await _rect(env, selector)


async def test_type_into_a_label_clicks_the_input_and_the_text_lands_there(browser, todo_app, tmp_path):
    """Issue 14: `type: {into: Username}` grounded to the label (it ties with the placeholder), so the
    recorded target, and the grounding data exported from it, pointed at the label."""
    from pixelpilot.actions import Task
    from pixelpilot.agent import Agent, ScriptPolicy
    from pixelpilot.envs.browser import BrowserEnv
    from pixelpilot.trajectories import Recorder, load_episode

    env = BrowserEnv(browser=browser)
    try:
        task = Task(instruction="t", url=todo_app.url, steps=[{"type": {"text": "alice", "into": "Username"}}])
        episode = await Agent(env, ScriptPolicy(), recorder=Recorder(tmp_path)).run(task)
        assert episode.status == "success", episode.message
        field = await _rect(env, "#username")
        label = await _rect(env, "label[for=username]")
        assert await env.page.input_value("#username") == "alice"
    finally:
        await env.aclose()
    click = load_episode(episode.path).steps[0]
    assert click.action["action"] == "click"
    assert click.extra["target"]["box"] == field != label
    left, top, width, height = field
    assert left <= click.pixel_action["x"] < left + width and top <= click.pixel_action["y"] < top + height


def test_canonical_key_names_map_to_playwright():
    assert playwright_key(canonical_keys(["ctrl", "shift", "Tab"])) == "Control+Shift+Tab"
    assert playwright_key(["enter"]) == "Enter"
    assert playwright_key(canonical_keys(["cmd", "a"])) == "Meta+a"
    assert playwright_key(["f5", "num0", "ctrl_right", "menu"]) == "F5+Numpad0+ControlRight+ContextMenu"
    with pytest.raises(ValueError, match="the browser has no 'volume_up' key"):
        playwright_key(["volume_up"])


def test_every_canonical_key_is_pressable_or_refused_by_name():
    """The one key table (actions/keys.py) is the vocabulary: each name is either mapped to a key of
    Playwright's keyboard or refused naming the key, never passed through unchanged."""
    from pixelpilot.actions.keys import CANONICAL

    for name in CANONICAL:
        try:
            assert playwright_key([name]) in PLAYWRIGHT_KEYS.values()
        except ValueError as e:
            assert repr(name) in str(e)


async def test_a_key_the_browser_lacks_is_an_error_outcome(browser_env):
    env = browser_env()
    await env.reset()
    outcome = await env.execute(Key(keys=["volume_up"]))
    assert not outcome.ok and "volume_up" in outcome.error and "browser" in outcome.error


# --- Chromium's command line --------------------------------------------------------------------


def test_extra_disable_features_are_merged_with_ours():
    """Chromium honours only the last --disable-features: a caller's list must join ours, not replace it."""
    from pixelpilot.envs.chromium import DISABLED_FEATURES, chromium_args

    args = chromium_args(["--disable-features=Translate,MediaRouter", "--lang=de"])
    lists = [a.split("=", 1)[1].split(",") for a in args if a.startswith("--disable-features=")]
    assert len(lists) == 1
    assert set(lists[0]) == {*DISABLED_FEATURES, "Translate"} and len(lists[0]) == len(set(lists[0]))
    assert "--lang=de" in args and "--no-sandbox" in args


def test_our_disabled_features_cover_the_playwright_drivers():
    """Our --disable-features replaces Playwright's own, so it must repeat every feature the installed
    driver turns off; a Playwright upgrade that adds one fails here until PLAYWRIGHT_DISABLED_FEATURES
    gains it."""
    import re
    from pathlib import Path

    import playwright

    from pixelpilot.envs.chromium import PLAYWRIGHT_DISABLED_FEATURES

    bundle = Path(playwright.__file__).parent / "driver" / "package" / "lib" / "coreBundle.js"
    found = re.search(r"disabledFeatures = \[(.*?)\]", bundle.read_text(encoding="utf-8"), re.S)
    assert found, f"Playwright's list of disabled features moved; find it in {bundle.parent} and update this test"
    theirs = set(re.findall(r'^\s*"(\w+)"', found.group(1), re.M))
    assert theirs and theirs <= set(PLAYWRIGHT_DISABLED_FEATURES), sorted(theirs - set(PLAYWRIGHT_DISABLED_FEATURES))


async def test_a_new_context_builds_no_hidden_browser_ui(pages_url):
    """Unless told not to, Chromium (not the headless shell, which has no UI) builds an omnibox-popup
    WebUI for every window, that is for every context: 0.55 CPU-seconds each (bench/collect_throughput.py)."""
    from pixelpilot.envs.browser import BrowserEnv

    env = BrowserEnv(executable_path="/usr/bin/chromium")
    try:
        await env.reset()
        await env.page.goto(pages_url + "clicks.html")
        cdp = await env.running_browser.new_browser_cdp_session()
        targets = (await cdp.send("Target.getTargets"))["targetInfos"]
        await cdp.detach()
    finally:
        await env.aclose()
    assert any(t["type"] == "page" for t in targets)
    assert [t["url"] for t in targets if t["type"] == "browser_ui"] == []


def test_headless_runs_use_the_headless_shell_and_headed_ones_chromium(monkeypatch):
    """Debian's chromium-headless-shell (scripts/setup.sh installs it) drives every headless run."""
    from pixelpilot.envs.chromium import find_chromium

    monkeypatch.delenv("PIXELPILOT_CHROMIUM", raising=False)
    assert find_chromium(headless=True) == "/usr/bin/chromium-headless-shell"
    assert find_chromium(headless=False) == "/usr/bin/chromium"
    assert find_chromium("/usr/bin/chromium", headless=True) == "/usr/bin/chromium"


# --- the launcher ---------------------------------------------------------------------------------


async def _kill_browser(browser) -> int:
    """SIGKILL the browser's process; returns once Playwright has seen it go."""
    cdp = await browser.new_browser_cdp_session()
    info = await cdp.send("SystemInfo.getProcessInfo")
    await cdp.detach()
    pid = next(p["id"] for p in info["processInfo"] if p["type"] == "browser")
    os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        if not browser.is_connected():
            break
        await asyncio.sleep(0.05)
    return pid


async def test_shared_chromium_launches_once_and_again_after_it_died(pages_url):
    """One launcher for many envs: each env a context in it; a crashed env takes a relaunched browser
    from it in recover() and reopens its page, and the other envs keep going."""
    from pixelpilot.actions import Task
    from pixelpilot.envs import EnvCrashed
    from pixelpilot.envs.browser import BrowserEnv
    from pixelpilot.envs.chromium import SharedChromium

    async with SharedChromium() as shared:
        a, b = BrowserEnv(browser=shared), BrowserEnv(browser=shared)
        try:
            await a.reset(Task(instruction="a", url=pages_url + "clicks.html"))
            await b.reset(Task(instruction="b", url=pages_url + "popup.html"))
            assert shared.launches == 1 and a.running_browser is b.running_browser is shared.current
            await _kill_browser(shared.current)
            with pytest.raises(EnvCrashed):
                await a.observe()
            obs = await a.recover()
            assert shared.launches == 2 and obs.url.endswith("/clicks.html")
            assert "the browser crashed and was restarted" in obs.events
            assert (await b.recover()).url.endswith("/popup.html") and b.running_browser is a.running_browser
        finally:
            await a.aclose()
            await b.aclose()
        assert shared.current is not None and shared.current.is_connected()  # the envs leave it running
    assert shared.current is None


async def test_an_env_given_a_plain_browser_cannot_relaunch_it(pages_url):
    from pixelpilot.envs import EnvError
    from pixelpilot.envs.browser import BrowserEnv
    from pixelpilot.envs.chromium import SharedChromium

    async with SharedChromium() as shared:
        env = BrowserEnv(browser=await shared.get())
        await env.reset()
        await _kill_browser(env.running_browser)
        with pytest.raises(EnvError, match="the shared browser is gone"):
            await env.recover()
        await env.aclose()
