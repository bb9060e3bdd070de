"""Crash safety: a run killed with SIGKILL leaves an episode the loader reads, every completed step in it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from PIL import Image

from pixelpilot import load_episode
from pixelpilot.trajectories import list_episodes

ROOT = Path(__file__).resolve().parent.parent


def test_sigkill_mid_episode_keeps_every_completed_step(pages_url, tmp_path):
    script = textwrap.dedent(f"""
        from pixelpilot import Agent, BrowserEnv, Recorder, ScriptPolicy, Task
        steps = [{{"click": "TL"}}, {{"wait": 0.2}}] * 50
        task = Task(instruction="slow", url={pages_url + "clicks.html"!r}, steps=steps, max_steps=200)
        Agent(BrowserEnv(), ScriptPolicy(), recorder=Recorder({str(tmp_path)!r})).run_sync(task)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        lines = 0
        while time.monotonic() < deadline and lines < 4:
            time.sleep(0.1)
            found = list(tmp_path.glob("*/steps.jsonl"))
            lines = len(found[0].read_text().splitlines()) if found else 0
            assert proc.poll() is None, "the run ended before it could be killed"
        assert lines >= 4, "the run never got going"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    (folder,) = list_episodes(tmp_path)
    written = len((folder / "steps.jsonl").read_text().splitlines())
    episode = load_episode(folder)
    assert not (folder / "episode.json").exists()
    assert episode.status == "interrupted" and not episode.finished
    assert episode.num_steps == len(episode.steps) >= written - 1  # only a half-written last line may be lost
    assert [s.index for s in episode.steps] == list(range(len(episode.steps)))
    for step in episode.steps:
        with Image.open(folder / step.screenshot) as img:
            assert img.size == (1280, 800)


def test_truncated_last_line_is_ignored(tmp_path):
    from io import BytesIO

    from pixelpilot.actions import Observation, Task
    from pixelpilot.trajectories import Recorder

    buf = BytesIO()
    Image.new("RGB", (4, 3), "white").save(buf, "PNG")
    obs = Observation(png=buf.getvalue(), width=4, height=3, input_width=4, input_height=3)
    writer = Recorder(tmp_path).start(Task(instruction="x"), env="browser", policy="test")
    for _ in range(2):
        writer.add_step(obs, timings={}, action={"action": "wait", "seconds": 1.0})
    with open(writer.path / "steps.jsonl", "a") as f:
        f.write('{"index": 2, "screensh')
    episode = load_episode(writer.path)
    assert episode.num_steps == 2 and episode.status == "interrupted"
    assert len(list((writer.path / "screenshots").iterdir())) == 1  # same screen stored once
