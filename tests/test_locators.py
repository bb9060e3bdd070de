"""The OCR locator on screens without a DOM: a canvas in real Chromium, and a Tk window under Xvfb."""

from __future__ import annotations

import io
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pixelpilot.actions import Observation, Task
from pixelpilot.agent import Agent, ScriptPolicy
from pixelpilot.agent.locators import OcrLocator, TextLine, match_text, to_input_space
from pixelpilot.trajectories import Recorder, load_episode

HERE = Path(__file__).resolve().parent


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


@pytest.fixture
def xvfb_display():
    """A private Xvfb (800×600) on a free display number; stopped after the test."""
    read, write = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "800x600x24", "-nolisten", "tcp"],
                            pass_fds=(write,), stderr=subprocess.DEVNULL)
    os.close(write)
    try:
        ready, _, _ = select.select([read], [], [], 20)
        assert ready, "Xvfb did not start within 20 s"
        display = ":" + os.read(read, 16).decode().strip()
        yield display
    finally:
        os.close(read)
        proc.terminate()
        proc.wait(timeout=10)


async def test_ocr_clicks_a_tk_button_under_xvfb(xvfb_display):
    from PIL import ImageGrab

    env = {**os.environ, "DISPLAY": xvfb_display}
    app = subprocess.Popen([sys.executable, str(HERE / "tk_button.py")], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert app.stdout.readline().strip() == "ready"
        time.sleep(0.3)  # the first frame is mapped once the event loop idles
        shot = ImageGrab.grab(xdisplay=xvfb_display)
        buf = io.BytesIO()
        shot.save(buf, "PNG")
        obs = Observation(png=buf.getvalue(), width=shot.width, height=shot.height,
                          input_width=800, input_height=600, input_space="screen")
        box = await OcrLocator().locate(obs, "Launch")
        assert box is not None, "OCR did not find the Launch button"
        x, y = (round(v) for v in box.center)
        subprocess.run(["xdotool", "mousemove", str(x), str(y), "click", "1"], env=env, check=True, timeout=10)
        ready, _, _ = select.select([app.stdout], [], [], 10)
        assert ready, "the click did not reach a button"
        assert app.stdout.readline().strip() == "clicked Launch"
    finally:
        app.terminate()
        app.wait(timeout=10)
