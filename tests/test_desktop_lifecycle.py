"""DesktopEnv's own processes: Xvfb and the apps it starts are always stopped; envs on several
displays run at once in one process.

Each test here starts its own Xvfb.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from desktop_helpers import APP, TK_PYTHON, TkApp, alive, our_children, start_app

from pixelpilot import load_episode
from pixelpilot.actions import Click, OpenApp, Type
from pixelpilot.envs import EnvError
from pixelpilot.envs.desktop import DesktopEnv


async def test_open_app_from_a_desktop_entry_and_close_stops_everything(tmp_path: Path, monkeypatch) -> None:
    apps = tmp_path / "share" / "applications"
    apps.mkdir(parents=True)
    state = tmp_path / "state.json"
    (apps / "pp-test.desktop").write_text(
        f"[Desktop Entry]\nType=Application\nName=PP Test App\nExec={TK_PYTHON} {APP} {state} %U\n"
    )
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    env = DesktopEnv(virtual_display=(800, 600))
    try:
        await env.reset()
        assert env.xvfb is not None
        xvfb_pid = env.xvfb.pid
        assert (await env.execute(OpenApp(name="pp test app"))).ok
        TkApp(state).wait(lambda s: s.get("ready"), timeout=15)
        app_pid = env._children[0].pid
        obs = await env.observe()
        assert obs.title == "pixelpilot test app"
    finally:
        await env.aclose()
    assert not alive(app_pid), "the app started by open_app outlived the env"
    assert not alive(xvfb_pid), "Xvfb outlived the env"
    assert our_children("Xvfb") == []


async def test_xvfb_is_stopped_when_start_fails() -> None:
    env = DesktopEnv(virtual_display=(640, 480), monitor=3)
    with pytest.raises(EnvError, match="monitor 3 does not exist"):
        await env.reset()
    assert env.xvfb is None
    assert our_children("Xvfb") == []


def test_cli_runs_a_task_with_env_desktop_on_a_private_display(tmp_path: Path) -> None:
    task = tmp_path / "desk.yaml"
    task.write_text(
        "instruction: Click the middle of the screen.\nenv: desktop\n"
        "steps:\n  - click: {x: 500, y: 500}\n  - answer: done\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "pixelpilot.cli", "run", str(task), "--out", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    episode = load_episode(out.stdout.splitlines()[-1].removeprefix("episode: "))
    assert episode.env == "desktop" and episode.answer == "done"
    assert episode.steps[0].pixel_action == {"action": "click", "x": 640, "y": 400, "button": "left"}


async def test_two_envs_on_two_displays_act_at_once_each_on_its_own_app(tmp_path: Path) -> None:
    # The trajectory collector runs several desktops in one asyncio process.
    size = (800, 600)
    a, b = DesktopEnv(virtual_display=size), DesktopEnv(virtual_display=size)
    procs = []
    try:
        await asyncio.gather(a.reset(), b.reset())
        assert a.display != b.display
        for i, env in enumerate((a, b)):
            procs.append(start_app(str(env.display), tmp_path / f"state{i}.json"))
        (_, app_a), (_, app_b) = procs

        clicks = await asyncio.gather(
            a.execute(Click(**app_a.grid_point("entry", size))), b.execute(Click(**app_b.grid_point("entry", size)))
        )
        assert all(o.ok for o in clicks), clicks
        typed = await asyncio.gather(a.execute(Type(text="typed in A, café ✓")), b.execute(Type(text="typed in B")))
        assert all(o.ok for o in typed), typed
        pressed = await asyncio.gather(b.execute(Click(**app_b.grid_point("button", size))), a.observe())
        assert pressed[0].ok and pressed[1].title == "pixelpilot test app"

        assert app_a.wait(lambda s: s["text"] == "typed in A, café ✓")["presses"] == 0
        state_b = app_b.wait(lambda s: s["presses"] == 1)
        assert state_b["text"] == "typed in B"
        assert app_a.state()["presses"] == 0 and app_a.state()["text"] == "typed in A, café ✓"
    finally:
        for proc, _ in procs:
            proc.terminate()
            proc.wait(5)
        await asyncio.gather(a.aclose(), b.aclose())
    assert our_children("Xvfb") == []
