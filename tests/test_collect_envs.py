"""The collector runs desktop and Android tasks too: each desktop episode on an Xvfb of its own,
each Android episode on a phone of the pool, held by one episode at a time."""

from __future__ import annotations

import re

import collect_support
import pytest
from collect_support import max_overlap, write_tasks
from desktop_helpers import APP, TK_PYTHON

from pixelpilot.agent.collect import RunnerConfig, collect, load_tasks
from pixelpilot.envs.android_double import AndroidDeviceDouble
from pixelpilot.trajectories import list_episodes, load_episode


def require(binary: str) -> None:
    import shutil

    if shutil.which(binary) is None:
        pytest.skip(f"{binary} is not installed (scripts/setup.sh test installs it)")


async def test_desktop_episodes_run_at_once_each_on_its_own_display(tmp_path):
    require("Xvfb")
    state = str(tmp_path / "state-{display}.json")
    # Entry box of the test app (placed at 20,100, 520x40 in a window at 0,0) on the 1280x800 grid.
    entry = {"x": round(280 / 1280 * 1000), "y": round(120 / 800 * 1000)}
    lines = [
        {
            "id": f"type-{i}",
            "instruction": f"Type hello {i} into the app",
            "env": "desktop",
            "metadata": {"state": state, "text": f"hello {i}"},
            "steps": [
                {"action": "open_app", "name": "testapp"},
                {"wait": 2.5},
                {"click": entry},
                {"type": f"hello {i}"},
                {"wait": 0.3},
                {"answer": "typed"},
            ],
            "checker": {"python": "collect_support:desktop_typed"},
        }
        for i in range(4)
    ]
    out = tmp_path / "out"
    config = RunnerConfig(out=out, timeout=90, desktop_apps={"testapp": [TK_PYTHON, str(APP), state]})
    summary = await collect(load_tasks(write_tasks(tmp_path / "t.jsonl", lines)), config, concurrency=2)

    episodes = [load_episode(p) for p in list_episodes(out)]
    assert summary.statuses == {"success": 4}, [(e.id, e.status, e.message) for e in episodes]
    # Each app saw its own episode's text and nothing else, while two desktops ran at once.
    assert [e.reward for e in episodes] == [1.0] * 4, [(e.id, e.reward, e.message) for e in episodes]
    assert max_overlap(episodes) == 2
    assert {e.steps[0].observation["width"] for e in episodes} == {1280}


async def test_android_episodes_share_the_phones_one_episode_per_phone(tmp_path):
    collect_support.PHONES.update({s: AndroidDeviceDouble(s) for s in ("phone-a", "phone-b")})
    lines = [
        {
            "id": f"note-{i}",
            "instruction": f"Write note {i}",
            "env": "mobile",
            "metadata": {"text": f"<note {i}>"},
            "steps": [
                {"action": "open_app", "name": "Notes"},
                {"type": f"<note {i}>"},
                {"wait": 0.5},
                {"answer": "written"},
            ],
            "checker": {"python": "collect_support:phone_typed"},
        }
        for i in range(6)
    ]
    out = tmp_path / "out"
    config = RunnerConfig(
        out=out, timeout=60, android_serials=("phone-a", "phone-b"), android_device=collect_support.phone
    )
    summary = await collect(load_tasks(write_tasks(tmp_path / "t.jsonl", lines)), config, concurrency=4)

    episodes = [load_episode(p) for p in list_episodes(out)]
    assert summary.statuses == {"success": 6}, [(e.id, e.status, e.message) for e in episodes]
    assert [e.reward for e in episodes] == [1.0] * 6
    assert max_overlap(episodes) == 2  # four workers, two phones: never more than two at once
    # Every note was written once, whole, on one of the two phones; both phones were used.
    notes = [p.texts.get("com.example.notes", "") for p in collect_support.PHONES.values()]
    assert sorted(re.findall(r"<note \d>", "".join(notes))) == sorted(f"<note {i}>" for i in range(6))
    assert all(notes)


async def test_an_android_task_without_its_phone_is_recorded_as_env_error(tmp_path):
    lines = [{"id": "lost", "instruction": "Write a note", "env": "mobile", "steps": [{"answer": "no"}]}]
    out = tmp_path / "out"
    config = RunnerConfig(out=out, timeout=30, android_serials=("no-such-phone",))
    summary = await collect(load_tasks(write_tasks(tmp_path / "t.jsonl", lines)), config, concurrency=1)
    episode = load_episode(out / "lost-r0")
    assert summary.statuses == {"env_error": 1}
    assert episode.finished and "adb" in episode.message, episode.message
