"""A real desktop session: openbox in the private Xvfb, windows listed, focused, moved and closed
through it, the clipboard read and written, the task-file steps for them, and `run --screen/--app`.

Real programs on a real Xvfb: Debian's openbox, xterm (each one's typing goes to a file through
`cat`, so the test reads what the focused app received), xclip, and the Tk test app.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from desktop_helpers import TK_PYTHON, alive, desktop_fixture, our_children, start_app
from typer.testing import CliRunner

from pixelpilot import load_episode
from pixelpilot.actions import Click, Key, SetClipboard, Task, Type, Window, ground
from pixelpilot.agent import Agent, Gate, ScriptPolicy
from pixelpilot.agent.script import ScriptError, compile_step
from pixelpilot.cli import app as cli
from pixelpilot.envs import Box, EnvError
from pixelpilot.envs.desktop import DesktopEnv
from pixelpilot.trajectories import Recorder

SIZE = (1024, 768)


desktop = desktop_fixture(SIZE)


class Term:
    """An xterm whose typed lines land in a file."""

    def __init__(self, display: str, title: str, out: Path) -> None:
        self.title, self.out = title, out
        out.write_text("")
        self.proc = subprocess.Popen(
            ["xterm", "-fa", "Monospace", "-T", title, "-e", "sh", "-c", f"stty -echo; cat > '{out}'"],
            env={**os.environ, "DISPLAY": display},
        )

    def received(self) -> str:
        return self.out.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(5)


@pytest.fixture
async def terms(desktop: DesktopEnv, tmp_path: Path):
    started: list[Term] = []

    async def start(title: str) -> Term:
        term = Term(str(desktop.display), title, tmp_path / f"{title.replace(' ', '_')}.txt")
        started.append(term)
        assert await desktop.wait_for_window(title, 15) is not None, f"{title} never showed"
        return term

    try:
        yield start
    finally:
        for term in started:
            term.stop()


def _until(check, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the expected state never came"
        time.sleep(0.05)


def _client_geometry(display: str, window: int) -> tuple[int, int, int, int]:
    """The window's client area as X itself reports it (xwininfo), not through pixelpilot."""
    out = subprocess.run(
        ["xwininfo", "-display", display, "-id", str(window)], capture_output=True, text=True, check=True
    ).stdout
    field = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines()) if v}
    return (
        int(field["Absolute upper-left X"]),
        int(field["Absolute upper-left Y"]),
        int(field["Width"]),
        int(field["Height"]),
    )


# --- the window manager -----------------------------------------------------------------------------


async def test_a_window_gets_a_frame_and_the_focus_and_is_listed_with_its_title(desktop: DesktopEnv, terms) -> None:
    assert desktop.wm is not None and alive(desktop.wm.pid)
    await terms("framed term")
    window = await desktop.find_window("framed term")
    assert window is not None
    assert window.title == "framed term" and window.app == "XTerm" and window.focused  # click-to-focus gives it
    x, y, w, h = _client_geometry(str(desktop.display), window.id)
    left, top, width, height = window.box
    # The frame is bigger than the client: a title bar above it (openbox's decorations) and borders.
    assert top + 15 <= y and left < x and width > w and height >= h + 15
    obs = await desktop.observe()
    assert obs.title == "framed term" and obs.app == "XTerm"  # the active window, without the pointer over it


async def test_the_window_manager_stops_with_the_display_and_can_be_left_out() -> None:
    env = DesktopEnv(virtual_display=(640, 480))
    try:
        await env.reset()
        assert env.wm is not None and env.xvfb is not None
        wm_pid, xvfb_pid = env.wm.pid, env.xvfb.pid
    finally:
        await env.aclose()
    assert wm_pid and not alive(wm_pid) and xvfb_pid and not alive(xvfb_pid)

    bare = DesktopEnv(virtual_display=(640, 480), window_manager=None)
    try:
        await bare.reset()
        assert bare.wm is None
        with pytest.raises(EnvError, match="window actions need a window manager"):
            await bare.list_windows()
        outcome = await bare.execute(Window(op="focus", window="anything"))
        assert not outcome.ok and "need a window manager" in outcome.error  # a step's error, not a broken env
    finally:
        await bare.aclose()
    with pytest.raises(ValueError, match="unknown window_manager 'fvwm'; known: openbox"):
        DesktopEnv(virtual_display=(640, 480), window_manager="fvwm")


async def test_no_menu_opens_on_the_desktop_background(desktop: DesktopEnv) -> None:
    # openbox's own configuration opens its root menu on a right click; pixelpilot's has none.
    deadline = time.monotonic() + 5
    while await desktop.list_windows():  # earlier tests' windows are going
        assert time.monotonic() < deadline, await desktop.list_windows()
        await asyncio.sleep(0.05)
    before = (await desktop.observe()).image.tobytes()
    for button in ("right", "middle"):
        assert (await desktop.execute(Click(x=500, y=500, button=button))).ok
    await asyncio.sleep(0.3)
    assert (await desktop.observe()).image.tobytes() == before


DIALOG = """
import tkinter as tk
root = tk.Tk()
root.title("parent")
root.geometry("400x300+560+380")
def dialog():
    top = tk.Toplevel(root)
    top.title("dialog")
    top.geometry("200x100")
    top.transient(root)
root.after(300, dialog)
root.mainloop()
"""


async def test_a_dialog_opens_over_its_parent(desktop: DesktopEnv) -> None:
    proc = subprocess.Popen([TK_PYTHON, "-c", DIALOG], env={**os.environ, "DISPLAY": str(desktop.display)})
    try:
        dialog = await desktop.wait_for_window("dialog", 15)
        parent = await desktop.find_window("parent")
        assert dialog is not None and parent is not None and dialog.focused
        (px, py), (dx, dy) = parent.box.center, dialog.box.center
        assert abs(px - dx) <= 2 and abs(py - dy) <= 30  # centred on it, not at (0, 0)
    finally:
        proc.terminate()
        proc.wait(5)


async def test_an_app_to_open_at_the_start_that_fails_is_a_clear_error_and_nothing_is_left(tmp_path) -> None:
    running = set(our_children("Xvfb")), set(our_children("openbox"))  # the module's desktop, if it started
    env = DesktopEnv(virtual_display=(640, 480), apps={"broken": ["sh", "-c", "exit 3"]}, open_apps=("broken",))
    with pytest.raises(EnvError, match=r"open_apps: 'broken' \(sh -c 'exit 3'\) opened no window .*status 3"):
        await env.reset()
    assert env.wm is None and env.xvfb is None
    assert (set(our_children("Xvfb")), set(our_children("openbox"))) == running
    with pytest.raises(EnvError, match="the desktop is not started"):
        await env.read_clipboard()


# --- window actions ----------------------------------------------------------------------------------


async def test_focus_sends_the_keystrokes_to_the_focused_window(desktop: DesktopEnv, terms) -> None:
    first, second = await terms("term one"), await terms("term two")
    for term, other in ((first, second), (second, first)):
        before = other.received()
        assert (await desktop.execute(Window(op="focus", window=term.title))).ok
        assert (await desktop.find_window(term.title)).focused  # type: ignore[union-attr]
        assert (await desktop.execute(Type(text=f"to {term.title}"))).ok
        assert (await desktop.execute(Key(keys=["enter"]))).ok
        _until(lambda term=term: f"to {term.title}\n" in term.received())
        assert other.received() == before


async def test_move_and_resize_puts_the_frame_where_the_grid_says(desktop: DesktopEnv, tmp_path: Path) -> None:
    proc, app = start_app(str(desktop.display), tmp_path / "state.json")  # Tk: no size increments
    try:
        action = Window(op="move", window="pixelpilot test app", box=(100, 200, 700, 900))
        outcome = await desktop.execute(action)
        assert outcome.ok, outcome.error
        assert outcome.pixel_action["box"] == [102, 154, 717, 691] == ground(action, *SIZE)["box"]
        window = await desktop.find_window("pixelpilot test app")
        assert window is not None and window.box == Box(102, 154, 615, 537)
        x, y, w, h = _client_geometry(str(desktop.display), window.id)
        left, top, width, height = window.box
        assert left < x < left + 10 and top < y < top + 40  # the client sits inside the frame's box …
        assert x + w <= left + width and y + h <= top + height and w > width - 10  # … and fills it
        await asyncio.sleep(0.2)
        pressed = await desktop.execute(Click(x=round((x + 120) * 1000 / SIZE[0]), y=round((y + 50) * 1000 / SIZE[1])))
        assert pressed.ok and app.wait(lambda s: s["presses"] == 1)  # the button moved with its window
    finally:
        proc.terminate()
        proc.wait(5)


async def test_close_closes_the_window_and_its_program_ends(desktop: DesktopEnv, terms) -> None:
    term = await terms("closing term")
    outcome = await desktop.execute(Window(op="close", window="closing term"))
    assert outcome.ok, outcome.error
    assert term.proc.wait(5) is not None
    assert await desktop.find_window("closing term") is None
    missing = await desktop.execute(Window(op="close", window="closing term"))
    assert not missing.ok and "no window called 'closing term'" in missing.error


# --- the clipboard ------------------------------------------------------------------------------------


async def test_clipboard_write_read_and_paste_in_an_app_and_copy_from_it(desktop: DesktopEnv, tmp_path: Path) -> None:
    assert (await desktop.execute(SetClipboard(text="héllo ✓ from the clipboard"))).ok
    assert await desktop.read_clipboard() == "héllo ✓ from the clipboard"
    proc, app = start_app(str(desktop.display), tmp_path / "state.json")
    try:
        assert (await desktop.execute(Click(**app.grid_point("entry", SIZE)))).ok
        assert (await desktop.execute(Key(keys=["ctrl", "v"]))).ok
        # (Tk reads the clipboard inside the key press and the app saves its state on key releases,
        # so the next keys show what the paste put in the entry.)
        assert (await desktop.execute(Type(text=" and more"))).ok
        assert app.wait(lambda s: s["text"] == "héllo ✓ from the clipboard and more")
        # The other way: the app copies (Tk: select all with ctrl+/, copy with ctrl+c).
        assert (await desktop.execute(Key(keys=["ctrl", "/"]))).ok
        assert (await desktop.execute(Key(keys=["ctrl", "c"]))).ok
        deadline = time.monotonic() + 5
        while (held := await desktop.read_clipboard()) != "héllo ✓ from the clipboard and more":
            assert time.monotonic() < deadline, held
            await asyncio.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(5)


# --- task-file steps ----------------------------------------------------------------------------------


async def test_window_and_clipboard_steps_act_check_and_are_recorded(desktop: DesktopEnv, terms, tmp_path) -> None:
    term = await terms("scripted term")
    await terms("other term")  # the newest window has the focus: the script must focus its own
    steps = [
        {"window": {"expect": "scripted", "timeout": 5}},
        {"window": {"focus": "Scripted Term"}},
        {"type": "typed after focus"},
        {"press": "enter"},
        {"window": {"move": "scripted term", "to": {"x1": 0, "y1": 0, "x2": 500, "y2": 500}}},
        {"clipboard": {"write": "${CLIP}"}},
        {"clipboard": {"expect": "clip ✓"}},
        {"window": {"close": "scripted term"}},
        {"answer": "done"},
    ]
    task = Task(instruction="windows", env="desktop", steps=steps, vars={"CLIP": "clip ✓"})
    episode = await Agent(desktop, ScriptPolicy(), recorder=Recorder(tmp_path / "runs")).run(task)
    assert episode.status == "success", episode.message
    _until(lambda: "typed after focus\n" in term.received())
    assert term.proc.wait(5) is not None  # closed
    assert await desktop.read_clipboard() == "clip ✓"
    recorded = [s.action for s in load_episode(episode.path).steps]
    assert recorded[0] == {"action": "window", "op": "focus", "window": "Scripted Term", "box": None}
    assert recorded[3]["box"] == [0, 0, 500, 500]
    assert recorded[4] == {"action": "set_clipboard", "text": "clip ✓"}
    assert [a["action"] for a in recorded] == ["window", "type", "key", "window", "set_clipboard", "window", "answer"]
    moved = load_episode(episode.path).steps[3].pixel_action
    assert moved["box"] == [0, 0, 512, 384]


async def test_closing_a_window_waits_for_approval_like_the_closing_keys(desktop: DesktopEnv, terms, tmp_path) -> None:
    term = await terms("guarded term")
    task = Task(instruction="close", env="desktop", steps=[{"window": {"close": "guarded term"}}])
    refuse = Gate(approver=lambda request: False)
    episode = await Agent(desktop, ScriptPolicy(), recorder=Recorder(tmp_path / "runs"), gate=refuse).run(task)
    gate = load_episode(episode.path).steps[0].extra["gate"]
    assert gate["rule"] == "closing_keys" and gate["verdict"] == "refused"
    assert "close the window 'guarded term'" in gate["reason"]
    assert term.proc.poll() is None and await desktop.find_window("guarded term") is not None  # still open


async def test_a_window_expect_that_never_shows_fails_the_script(desktop: DesktopEnv, tmp_path) -> None:
    task = Task(
        instruction="missing",
        env="desktop",
        steps=[{"window": {"expect": "no such window", "timeout": 0.3}}, {"answer": "done"}],
    )
    episode = await Agent(desktop, ScriptPolicy(), recorder=Recorder(tmp_path / "runs")).run(task)
    assert episode.status == "failure" and "no window called 'no such window' showed within 0.3 s" in (
        episode.message or ""
    )


@pytest.mark.parametrize(
    ("step", "error"),
    [
        ({"window": "Mousepad"}, "window needs one of focus, move, close, expect"),
        ({"window": {"focus": "a", "close": "b"}}, "window needs one of focus, move, close, expect"),
        ({"window": {"focus": ""}}, "window focus needs a window's title or app"),
        ({"window": {"move": "a"}}, "window move needs where: `to: {x1: 0, y1: 0, x2: 500, y2: 1000}`"),
        ({"window": {"move": "a", "to": {"x1": 0, "y1": 0, "x2": 0, "y2": 9}}}, "must have x1 < x2 and y1 < y2"),
        ({"window": {"move": "a", "to": {"x1": 0, "y1": 0, "x2": 1001, "y2": 9}}}, "less than or equal to 1000"),
        ({"window": {"close": "a", "to": {}}}, "window close: unknown key 'to'; it takes close"),
        ({"window": {"expect": "a", "timeout": 99}}, "timeout is seconds from 0 to 60"),
        ({"clipboard": {"read": "a"}}, "clipboard needs `clipboard: {write: text}` or `clipboard: {expect: text}`"),
        ({"clipboard": {"expect": ""}}, "clipboard needs"),
        ({"clipboard": {"write": "a", "timeout": 1}}, "clipboard write: unknown key 'timeout'"),
    ],
)
def test_malformed_window_and_clipboard_steps_say_how_to_write_them(step, error) -> None:
    with pytest.raises(ScriptError) as e:
        compile_step(step)
    assert error in str(e.value)


def test_the_short_clipboard_form_is_a_write() -> None:
    assert compile_step({"clipboard": "copy me"}).value == {"action": "set_clipboard", "text": "copy me"}


# --- run --screen / --app -----------------------------------------------------------------------------


def test_run_with_screen_and_app_opens_the_app_on_a_screen_of_that_size(tmp_path: Path) -> None:
    task = tmp_path / "desk.yaml"
    task.write_text("instruction: look\nenv: desktop\nsteps:\n  - window: {expect: cli term}\n  - answer: done\n")
    notes = tmp_path / "notes.txt"
    result = CliRunner().invoke(
        cli,
        [
            "run",
            str(task),
            "--screen",
            "1024x768",
            "--app",
            f"term=xterm -fa Monospace -T 'cli term' -e sh -c 'echo opened > {notes}; sleep 60'",
            "--out",
            str(tmp_path / "runs"),
        ],
    )
    assert result.exit_code == 0, result.output
    episode = load_episode(result.output.strip().splitlines()[-1].removeprefix("episode: "))
    first = episode.steps[0]
    assert first.observation["width"] == 1024 and first.observation["height"] == 768
    assert first.observation["title"] == "cli term"  # open, with the focus, before the first step
    assert notes.read_text() == "opened\n"  # the command's arguments reached it, split as a shell would


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--screen", "big"], "--screen 'big': write WIDTHxHEIGHT, each 64 to 8192 pixels, e.g. --screen 1600x900"),
        (["--screen", "10x10"], "--screen '10x10': write WIDTHxHEIGHT"),
        (["--app", "mousepad"], "--app 'mousepad': write NAME=COMMAND, e.g. --app 'editor=mousepad /tmp/notes.txt'"),
        (["--app", "ed=no-such-program-pp"], "there is no program 'no-such-program-pp'"),
        (["--app", "ed=xterm -T 'open"], '--app "ed=xterm -T \'open": No closing quotation'),
        (["--env", "browser", "--screen", "800x600"], "--screen and --app are for --env desktop, not browser"),
        (["--headed", "--screen", "800x600"], "with --headed the desktop is $DISPLAY's own"),
    ],
)
def test_bad_screen_and_app_are_clear_errors(tmp_path: Path, args: list[str], error: str) -> None:
    task = tmp_path / "desk.yaml"
    task.write_text("instruction: look\nenv: desktop\nsteps:\n  - answer: done\n")
    result = CliRunner().invoke(cli, ["run", str(task), "--out", str(tmp_path / "runs"), *args])
    assert result.exit_code == 2 and error in result.output, result.output
    assert not (tmp_path / "runs").exists()  # nothing started


def test_collect_takes_the_screen_size_too(tmp_path: Path) -> None:
    tasks = tmp_path / "desk.jsonl"
    tasks.write_text('{"id": "d", "instruction": "look", "env": "desktop", "steps": [{"answer": "done"}]}\n')
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["collect", str(tasks), "--out", str(out), "--screen", "800x600", "--no-progress"])
    assert result.exit_code == 0, result.output
    episode = next(out.rglob("episode.json")).parent
    assert load_episode(episode).steps[0].observation["width"] == 800


# --- as MCP tools -------------------------------------------------------------------------------------


async def test_mcp_on_a_desktop_lists_focuses_moves_and_closes_windows_and_uses_the_clipboard(tmp_path: Path) -> None:
    pytest.importorskip("mcp", reason="the MCP SDK (the 'tools' extra) is not installed")
    from mcp import Client, StdioServerParameters

    out, typed = tmp_path / "runs", tmp_path / "typed.txt"
    command = f"xterm -fa Monospace -T 'mcp term' -e sh -c 'stty -echo; cat > {typed}'"
    args = ["-m", "pixelpilot.cli", "mcp", "--env", "desktop", "--screen", "800x600", "--app", f"term={command}"]
    params = StdioServerParameters(
        command=sys.executable, args=[*args, "--out", str(out), "--approve", "yes"], env=dict(os.environ)
    )

    def data(result):
        assert not result.is_error, result.content[0].text
        return result.structured_content

    async with Client(params, read_timeout_seconds=120) as client:
        (term,) = data(await client.call_tool("list_windows", {}))["windows"]
        assert term["title"] == "mcp term" and term["app"] == "XTerm" and term["focused"]
        data(await client.call_tool("window", {"op": "move", "window": "mcp", "box": [0, 0, 500, 500]}))
        (moved,) = data(await client.call_tool("list_windows", {}))["windows"]
        assert moved["box"][:2] == [0, 0] and 480 <= moved["box"][2] <= 500 and 480 <= moved["box"][3] <= 500
        data(await client.call_tool("write_clipboard", {"text": "from mcp"}))
        assert data(await client.call_tool("read_clipboard", {}))["text"] == "from mcp"
        data(await client.call_tool("window", {"op": "focus", "window": "mcp term"}))
        data(await client.call_tool("type", {"text": "typed via mcp"}))
        data(await client.call_tool("press", {"keys": "Enter"}))
        _until(lambda: typed.read_text() == "typed via mcp\n")
        bad = await client.call_tool("window", {"op": "move", "window": "mcp"})
        assert bad.is_error and "a move needs box" in bad.content[0].text
        data(await client.call_tool("window", {"op": "close", "window": "mcp term"}))
        assert data(await client.call_tool("list_windows", {}))["windows"] == []
        ended = data(await client.call_tool("end_episode", {}))
    steps = load_episode(out / ended["episode"]).steps
    acted = ["window", "set_clipboard", "window", "type", "key", "window", "terminate"]
    assert [s.action["action"] for s in steps] == acted
