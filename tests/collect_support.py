"""Helpers for the collect tests, and the Python success checks they name (``collect_support:…``).

The checks live in a module of their own because collectors import them by name, also in Ray
actors (the Ray tests put this folder on PYTHONPATH for those).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from pixelpilot.trajectories import list_episodes, load_episode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from collect_throughput import LatencyModelServerDouble  # noqa: E402,F401  (the bench's model-server double)


async def has_items(env, episode) -> bool:
    """The final page lists at least one to-do."""
    return await env.page.locator("#todos li").count() >= 1


def crash_once(env, episode) -> bool:
    """Kills the process running it the first time any episode of the collection gets here."""
    marker = Path(episode.path).parent / ".crashed"
    if not marker.exists():
        marker.write_text(episode.id)
        os._exit(3)
    return True


CHECKERS = [
    {"text": "item {i}"},
    {"url": "/todos$"},
    {"js": "document.querySelectorAll('#todos li').length"},
    {"python": "collect_support:has_items"},
]


def todo_tasks(url: str, n: int = 4, checkers: list[dict] = CHECKERS) -> list[dict]:
    """Sign in and add "item i": one task per checker kind."""
    return [
        {
            "id": f"add-{i}",
            "instruction": f"Sign in and add item {i}",
            "url": url,
            "max_steps": 20,
            "steps": [
                {"type": {"text": "alice", "into": "Username"}},
                {"type": {"text": "wonderland", "into": "Password"}},
                {"click": "Sign in"},
                {"type": {"text": f"item {i}", "into": "What needs doing?"}},
                {"click": "Add"},
                {"expect": {"text": f"item {i}"}},
            ],
            "checker": json.loads(json.dumps(checkers[i % len(checkers)]).replace("{i}", str(i))),
        }
        for i in range(n)
    ]


def write_tasks(path: Path, lines: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


def titles(app) -> Counter[str]:
    """Every to-do title in the app, over all sessions, with its count."""
    return Counter(t["title"] for s in app.state.snapshot().values() for t in s["todos"])


def wait_tasks(pages_url: str, n: int = 5) -> list[dict]:
    """Tasks of a few seconds each (a click, then a wait), with a JavaScript check of the click."""
    return [
        {
            "id": f"wait-{i}",
            "instruction": "click and wait",
            "url": pages_url + "clicks.html",
            "steps": [{"click": "C"}, {"wait": 1.5}, {"answer": "done"}],
            "checker": {"js": "window.clicks.length"},
        }
        for i in range(n)
    ]


def kill_midway_then_resume(args: list[str], out: Path, total: int, timeout: float = 120) -> None:
    """Run ``pixelpilot collect ARGS``, SIGKILL it once 3 episodes are done, run it again, and check
    that the second run did exactly the episodes the first left undone and touched none of the others."""
    cmd = [sys.executable, "-m", "pixelpilot.cli", "collect", *args, "--out", str(out), "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(list(out.glob("*/episode.json"))) < 3:
            assert proc.poll() is None, "the collector ended before it could be killed"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    # A Ray actor is not in the collector's process group: it may finish the episode in hand before
    # Ray notices its owner is gone. What is on disk once nothing has changed for 2 s is what resumes.
    done = _settled(lambda: {p.parent.name: p.read_bytes() for p in out.glob("*/episode.json")}, quiet=2.0)
    partial = {p.parent.name for p in out.glob("*/task.json")} - set(done)
    assert 3 <= len(done) < total, "the kill should land mid-collection"

    rerun = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    left = total - len(done)
    assert f"ran {left} of {total} episodes ({left} success); {len(done)} were done before" in rerun.stdout, (
        rerun.stdout
    )
    for name, data in done.items():
        assert (out / name / "episode.json").read_bytes() == data  # untouched
    episodes = [load_episode(p) for p in list_episodes(out)]
    assert len(episodes) == total and all(e.status == "success" and e.reward == 1.0 for e in episodes)
    for name in partial:  # started over from scratch, not appended to
        assert [s.index for s in load_episode(out / name).steps] == [0, 1, 2]


def _settled(read, quiet: float, limit: float = 30.0):
    """``read()`` once it has returned the same thing for ``quiet`` seconds (or after ``limit``)."""
    last, since, deadline = read(), time.monotonic(), time.monotonic() + limit
    while time.monotonic() - since < quiet and time.monotonic() < deadline:
        time.sleep(0.1)
        now = read()
        if now != last:
            last, since = now, time.monotonic()
    return last


def max_overlap(episodes) -> int:
    """The most episodes that were running at the same moment."""
    edges = sorted([(e.started_at, 1) for e in episodes] + [(e.ended_at, -1) for e in episodes])
    best = running = 0
    for _, d in edges:
        running += d
        best = max(best, running)
    return best


# --- desktop and phone episodes ------------------------------------------------------------------


def desktop_typed(env, episode) -> bool:
    """The episode's own Tk app (on the episode's own Xvfb) holds exactly the text it was told to type."""
    meta = episode.task.metadata
    state = json.loads(Path(meta["state"].replace("{display}", env.display.lstrip(":"))).read_text())
    return state["text"] == meta["text"]


def phone_typed(env, episode) -> bool:
    """The Notes app on the episode's phone ends with the text this episode typed, so no other
    episode typed on that phone while this one held it."""
    return env.device.texts.get("com.example.notes", "").endswith(episode.task.metadata["text"])


#: The phones the Android collect test hands out, by serial (made by the test).
PHONES: dict = {}


def phone(serial: str):
    return PHONES[serial]
