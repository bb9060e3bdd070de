"""Collecting many episodes at once: task files, concurrency, outside timeouts, rewards, resume."""

from __future__ import annotations

import socket
import time
from contextlib import ExitStack

import pytest
from collect_support import kill_midway_then_resume, max_overlap, titles, todo_tasks, wait_tasks, write_tasks

from pixelpilot.agent.collect import RunnerConfig, ServerPool, collect, load_tasks
from pixelpilot.agent.taskfile import TaskFileError
from pixelpilot.trajectories import list_episodes, load_episode
from pixelpilot.trajectories.stats import stats_for


def test_task_file_errors_name_line_and_fix(tmp_path):
    cases = [
        ('{"instruction": "x"}\n{"instruction": ', ":2: not valid JSON"),
        ('{"instruction": "x", "colour": "red"}', ":1: colour: Extra inputs are not permitted"),
        ('{"instruction": "x", "checker": {"text": "a", "url": "b"}}', ":1: checker: a checker has exactly one of"),
        ('{"instruction": "x", "checker": {"url": "(unclosed"}}', "is not a valid regular expression"),
        ('{"instruction": "x", "checker": {"python": "no_such_module_here:f"}}', "cannot be imported"),
        ('{"instruction": "x", "steps": [{"clik": "Go"}]}', ":1: steps: unknown step 'clik'"),
        ('{"instruction": "x", "env": "tablet"}', ":1: env: Input should be 'browser', 'desktop' or 'mobile'"),
        ('{"id": "a", "instruction": "x"}\n\n{"id": "a", "instruction": "y"}', ":3: task id 'a' is also line 1's"),
        ('["instruction"]', ":1: each line is a JSON object"),
        ("\n# nothing\n", "the file has no tasks"),
    ]
    for text, expected in cases:
        path = tmp_path / "tasks.jsonl"
        path.write_text(text)
        with pytest.raises(TaskFileError) as err:
            load_tasks(path)
        assert str(err.value).startswith(str(path)) and expected in str(err.value), (text, str(err.value))


def test_task_ids_are_stable_and_checkers_are_recorded(tmp_path):
    lines = [
        {"instruction": "Add milk", "url": "http://127.0.0.1:1/"},
        {"instruction": "Add eggs", "checker": {"text": "eggs"}},
    ]
    first = load_tasks(write_tasks(tmp_path / "a.jsonl", lines))
    again = load_tasks(write_tasks(tmp_path / "b.jsonl", list(reversed(lines))))
    assert {t.id for t in first} == {t.id for t in again}
    assert (
        first[0].id.startswith("add-milk-")
        and first[0].id != load_tasks(write_tasks(tmp_path / "c.jsonl", [{"instruction": "Add milk"}]))[0].id
    )
    assert first[1].task.metadata["checker"] == {"text": "eggs"} and first[1].checker.text == "eggs"


def test_server_pool_gives_new_episodes_the_least_loaded_server():
    pool = ServerPool(["http://a/", "http://b", "http://c"])
    with ExitStack() as a_episodes:
        with ExitStack() as others:
            got = [others.enter_context(pool.lease()) for _ in range(3)]
            assert got == ["http://a", "http://b", "http://c"]
            got.append(a_episodes.enter_context(pool.lease()))  # all equal: the first listed
            assert got[3] == "http://a" and pool.load == {"http://a": 2, "http://b": 1, "http://c": 1}
        # b and c finished their episodes while a still runs one: new episodes avoid a.
        with pool.lease() as first, pool.lease() as second, pool.lease() as third:
            assert (first, second, third) == ("http://b", "http://c", "http://a")
    assert pool.load == {"http://a": 0, "http://b": 0, "http://c": 0}
    with ServerPool().lease() as none:
        assert none is None


async def test_collect_eight_scripted_episodes_four_at_a_time(todo_app, tmp_path):
    tasks = load_tasks(write_tasks(tmp_path / "tasks.jsonl", todo_tasks(todo_app.url)))
    before = titles(todo_app)
    out = tmp_path / "out"
    summary = await collect(tasks, RunnerConfig(out=out, timeout=120), concurrency=4, rollouts=2)

    assert summary.total == 8 and summary.ran == 8 and summary.skipped == 0
    episodes = [load_episode(p) for p in list_episodes(out)]
    assert sorted(e.id for e in episodes) == sorted(f"add-{i}-r{k}" for i in range(4) for k in range(2))
    for e in episodes:
        assert e.status == "success" and e.reward == 1.0, (e.id, e.status, e.reward, e.message)
        assert e.num_steps >= 6 and "checker" in e.task.metadata
    # Every rollout really signed in and added its item, in its own session.
    assert titles(todo_app) - before == {f"item {i}": 2 for i in range(4)}
    assert max_overlap(episodes) >= 3
    assert stats_for([out]).rewards == {"scored": 8, "mean": 1.0, "full": 8}

    again = await collect(tasks, RunnerConfig(out=out, timeout=120), concurrency=4, rollouts=2)
    assert again.ran == 0 and again.skipped == 8


async def test_outside_timeout_and_broken_env_are_recorded(pages_url, tmp_path):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    lines = [
        {
            "id": "slow",
            "instruction": "click, then wait far too long",
            "url": pages_url + "clicks.html",
            "steps": [{"click": {"x": 500, "y": 500}}, {"wait": 40}],
            "checker": {"url": "clicks\\.html$"},
        },
        {
            "id": "nowhere",
            "instruction": "a server that is not there",
            "url": f"http://127.0.0.1:{closed_port}/",
            "steps": [{"answer": "never"}],
            "checker": {"text": "anything"},
        },
    ]
    out = tmp_path / "out"
    t0 = time.monotonic()
    summary = await collect(
        load_tasks(write_tasks(tmp_path / "t.jsonl", lines)), RunnerConfig(out=out, timeout=15), concurrency=2
    )
    elapsed = time.monotonic() - t0
    slow, broken = load_episode(out / "slow-r0"), load_episode(out / "nowhere-r0")
    assert elapsed < 38, elapsed  # not the 40 s the slow task asks for
    assert slow.finished and slow.status == "timeout" and "15 s wall-clock limit" in slow.message, slow
    assert slow.num_steps == 1 and slow.steps[0].action["action"] == "click"  # the step before the hang is kept
    assert slow.reward == 1.0  # the final state was still checked
    assert broken.finished and broken.status == "env_error" and "ERR_CONNECTION_REFUSED" in broken.message, broken
    assert summary.statuses == {"timeout": 1, "env_error": 1}


def test_killed_collector_resumes_only_the_missing_episodes(pages_url, tmp_path):
    tasks = write_tasks(tmp_path / "tasks.jsonl", wait_tasks(pages_url, n=4))
    kill_midway_then_resume(
        [str(tasks), "--concurrency", "4", "--rollouts", "2", "--timeout", "60"], tmp_path / "out", total=8
    )


def test_cli_errors_are_one_line_naming_the_fix(tmp_path):
    from typer.testing import CliRunner

    from pixelpilot.cli import app

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "x", "url": "http://127.0.0.1:1/"}\n{"instruction": "y", "max_steps": 0}\n')
    result = CliRunner().invoke(app, ["collect", str(bad), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and f"{bad}:2: max_steps: Input should be greater than or equal to 1" in result.output
    needs_model = write_tasks(tmp_path / "model.jsonl", [{"id": "free", "instruction": "Add milk"}])
    result = CliRunner().invoke(app, ["collect", str(needs_model), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "task free has no `steps`" in result.output and "--model-url" in result.output
    assert not (tmp_path / "out").exists()  # nothing ran
    scripted = write_tasks(
        tmp_path / "desk.jsonl", [{"id": "d", "instruction": "x", "env": "desktop", "steps": [{"wait": 0}]}]
    )
    result = CliRunner().invoke(
        app, ["collect", str(scripted), "--out", str(tmp_path / "out"), "--desktop-app", "gedit"]
    )
    assert result.exit_code == 2 and "--desktop-app 'gedit': write NAME=COMMAND" in result.output
