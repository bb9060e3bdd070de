"""DesktopEnv's own processes: Xvfb and the apps it starts are always stopped.

Each test here starts its own Xvfb; they live apart from test_desktop.py, whose module-wide env
holds pyautogui's one display while its tests run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from desktop_helpers import APP, TK_PYTHON, TkApp, alive, our_children

from pixelpilot import load_episode
from pixelpilot.actions import OpenApp
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
        await env.close()
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
    task.write_text("instruction: Click the middle of the screen.\nenv: desktop\n"
                    "steps:\n  - click: {x: 500, y: 500}\n  - answer: done\n")
    out = subprocess.run([sys.executable, "-m", "pixelpilot.cli", "run", str(task), "--out", str(tmp_path / "runs")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    episode = load_episode(out.stdout.splitlines()[-1].removeprefix("episode: "))
    assert episode.env == "desktop" and episode.answer == "done"
    assert episode.steps[0].pixel_action == {"action": "click", "x": 640, "y": 400, "button": "left"}


async def test_a_second_display_at_once_is_refused_and_its_xvfb_stopped() -> None:
    first = DesktopEnv(virtual_display=(640, 480))
    await first.reset()
    try:
        second = DesktopEnv(virtual_display=(640, 480))
        with pytest.raises(EnvError, match="one process drives one X display at a time"):
            await second.reset()
        assert second.xvfb is None and len(our_children("Xvfb")) == 1
    finally:
        await first.close()
    assert our_children("Xvfb") == []
