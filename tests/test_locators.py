"""The OCR locator on screens without a DOM: a canvas in real Chromium, and a Tk app on a DesktopEnv (Xvfb)."""

from __future__ import annotations

from pixelpilot.actions import Observation, Task
from pixelpilot.agent import Agent, ScriptPolicy
from pixelpilot.agent.locators import TextLine, match_text, to_input_space
from pixelpilot.trajectories import Recorder, load_episode


def test_match_text_prefers_exact_lines_and_narrows_to_a_substring():
    lines = [TextLine("Please sign in here", (100, 10, 190, 20), 0.9), TextLine("Sign in", (300, 50, 70, 20), 0.8)]
    assert match_text(lines, "sign  IN") == (300, 50, 70, 20)
    left, top, width, height = match_text(lines[:1], "sign in")
    assert (left, width) == (170, 70) and (top, height) == (10, 20)  # chars 7..14 of 19 over 190 px
    assert match_text(lines, "Register") is None


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
