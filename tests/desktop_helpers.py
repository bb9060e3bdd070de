"""The test side of desktop_app.py: start the Tk program on a display and read the state it reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from pixelpilot.actions import Grid
from pixelpilot.envs.desktop import DesktopEnv

APP = Path(__file__).with_name("desktop_app.py")
# The app is another program, run by Debian's Python (python3-tk), as a user's app would be.
TK_PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def our_children(name: str) -> list[int]:
    """Live child processes of this test process with this command name."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm = text[text.index("(") + 1 : text.rindex(")")]
        state, ppid = text.rsplit(")", 1)[1].split()[:2]
        if comm == name and int(ppid) == os.getpid() and state != "Z":
            pids.append(int(stat.parent.name))
    return pids


class TkApp:
    """The test app's process and the state it reports."""

    def __init__(self, state_path: Path) -> None:
        self.path = state_path

    def state(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def wait(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            s = self.state()
            if s and pred(s):
                return s
            if time.monotonic() > deadline:
                raise AssertionError(f"the app never reached the expected state; last state: {s}")
            time.sleep(0.03)

    def grid_point(self, name: str, screen: tuple[int, int], dx: float = 0.5, dy: float = 0.5) -> dict[str, int]:
        """A point inside a widget (fractions of its box), on the 0..1000 grid of the screen."""
        x, y, w, h = self.state()["boxes"][name]
        gx, gy = Grid().point_to_grid(x + w * dx, y + h * dy, *screen)
        return {"x": gx, "y": gy}

    def crop(self, obs: Any, name: str) -> bytes:
        x, y, w, h = self.state()["boxes"][name]
        return obs.image.crop((x, y, x + w, y + h)).tobytes()


def start_app(display: str, state_path: Path) -> tuple[subprocess.Popen[bytes], TkApp]:
    proc = subprocess.Popen([TK_PYTHON, str(APP), str(state_path)], env={**os.environ, "DISPLAY": display})
    app = TkApp(state_path)
    try:
        app.wait(lambda s: s.get("ready"), timeout=15)
    except AssertionError:
        proc.kill()
        raise
    return proc, app


def desktop_fixture(size: tuple[int, int]) -> Callable[[], AsyncIterator[DesktopEnv]]:
    """A module-scoped fixture named ``desktop`` (assign it to that name): a DesktopEnv on a private
    Xvfb of ``size``, closed after the module's tests."""

    @pytest.fixture(scope="module")
    async def desktop() -> AsyncIterator[DesktopEnv]:
        env = DesktopEnv(virtual_display=size)
        await env.reset()
        try:
            yield env
        finally:
            await env.aclose()

    return desktop
