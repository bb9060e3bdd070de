"""The desktop's accessibility tree (AT-SPI) on a real Xvfb, with Debian's galculator (GTK 3) and
mousepad (GTK 3): script steps find controls by role and name without OCR, ``expect`` reads the
programs' text, and a program without accessibility (Tk) finds nothing, quickly."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import pytest
from desktop_helpers import start_app

from pixelpilot.actions import Key, Observation, OpenApp, Task
from pixelpilot.agent import Agent, ScriptPolicy
from pixelpilot.agent.locators import OcrLocator, TextLine
from pixelpilot.envs import AccessibilityTree, Box, TextQueries
from pixelpilot.envs.desktop import DesktopEnv
from pixelpilot.trajectories import Recorder

SIZE = (1024, 768)


class CountingOcr(OcrLocator):
    """An OCR locator that reads a fixed table instead of the screen and counts its reads."""

    def __init__(self, boxes: dict[str, Box] | None = None) -> None:
        super().__init__()
        self.boxes = boxes or {}
        self.calls: list[str] = []

    async def lines(self, obs: Observation) -> list[TextLine]:
        self.calls.append(obs.sha256)
        return [TextLine(text, tuple(box), 1.0) for text, box in self.boxes.items()]


def _apps(home: Path) -> dict[str, list[str]]:
    # Each program keeps its settings (and mousepad its crash-recovery session) under the test's folder.
    env = [f"XDG_CONFIG_HOME={home}/config", f"XDG_DATA_HOME={home}/data", f"XDG_CACHE_HOME={home}/cache"]
    return {name: ["env", *env, name] for name in ("galculator", "mousepad")}


@pytest.fixture
async def desktop(tmp_path: Path):
    env = DesktopEnv(virtual_display=SIZE, apps=_apps(tmp_path))
    await env.reset()
    try:
        yield env
    finally:
        await env.aclose()


async def _open(desktop: DesktopEnv, name: str, title: str) -> None:
    assert (await desktop.execute(OpenApp(name=name))).ok
    deadline = time.monotonic() + 20
    while title not in await desktop.page_text():
        assert time.monotonic() < deadline, f"{name}'s window never showed in the accessibility tree"
        await asyncio.sleep(0.1)


def _clipboard(display: str) -> str:
    out = subprocess.run(
        ["xclip", "-selection", "clipboard", "-o"], env={**os.environ, "DISPLAY": display}, capture_output=True
    )
    return out.stdout.decode()


async def test_a_click_by_name_goes_through_the_tree_and_presses_the_button(desktop: DesktopEnv, tmp_path) -> None:
    ocr = CountingOcr()
    task = Task(
        instruction="type 7 on the calculator",
        steps=[
            {"action": "open_app", "name": "galculator"},
            {"expect": {"text": "galculator", "timeout": 20}},
            {"click": "7"},
        ],
    )
    episode = await Agent(desktop, ScriptPolicy(ocr=ocr), recorder=Recorder(tmp_path / "runs")).run(task)
    assert episode.status == "success", episode.message
    (click,) = [s for s in episode.steps if s.action["action"] == "click"]
    target = click.extra["target"]
    assert target["text"] == "7" and target["by"] != "ocr" and target["source"] == "a11y" and ocr.calls == []
    (button,) = await desktop.find_text("7", role="toggle button")
    assert list(button.box) == target["box"]
    x, y = click.pixel_action["x"], click.pixel_action["y"]
    left, top, width, height = button.box
    assert left <= x <= left + width and top <= y <= top + height
    # What the calculator shows, read back through its own Copy (ctrl+c), not through the tree.
    deadline = time.monotonic() + 10
    while _clipboard(str(desktop.display)).strip() != "7":
        assert time.monotonic() < deadline, f"the display shows {_clipboard(str(desktop.display))!r}, not 7"
        assert (await desktop.execute(Key(keys=["ctrl", "c"]))).ok
        await asyncio.sleep(0.2)


async def test_find_text_gives_role_box_and_exactness(desktop: DesktopEnv) -> None:
    assert isinstance(desktop, TextQueries) and isinstance(desktop, AccessibilityTree)
    await _open(desktop, "galculator", "galculator")
    (seven,) = await desktop.find_text("7", role="toggle button")
    assert seven.exact and seven.visible and seven.source == "a11y" and seven.text == "7"
    assert await desktop.find_text("7", role="textbox") == []  # the role filters (loosely: role_matches)
    assert await desktop.find_text("7", role="button") == [seven]  # a toggle button is a button
    (frame,) = [n for n in await desktop.accessible_nodes() if n.role == "frame"]
    assert frame.name == "galculator"
    fl, ft, fw, fh = frame.box
    cx, cy = seven.box.center
    assert fl < cx < fl + fw and ft < cy < ft + fh  # inside the calculator's window
    assert await desktop.locate_text("7") == seven.box
    # "Copy Display Value" contains "copy" but is not showing (its menu is closed): no match.
    assert await desktop.find_text("Copy Display Value") == []
    assert 'toggle button "7"' in await desktop.accessibility_text()


async def test_expect_reads_an_editors_text_and_fails_on_absent_text(desktop: DesktopEnv, tmp_path) -> None:
    steps = [
        {"action": "open_app", "name": "mousepad"},
        {"expect": {"text": "Mousepad", "timeout": 20}},
        {"click": {"x": 300, "y": 400}},  # into the document
        {"type": "pixelpilot was here"},
        {"expect": {"text": "pixelpilot was here"}},
        {"expect": {"text": "nowhere to be seen", "timeout": 0.5}},
    ]
    ocr = CountingOcr()
    episode = await Agent(desktop, ScriptPolicy(ocr=ocr), recorder=Recorder(tmp_path / "runs")).run(
        Task(instruction="write in the editor", steps=steps)
    )
    assert episode.status == "failure"
    assert episode.message == "expected text 'nowhere to be seen' is not on the page"
    assert [s.action["action"] for s in episode.steps][:3] == ["open_app", "click", "type"]  # got past the first expect
    (match,) = await desktop.find_text("was here")
    assert match.role == "text" and not match.exact and match.text == "was here"
    (doc,) = [n for n in await desktop.accessible_nodes() if n.role == "text"]
    assert doc.text == "pixelpilot was here"
    # The match's box is the words' own, inside the document's.
    dl, dt, dw, dh = doc.box
    ml, mt, mw, mh = match.box
    assert dl <= ml and dt <= mt and ml + mw <= dl + dw and mt + mh <= dt + dh and mw < dw / 2


async def test_a_program_without_accessibility_finds_nothing_quickly_and_ocr_takes_over(
    desktop: DesktopEnv, tmp_path
) -> None:
    proc, app = start_app(str(desktop.display), tmp_path / "state.json")  # Tk: no AT-SPI
    try:
        started = time.monotonic()
        assert await desktop.find_text("Press me") == []
        assert await desktop.locate_text("Press me") is None
        assert "Press me" not in await desktop.page_text()
        assert time.monotonic() - started < 1.0
        x, y, w, h = app.state()["boxes"]["button"]
        ocr = CountingOcr({"Press me": Box(x, y, w, h)})  # OCR's answer for this screen
        episode = await Agent(desktop, ScriptPolicy(ocr=ocr), recorder=Recorder(tmp_path / "runs")).run(
            Task(instruction="press", steps=[{"click": "Press me"}])
        )
        assert episode.status == "success", episode.message
        assert episode.steps[0].extra["target"]["by"] == "ocr"
        assert app.wait(lambda s: s["presses"] == 1)["presses"] == 1
    finally:
        proc.terminate()
        proc.wait(5)


async def test_the_session_ends_with_the_env_and_can_be_turned_off() -> None:
    env = DesktopEnv(virtual_display=SIZE)
    await env.reset()
    try:
        assert env.a11y is not None and env.a11y.address
        assert env.app_env()["AT_SPI_BUS_ADDRESS"] == env.a11y.address
        proc = env.a11y._proc
        assert proc is not None
        group, folder = proc.pid, env.a11y.env["XDG_RUNTIME_DIR"]
    finally:
        await env.aclose()
    deadline = time.monotonic() + 5
    while True:  # the daemon, the launcher, the accessibility bus and the registry are all gone
        try:
            os.killpg(group, 0)  # does the group still exist?
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "processes of the accessibility session outlived the env"
        await asyncio.sleep(0.05)
    assert not Path(folder).exists()

    off = DesktopEnv(virtual_display=SIZE, accessibility=False)
    await off.reset()
    try:
        assert off.a11y is None and "AT_SPI_BUS_ADDRESS" not in off.app_env()
        assert await off.find_text("anything") == [] and await off.page_text() == ""
    finally:
        await off.aclose()
