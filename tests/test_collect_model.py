"""Collecting with a model: the local tiny Qwen3-VL over real HTTP, and two servers at once."""

from __future__ import annotations

from collect_support import LatencyModelServerDouble, max_overlap, write_tasks

from pixelpilot.agent.collect import Policies, RunnerConfig, collect, load_tasks
from pixelpilot.trajectories import list_episodes, load_episode

#: Actions a random model can take that keep an episode on its page and short (no random waits).
SAFE_ACTIONS = ("click", "double_click", "move", "scroll", "type", "answer", "terminate")


async def test_collect_eight_episodes_from_the_local_tiny_model_four_at_a_time(server_url, pages_url, tmp_path):
    lines = [
        {
            "id": f"tiny-{i}",
            "instruction": "Click the button labelled C",
            "url": pages_url + "clicks.html",
            "max_steps": 1,
            "checker": {"js": "window.clicks.length > 0"},
        }
        for i in range(4)
    ]
    out = tmp_path / "out"
    # 160 tokens: room for a longer Action line plus the call (64 once cut a random answer short in CI).
    policies = Policies(actions=SAFE_ACTIONS, max_tokens=160, max_image_tokens=160)
    config = RunnerConfig(out=out, timeout=180, policy_factory=policies)
    summary = await collect(
        load_tasks(write_tasks(tmp_path / "tasks.jsonl", lines)),
        config,
        concurrency=4,
        rollouts=2,
        model_urls=[server_url],
    )

    episodes = [load_episode(p) for p in list_episodes(out)]
    assert summary.ran == 8 and len(episodes) == 8 and all(e.finished for e in episodes)
    for e in episodes:
        # The tiny model's weights are random, so what it does is noise; that it is asked, answers
        # within the schema and that every step is recorded is not.
        assert e.status in ("max_steps", "success", "failure"), (e.id, e.status, e.message)
        assert e.policy == "ModelPolicy" and e.num_steps >= 1 and e.reward in (0.0, 1.0)
        assert e.usage.prompt_tokens > 0
        for step in e.steps:
            assert step.raw_output and step.extra["server"] == server_url and step.model_image is not None
    assert max_overlap(episodes) >= 3


async def test_each_episode_keeps_its_server_and_new_ones_go_to_the_least_loaded(pages_url, tmp_path):
    lines = [
        {"id": f"two-{i}", "instruction": "Click around, then answer", "url": pages_url + "clicks.html"}
        for i in range(4)
    ]
    out = tmp_path / "out"
    with LatencyModelServerDouble(latency=0.2, calls=2) as a, LatencyModelServerDouble(latency=0.2, calls=2) as b:
        summary = await collect(
            load_tasks(write_tasks(tmp_path / "tasks.jsonl", lines)),
            RunnerConfig(out=out, timeout=60),
            concurrency=4,
            rollouts=2,
            model_urls=[a.url, b.url],
        )
        calls = a.calls + b.calls
    assert summary.statuses == {"success": 8}
    episodes = [load_episode(p) for p in list_episodes(out)]
    by_server: dict[str, list] = {a.url: [], b.url: []}
    for e in episodes:
        servers = {step.extra["server"] for step in e.steps}
        assert len(servers) == 1, (e.id, servers)  # one server for the whole episode
        by_server[servers.pop()].append(e)
    assert calls == sum(e.num_steps for e in episodes) == 16
    # Four at a time over two servers: a new episode goes to the one with fewer in flight, so
    # neither ever runs more than two at once, and both are used.
    assert all(len(eps) >= 2 and max_overlap(eps) <= 2 for eps in by_server.values()), {
        url: len(eps) for url, eps in by_server.items()
    }
