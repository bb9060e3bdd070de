"""DesktopEnv.settle on a real Xvfb: the look right after execute shows what the action drew, however
the app draws it, and a screen the action left alone is not grabbed twice.

A small Tk program (another process, as a real app) draws a box white and recolours it on a click:
at once, over ten frames 15 ms apart, or once 20 ms after the click with nothing drawn before.
A settle that returned before the app finished drawing would observe a white or pale box.
"""

from __future__ import annotations

import asyncio
import subprocess
import time

import pytest
from desktop_helpers import TK_PYTHON, desktop_fixture

from pixelpilot.actions import Click, Move
from pixelpilot.envs.desktop import DesktopEnv
from pixelpilot.envs.xsettle import DamageWatch

SIZE = (640, 480)
BOX = (200, 150)  # a pixel inside the box, in screen pixels
RED = (255, 0, 0)

APP = """
import sys, tkinter as tk
root = tk.Tk(); root.title("settle app"); root.geometry("400x300+0+0")
c = tk.Canvas(root, width=400, height=300, bg="white", highlightthickness=0); c.pack()
box = c.create_rectangle(100, 100, 300, 200, fill="white", outline="")
def fade(i=0):  # white to red in ten frames
    c.itemconfig(box, fill="#ff%02x%02x" % ((9 - i) * 255 // 9, (9 - i) * 255 // 9))
    if i < 9: root.after(15, fade, i + 1)
def on_click(_):
    mode = sys.argv[1]
    if mode == "now": c.itemconfig(box, fill="red")
    elif mode == "fade": fade()
    else: root.after(20, lambda: c.itemconfig(box, fill="red"))
c.bind("<Button-1>", on_click)
root.mainloop()
"""


desktop = desktop_fixture(SIZE)


async def _start(desktop: DesktopEnv, mode: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([TK_PYTHON, "-c", APP, mode], env={"DISPLAY": str(desktop.display)})
    deadline = time.monotonic() + 15
    while (obs := await desktop.observe()).title != "settle app" or obs.image.getpixel(BOX) != (255, 255, 255):
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"the settle app never showed its white box (title {obs.title!r})")
        await asyncio.sleep(0.05)
    return proc


def _grid(x: int, y: int) -> dict[str, int]:
    return {"x": round(x * 1000 / SIZE[0]), "y": round(y * 1000 / SIZE[1])}


@pytest.mark.parametrize("mode", ["now", "fade", "later"])
async def test_the_look_after_a_click_shows_what_the_app_drew(desktop: DesktopEnv, mode: str) -> None:
    assert desktop._drawing is not None  # Xvfb has DAMAGE: the event-driven settle is the one tested
    proc = await _start(desktop, mode)
    try:
        outcome = await desktop.execute(Click(**_grid(*BOX)))
        assert outcome.ok, outcome.error
        obs = await desktop.observe()
        assert obs.image.getpixel(BOX) == RED, mode
    finally:
        proc.terminate()
        proc.wait(5)


async def test_an_action_that_draws_nothing_is_looked_at_once(desktop: DesktopEnv, monkeypatch) -> None:
    """The grab taken as the settle began is the look when nothing was drawn after the action."""
    proc = await _start(desktop, "now")
    try:
        grabs: list[float] = []
        real_grab = desktop.grab
        monkeypatch.setattr(desktop, "grab", lambda: grabs.append(time.monotonic()) or real_grab())
        monkeypatch.setattr(desktop, "settle_interval", 0.2)  # room for a loaded machine between the calls
        assert (await desktop.execute(Move(**_grid(20, 20)))).ok  # a move over the canvas draws nothing
        obs = await desktop.observe()
        assert len(grabs) == 1
        assert obs.image.getpixel(BOX) == (255, 255, 255)
        assert (await desktop.execute(Click(**_grid(*BOX)))).ok  # this one draws: the look is grabbed again
        assert (await desktop.observe()).image.getpixel(BOX) == RED
        assert len(grabs) == 3
    finally:
        proc.terminate()
        proc.wait(5)


async def test_the_damage_watch_sees_drawing_and_quiet(desktop: DesktopEnv) -> None:
    watch = DamageWatch(str(desktop.display))
    try:
        watch.mark()
        t0 = time.monotonic()
        assert watch.wait_quiet(0.05, 1.0) == (True, False)  # nothing drawn: quiet after 50 ms
        assert time.monotonic() - t0 >= 0.05
        proc = await _start(desktop, "now")  # a window appears
        try:
            watch.mark()
            await desktop.execute(Click(**_grid(*BOX)))
            assert watch.wait_quiet(0.05, 1.0) == (True, True)
            assert watch.wait_quiet(0.05, 1.0) == (True, False)  # read once: later waits see no drawing
        finally:
            proc.terminate()
            proc.wait(5)
    finally:
        watch.close()


def test_a_png_level_isal_does_not_have_is_refused_up_front() -> None:
    with pytest.raises(ValueError, match="png_compress_level must be 0-3"):
        DesktopEnv(virtual_display=SIZE, png_compress_level=6)
