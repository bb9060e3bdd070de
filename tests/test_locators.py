"""The OCR locator on screens without a DOM: a canvas in real Chromium, and a Tk app on a DesktopEnv (Xvfb)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pixelpilot.actions import Observation, Task
from pixelpilot.agent import Agent, ScriptPolicy
from pixelpilot.agent.locators import TextLine, match_text, to_input_space
from pixelpilot.envs import Box, TextMatch, rank_matches, role_matches
from pixelpilot.trajectories import Recorder, load_episode


def test_match_text_gives_every_line_exact_and_containing_narrowed_to_the_part():
    lines = [
        TextLine("Please sign in here", (100, 10, 190, 20), 0.9),
        TextLine("Sign in", (300, 50, 70, 20), 0.8),
        TextLine("Register", (300, 90, 80, 20), 0.9),
    ]
    found = match_text(lines, "sign  IN")
    assert [(m.text, m.exact, m.source) for m in found] == [
        ("Please sign in here", False, "ocr"),
        ("Sign in", True, "ocr"),
    ]
    assert found[1].box == (300, 50, 70, 20)
    assert found[0].box == (170, 10, 70, 20)  # chars 7..14 of 19 over 190 px
    assert match_text(lines, "Log out") == [] and match_text(lines, "  ") == []


def test_the_ranking_rule_exact_visible_control_then_nearest_the_pointer():
    def m(name, top, left=0.0, exact=True, visible=True, role="button"):
        return TextMatch(Box(left, top, 40, 20), name, exact, visible, role, "dom")

    fuzzy = m("Save draft", 0, exact=False)
    clipped = m("clipped", 10, visible=False)
    label = m("label", 20, role="label")
    low, high = m("low", 400), m("high", 300, left=500)
    ranked = rank_matches([fuzzy, clipped, label, low, high])
    assert [r.text for r in ranked] == ["high", "low", "label", "clipped", "Save draft"]  # top first
    assert [r.text for r in rank_matches([high, low], near=(0, 420))] == ["low", "high"]
    # the pointer only orders what ties on the rest
    assert rank_matches([label, low], near=(20, 30))[0] is low


@pytest.mark.parametrize(
    "wanted, role, same",
    [
        ("button", "push button", True),  # AT-SPI
        ("button", "toggle_button", True),
        ("Button", "button", True),
        ("link", "a", True),  # a DOM tag
        ("textbox", "entry", True),
        ("text box", "textarea", True),
        ("menu item", "menuitem", True),
        ("heading", "h3", True),
        ("button", "radio button", False),
        ("button", "label", False),
    ],
)
def test_roles_compare_loosely(wanted, role, same):
    assert role_matches(wanted, role) is same


async def test_the_fake_env_lists_its_matching_widgets():
    from pixelpilot.envs.fake import Button, FakeEnv, Text

    env = FakeEnv(
        widgets=[
            Text("Save your work", (10, 10, 200, 20)),
            Button("Save", (10, 50, 80, 30)),
            Button("Save", (10, 470, 80, 30)),  # partly below the 640×480 screen
        ]
    )
    await env.reset()
    found = await env.find_text("save")
    assert [(m.text, m.exact, m.visible, m.role) for m in found] == [
        ("Save your work", False, True, "p"),
        ("Save", True, True, "button"),
        ("Save", True, False, "button"),
    ]
    assert len(await env.find_text("Save", role="push button")) == 2
    assert await env.locate_text("Save") == (10, 50, 80, 30)


def test_boxes_come_back_in_input_space_on_hidpi():
    obs = Observation(png=b"", width=2560, height=1600, input_width=1280, input_height=800)
    assert to_input_space((200, 100, 60, 40), obs) == (100, 50, 30, 20)


async def test_ocr_clicks_a_button_drawn_on_a_canvas_on_a_hidpi_page(browser_env, pages_url, tmp_path):
    # Device pixels in the screenshot, CSS pixels for input: the OCR box must be scaled down.
    env = browser_env(viewport=(640, 400), device_scale_factor=2, screenshot_scale="device")
    agent = Agent(env, ScriptPolicy([{"click": "Launch"}], locate_timeout=60), recorder=Recorder(tmp_path))
    episode = await agent.run(Task(instruction="launch", url=pages_url + "canvas.html"))
    assert episode.status == "success", episode.message
    clicks = await env.page.evaluate("window.clicks")
    assert clicks and clicks[0]["hit"], clicks
    step = load_episode(episode.path).steps[0]
    assert step.observation["width"] == 1280 and step.observation["input_width"] == 640
    assert step.extra["target"]["by"] == "ocr"


async def test_ocr_clicks_a_tk_button_on_a_desktop_under_xvfb(tmp_path):
    from desktop_helpers import start_app

    from pixelpilot.envs.desktop import DesktopEnv

    env = DesktopEnv(virtual_display=(800, 600))
    await env.reset()
    proc, app = start_app(str(env.display), tmp_path / "state.json")
    try:
        # No DOM on a desktop: `click: Press me` finds the button's label by OCR.
        agent = Agent(env, ScriptPolicy([{"click": "Press me"}], locate_timeout=60), recorder=Recorder(tmp_path))
        episode = await agent.run(Task(instruction="press the button", env="desktop"))
        assert episode.status == "success", episode.message
        assert episode.steps[0].outcome["ok"], episode.steps[0].outcome
        assert episode.steps[0].extra["target"]["by"] == "ocr"
        app.wait(lambda s: s["presses"] == 1, timeout=10)
    finally:
        proc.terminate()
        proc.wait(5)
        await env.aclose()


# --- a real calculator (galculator, GTK) on Xvfb: its display and its button both read "7" ---


@pytest.fixture
async def galculator(tmp_path):
    """galculator on a private 640×480 Xvfb (at the top-left corner: no window manager), with a HOME
    of its own; stopped after the test. Without its accessibility tree, so that text is found by OCR,
    which reads the display's "7" and the button's alike."""
    from pixelpilot.envs.desktop import DesktopEnv

    env = DesktopEnv(virtual_display=(640, 480), accessibility=False, window_manager=None)
    await env.reset()
    home = tmp_path / "home"
    home.mkdir()
    proc = subprocess.Popen(
        ["galculator"],
        env={**os.environ, "DISPLAY": str(env.display), "HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while (await env.observe()).image.getpixel((10, 10)) == (0, 0, 0):  # the bare screen is black
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError("galculator did not show its window within 20 s")
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)  # let it finish drawing
        yield env
    finally:
        proc.terminate()
        proc.wait(10)
        await env.aclose()


async def test_an_ambiguous_ocr_target_on_a_real_calculator(galculator, tmp_path):
    async def run(*steps):
        policy = ScriptPolicy(list(steps), locate_timeout=30)
        return await Agent(galculator, policy, recorder=Recorder(tmp_path)).run(Task(instruction="t", env="desktop"))

    # The display shows 7 once 7 is pressed: "7" is then both the display and the button.
    strict = await run({"click": "7"}, {"click": {"text": "7", "strict": True}})
    assert strict.status == "failure"
    assert strict.message.startswith("'7' matches 2 things and the step is strict: '7' at {x1: ")
    assert strict.message.count(" by ocr") == 2

    episode = await run(
        {"click": {"text": "7", "nth": 1}},  # reading order: the display first (clicking it does nothing)
        {"click": "7"},  # ambiguous: the one nearest the pointer, the display again
        {"click": {"text": "7", "near": "4"}},  # the button, next to 4
        {"expect": {"text": "77"}},
    )
    assert episode.status == "success", episode.message
    steps = load_episode(episode.path).steps
    display, ambiguous, button = (s.extra["target"] for s in steps[:3])
    assert ambiguous["ambiguous"] is True and ambiguous["source"] == "ocr"
    assert sorted(c["box"][1] for c in ambiguous["candidates"]) == sorted([display["box"][1], button["box"][1]])
    assert ambiguous["box"] == display["box"] and button["box"][1] > display["box"][1] + 80

    # Had the strict step or the display clicks pressed the button, the display would show 777 or more.
    absent = await run({"expect": {"text": "777", "timeout": 1}})
    assert absent.status == "failure" and absent.message == "expected text '777' is not on the page"


async def test_expect_text_on_the_android_double_reads_the_screen_by_ocr(tmp_path):
    from pixelpilot.envs.android import AndroidEnv
    from pixelpilot.envs.android_double import AndroidDeviceDouble

    env = AndroidEnv(device=AndroidDeviceDouble(), settle_interval=0.01, settle_timeout=1.0)
    try:
        for text, status in (("Calculator", "success"), ("Weather", "failure")):
            policy = ScriptPolicy([{"expect": {"text": text, "timeout": 1}}])
            episode = await Agent(env, policy, recorder=Recorder(tmp_path)).run(Task(instruction="t", env="mobile"))
            assert episode.status == status, episode.message
        assert episode.message == "expected text 'Weather' is not on the page"
    finally:
        await env.aclose()


def test_expect_on_a_desktop_from_the_cli_fails_the_script_without_a_traceback(tmp_path):
    """Issue 19: `expect: {text: …}` on a desktop raised out of the CLI, and the episode ended as error."""
    taskfile = tmp_path / "desktop.yaml"
    taskfile.write_text("instruction: t\nenv: desktop\nsteps:\n  - expect: {text: Nothing like this, timeout: 1}\n")
    out = tmp_path / "runs"
    proc = subprocess.run(
        [sys.executable, "-m", "pixelpilot.cli", "run", str(taskfile), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    ended = json.loads((folder / "episode.json").read_text())
    assert ended["status"] == "failure" and ended["message"] == "expected text 'Nothing like this' is not on the page"
