"""The same collection inside Ray actors, on a local Ray cluster that this module starts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import ray
from collect_support import (
    LatencyModelServerDouble,
    kill_midway_then_resume,
    titles,
    todo_tasks,
    wait_tasks,
    write_tasks,
)

from pixelpilot.agent.collect import RunnerConfig, load_tasks, ray_collect
from pixelpilot.trajectories import list_episodes, load_episode

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def ray_cluster():
    """A two-CPU local Ray cluster on 127.0.0.1; its workers can import tests/collect_support.py."""
    with pytest.MonkeyPatch.context() as mp:
        # The cluster's processes inherit this, so actors of any driver find the test checks.
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            object_store_memory=100 * 1024 * 1024,
            _node_ip_address="127.0.0.1",
        )
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


async def test_two_actors_collect_and_survive_a_crash(ray_cluster, todo_app, tmp_path):
    # Eight scripted episodes and two a model drives (a model-server double on 127.0.0.1). One
    # task's check kills the actor running it, once: that episode is marked env_error, the actor
    # comes back, and the episode (with any other the crash took down) runs again.
    lines = todo_tasks(todo_app.url) + [
        {"id": "model", "instruction": "Click around, then answer", "url": todo_app.url}
    ]
    lines[3]["checker"] = {"python": "collect_support:crash_once"}
    tasks = load_tasks(write_tasks(tmp_path / "tasks.jsonl", lines))
    before = titles(todo_app)
    out = tmp_path / "out"
    with LatencyModelServerDouble(latency=0.1, calls=2) as model:
        summary = await ray_collect(
            tasks, RunnerConfig(out=out, timeout=120), actors=2, concurrency=4, rollouts=2, model_urls=[model.url]
        )

    assert (out / ".crashed").exists(), "the crash never happened"
    assert summary.ran == 10 and summary.statuses == {"success": 10}
    episodes = {e.id: e for e in map(load_episode, list_episodes(out))}
    assert sorted(episodes) == sorted(
        f"{t}-r{k}" for t in ("add-0", "add-1", "add-2", "add-3", "model") for k in range(2)
    )
    assert all(e.status == "success" for e in episodes.values())
    assert all(e.reward == 1.0 for name, e in episodes.items() if name.startswith("add-"))
    for k in range(2):
        model_steps = episodes[f"model-r{k}"].steps
        assert len(model_steps) == 2 and all(s.extra["server"] == model.url for s in model_steps)
    added = titles(todo_app) - before
    assert sorted(added) == [f"item {i}" for i in range(4)]
    assert all(n >= 2 for n in added.values())  # a try the crash cut short may have added one more


def test_killed_ray_collector_resumes_only_the_missing_episodes(ray_cluster, pages_url, tmp_path):
    tasks = write_tasks(tmp_path / "tasks.jsonl", wait_tasks(pages_url, n=4))
    kill_midway_then_resume(
        [str(tasks), "--concurrency", "4", "--rollouts", "2", "--ray", ray_cluster, "--actors", "2", "--timeout", "60"],
        tmp_path / "out",
        total=8,
        timeout=180,
    )
