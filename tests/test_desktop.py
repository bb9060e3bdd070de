"""DesktopEnv on a real Xvfb, driving a real Tk program in another process."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from desktop_helpers import TkApp, desktop_fixture, start_app

from pixelpilot.actions import Click, Drag, Key, Move, OpenApp, Scroll, Type
from pixelpilot.actions.keys import CANONICAL, PHONE, canonical_keys
from pixelpilot.envs import EnvError
from pixelpilot.envs.desktop import DesktopEnv, _pixel_to_monitor, wheel_clicks
from pixelpilot.envs.xinput import x_keysyms

SIZE = (1024, 768)


desktop = desktop_fixture(SIZE)


@pytest.fixture
async def app(desktop: DesktopEnv, tmp_path: Path):
    proc, handle = start_app(str(desktop.display), tmp_path / "state.json")
    try:
        yield handle
    finally:
        proc.terminate()
        proc.wait(5)


async def test_observation_has_screen_pixels_and_the_window_title(desktop: DesktopEnv, app: TkApp) -> None:
    obs = await desktop.observe()
    assert (obs.width, obs.height) == SIZE == (obs.input_width, obs.input_height)
    assert obs.input_space == "screen"
    assert obs.title == "pixelpilot test app" and obs.app == "Tk"  # WM_NAME and WM_CLASS
    assert obs.image.size == SIZE  # the lazily encoded PNG decodes to the screen
    x, y, w, h = app.state()["boxes"]["board"]
    assert obs.image.getpixel((x + w // 2, y + 5)) == (255, 255, 255)  # the drag board is white


async def _title_becomes(desktop: DesktopEnv, title: str | None) -> None:
    deadline = time.monotonic() + 5
    while (seen := (await desktop.observe()).title) != title:
        assert time.monotonic() < deadline, f"the title stayed {seen!r}, expected {title!r}"
        await asyncio.sleep(0.05)


async def test_title_follows_windows_that_come_and_go_without_actions(desktop: DesktopEnv, tmp_path: Path) -> None:
    await _title_becomes(desktop, None)  # an empty screen (earlier tests' windows are gone)
    proc, _ = start_app(str(desktop.display), tmp_path / "state.json")
    try:
        await _title_becomes(desktop, "pixelpilot test app")
    finally:
        proc.terminate()
        proc.wait(5)
    await _title_becomes(desktop, None)


async def test_click_fires_the_button_callback(desktop: DesktopEnv, app: TkApp) -> None:
    before = await desktop.observe()
    outcome = await desktop.execute(Click(**app.grid_point("button", SIZE)))
    assert outcome.ok, outcome.error
    assert app.wait(lambda s: s["presses"] == 1)["presses"] == 1
    after = await desktop.observe()
    assert app.crop(after, "status") != app.crop(before, "status")  # "pressed 1" on yellow


async def test_the_look_right_after_an_action_is_the_settles_last_grab(
    desktop: DesktopEnv, app: TkApp, monkeypatch
) -> None:
    """No second grab of a screen that was just seen to be still; a look taken later grabs anew."""
    grabs: list[float] = []
    real_grab = desktop.grab
    monkeypatch.setattr(desktop, "grab", lambda: grabs.append(time.monotonic()) or real_grab())
    monkeypatch.setattr(desktop, "settle_interval", 0.2)  # room for a loaded machine between the two calls
    assert (await desktop.execute(Click(**app.grid_point("button", SIZE)))).ok
    settled = len(grabs)
    obs = await desktop.observe()
    assert len(grabs) == settled >= 2
    assert obs.image.size == SIZE
    assert (await desktop.execute(Click(**app.grid_point("button", SIZE)))).ok
    settled = len(grabs)
    await asyncio.sleep(0.25)  # older than settle_interval: the screen may have moved since
    await desktop.observe()
    assert len(grabs) == settled + 1


async def test_types_ascii_and_non_ascii_text(desktop: DesktopEnv, app: TkApp) -> None:
    before = await desktop.observe()
    assert (await desktop.execute(Click(**app.grid_point("entry", SIZE)))).ok
    assert (await desktop.execute(Type(text="Hello, World! (ok) ~#1"))).ok
    app.wait(lambda s: s["text"] == "Hello, World! (ok) ~#1")
    assert (await desktop.execute(Type(text=" Grüße, café ✓ 日本語"))).ok
    state = app.wait(lambda s: s["text"].endswith("語"))
    assert state["text"] == "Hello, World! (ok) ~#1 Grüße, café ✓ 日本語"
    after = await desktop.observe()
    assert app.crop(after, "entry") != app.crop(before, "entry")


async def test_drag_moves_the_square(desktop: DesktopEnv, app: TkApp) -> None:
    board = app.state()["boxes"]["board"]
    start = app.grid_point("board", SIZE, 50 / board[2], 50 / board[3])  # inside the square at (20..80)
    end = app.grid_point("board", SIZE, 200 / board[2], 250 / board[3])
    before = await desktop.observe()
    assert (await desktop.execute(Drag(x=start["x"], y=start["y"], x2=end["x"], y2=end["y"]))).ok
    state = app.wait(lambda s: s["square"] != [20, 20])
    # the square moved by the drag's length, give or take the grid's rounding
    assert abs(state["square"][0] - 170) <= 3 and abs(state["square"][1] - 220) <= 3
    after = await desktop.observe()
    assert app.crop(after, "board") != app.crop(before, "board")


async def test_scroll_moves_the_view_down_and_right(desktop: DesktopEnv, app: TkApp) -> None:
    before = await desktop.observe()
    outcome = await desktop.execute(Scroll(**app.grid_point("scroller", SIZE), dy=200))
    assert outcome.ok
    assert outcome.pixel_action["dy"] == round(200 * SIZE[1] / 1000)  # grid units of one screen
    state = app.wait(lambda s: s["yview"] > 0)
    assert state["xview"] == 0
    assert (await desktop.execute(Scroll(**app.grid_point("scroller", SIZE), dx=100))).ok
    app.wait(lambda s: s["xview"] > 0)
    assert (await desktop.execute(Scroll(**app.grid_point("scroller", SIZE), dy=-1000))).ok
    app.wait(lambda s: s["yview"] == 0)  # scrolled back up to the top
    after = await desktop.observe()
    assert app.crop(after, "scroller") != app.crop(before, "scroller")


async def test_key_combo_reaches_the_app(desktop: DesktopEnv, app: TkApp) -> None:
    before = await desktop.observe()
    await desktop.execute(Click(**app.grid_point("entry", SIZE)))
    assert (await desktop.execute(Key(keys=["Ctrl", "Shift", "K"]))).ok
    app.wait(lambda s: s["combos"] == 1)
    after = await desktop.observe()
    assert app.crop(after, "status") != app.crop(before, "status")


async def test_single_keys_type_their_character_with_shift_where_needed(desktop: DesktopEnv, app: TkApp) -> None:
    assert (await desktop.execute(Click(**app.grid_point("entry", SIZE)))).ok
    for keys in (["A"], ["!"], ["b"], ["BackSpace"], ["space"], ["Z"]):
        assert (await desktop.execute(Key(keys=keys))).ok
    assert app.wait(lambda s: s["text"] == "A! Z")["text"] == "A! Z"


async def test_the_failsafe_stops_an_action_while_the_pointer_is_in_a_corner() -> None:
    from Xlib.display import Display

    env = DesktopEnv(virtual_display=(640, 480), failsafe=True)  # beside the module's env, on its own display
    await env.reset()
    person = Display(str(env.display))  # someone else at that display
    try:
        root = person.screen().root
        root.warp_pointer(639, 0)
        person.sync()
        with pytest.raises(EnvError, match="stopped by the fail-safe"):
            await env.execute(Click(x=500, y=500))
        pointer = root.query_pointer()
        assert (pointer.root_x, pointer.root_y) == (639, 0)  # the click never moved it
        root.warp_pointer(10, 10)
        person.sync()
        assert (await env.execute(Click(x=500, y=500))).ok
        pointer = root.query_pointer()
        assert (pointer.root_x, pointer.root_y) == (320, 240)
    finally:
        person.close()
        await env.aclose()


async def test_hidpi_capture_larger_than_the_input_space(desktop: DesktopEnv, monkeypatch) -> None:
    # mss on a Retina-style screen returns more pixels than the input coordinates span
    from mss.screenshot import ScreenShot

    w, h = SIZE[0] * 2, SIZE[1] * 2
    monkeypatch.setattr(desktop, "grab", lambda: ScreenShot.from_size(bytearray(w * h * 4), w, h))
    obs = await desktop.observe()
    assert (obs.width, obs.height) == (w, h) and (obs.input_width, obs.input_height) == SIZE
    assert obs.image.size == (w, h)
    outcome = await desktop.execute(Move(x=500, y=500))
    assert outcome.pixel_action == {"action": "move", "x": 512, "y": 384}  # input space, not capture


async def test_bad_input_is_an_error_outcome(desktop: DesktopEnv) -> None:
    with pytest.raises(ValueError, match="unknown key 'nosuchkey'"):  # no such name anywhere: refused when parsed
        Key(keys=["ctrl", "nosuchkey"])
    outcome = await desktop.execute(Key(keys=["volume_up"]))  # a phone's key: a desktop has none
    assert not outcome.ok and "the desktop has no 'volume_up' key" in outcome.error
    outcome = await desktop.execute(OpenApp(name="no such app"))
    assert not outcome.ok and "no app called 'no such app'" in outcome.error


async def test_no_display_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(EnvError, match="virtual_display"):
        await DesktopEnv().reset()


def test_scroll_amounts_become_wheel_clicks() -> None:
    assert wheel_clicks(0, 50) == 0
    assert wheel_clicks(10, 50) == 1  # any scroll moves at least one click
    assert wheel_clicks(-10, 50) == -1
    assert wheel_clicks(1080, 50) == 22  # one 1080-px screen


def test_points_are_offset_to_the_monitor_and_kept_off_failsafe_corners() -> None:
    second = {"left": 1920, "top": 0, "width": 1920, "height": 1080}
    assert _pixel_to_monitor(960, 540, second, failsafe=False) == (2880, 540)
    assert _pixel_to_monitor(0, 0, second, failsafe=False) == (1920, 0)
    assert _pixel_to_monitor(0, 0, second, failsafe=True) == (1921, 1)
    assert _pixel_to_monitor(1919, 1079, second, failsafe=True) == (3838, 1078)
    assert _pixel_to_monitor(0, 500, second, failsafe=True) == (1920, 500)  # edges are fine


def test_canonical_key_names_map_to_x_keysyms() -> None:
    from Xlib.XK import string_to_keysym as sym

    def keysyms(*names: str) -> list[int]:
        return x_keysyms(canonical_keys(names))  # as a Key action holds them

    assert keysyms("Ctrl", "Shift", "T") == [sym("Control_L"), sym("Shift_L"), sym("t")]  # a combo: the t key
    assert keysyms("A") == [sym("A")]  # alone: shift+a
    assert keysyms("Return") == keysyms("enter") == [sym("Return")]
    assert keysyms("cmd", "PageDown", "pgup", "ArrowLeft", "esc", "F12", "del") == [
        sym(n) for n in ("Super_L", "Page_Down", "Page_Up", "Left", "Escape", "F12", "Delete")
    ]
    assert keysyms("option", "tab", "space", "1", "/") == [sym(n) for n in ("Alt_L", "Tab", "space", "1", "slash")]
    assert keysyms("ctrl_right", "num5", "f24", "menu") == [sym(n) for n in ("Control_R", "KP_5", "F24", "Menu")]
    with pytest.raises(ValueError, match="the desktop has no 'volume_up' key"):
        x_keysyms(["ctrl", "volume_up"])
    for name in CANONICAL - set(PHONE):  # every key a keyboard has is mapped
        assert x_keysyms([name]) and x_keysyms([name])[0] != 0, name
