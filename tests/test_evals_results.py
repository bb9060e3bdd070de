"""The results schema's arithmetic (per-task rates, the mean over tasks, Wilson's interval), choosing
tasks by pattern, and finding suites by name, entry point or dotted class name."""

from __future__ import annotations

import json
from contextlib import contextmanager

import pytest

from pixelpilot import Task
from pixelpilot.agent.collect import TaskSpec
from pixelpilot.evals import Results, RunInfo, Suite, SuiteError, TaskResult, Trial, get_suite, load_results, wilson
from pixelpilot.evals.suite import select


def test_wilson_matches_the_textbook_values():
    # Wilson's 95% interval for 0/10, 5/10 and 10/10 (z = 1.96), to four places.
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)


def _task(name: str, outcomes: list[float | None]) -> TaskResult:
    trials = [
        Trial(id=f"{name}-r{k}", success=r is not None and r > 0, reward=r, raw_reward=r, steps=k + 1, seconds=2.0)
        for k, r in enumerate(outcomes)
    ]
    return TaskResult(id=name, trials=trials)


def test_results_add_up_and_survive_a_round_trip(tmp_path):
    tasks = [_task("a", [1.0, 1.0]), _task("b", [1.0, -1.0]), _task("c", [0.0, None])]
    results = Results.build("toy", RunInfo(label="base"), tasks, limitations={"c": "needs a curve"})

    s = results.summary
    assert (s.tasks, s.trials, s.successes) == (3, 6, 3)
    assert s.success_rate == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    assert s.ci95 == pytest.approx(wilson(3, 6))
    assert s.mean_reward == pytest.approx((1 + 1 + 1 - 1 + 0) / 5)  # an unknown reward is left out
    assert tasks[1].figures()["success_rate"] == 0.5 and tasks[0].figures()["mean_steps"] == 1.5
    assert "toy · base: success 50.0%" in results.line()

    path = results.write(tmp_path / "results.json")
    again = load_results(tmp_path)  # a folder holding results.json is read too
    assert again == results and json.loads(path.read_text())["format"] == "pixelpilot.eval/1"

    data = json.loads(path.read_text())
    data["format"] = "pixelpilot.eval/99"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="pixelpilot.eval/99"):
        load_results(path)


def test_tasks_are_chosen_by_comma_separated_patterns():
    specs = [TaskSpec(id=i, task=Task(instruction="x")) for i in ("click-button", "click-link", "enter-text")]
    assert [t.id for t in select(specs, "click-*")] == ["click-button", "click-link"]
    assert [t.id for t in select(specs, "enter-text, click-link")] == ["click-link", "enter-text"]
    assert select(specs, None) == specs
    with pytest.raises(SuiteError, match="no task matches 'zz'"):
        select(specs, "zz")


class OneTaskSuite(Suite):
    """A suite found by its dotted name."""

    name = "one"

    @contextmanager
    def serve(self):
        yield [TaskSpec(id="only", task=Task(instruction="x"))]


def test_suites_are_found_by_name_or_by_class():
    assert get_suite("miniwob").name == "miniwob"
    found = get_suite(f"{__name__}:OneTaskSuite")
    assert isinstance(found, OneTaskSuite)
    with found.serve() as tasks:
        assert [t.id for t in tasks] == ["only"]
    with pytest.raises(SuiteError, match="no suite called 'nosuch'.*miniwob"):
        get_suite("nosuch")
    with pytest.raises(SuiteError, match="cannot be loaded"):
        get_suite("no_such_package.suites:Missing")


async def test_a_damaged_episode_counts_as_a_failure_that_says_why(tmp_path):
    from test_scenario import Clicks, PressTheButton, _task

    from pixelpilot import Agent, Recorder
    from pixelpilot.envs import FakeEnv
    from pixelpilot.evals import write_scoreboard
    from pixelpilot.evals.run import score

    episodes = tmp_path / "episodes"
    for k in range(2):
        agent = Agent(FakeEnv(), Clicks((156, 521)), recorder=Recorder(episodes))
        state = await agent.start(_task(k), episode_id=f"press-r{k}", scenario=PressTheButton())
        while not state.done:
            await agent.step(state)
        agent.finish(state)
    (episodes / "press-r1" / "episode.json").write_text("{not json")

    [task] = score([TaskSpec(id="press", task=_task())], episodes, 2, tmp_path)
    good, damaged = task.trials
    assert good.success and good.raw_reward == 1.0
    assert not damaged.success and damaged.status == "unreadable" and "episode.json" in damaged.message

    results = Results.build("toy", RunInfo(label="base"), [task])
    results.write(tmp_path / "results.json")
    page = write_scoreboard([tmp_path / "results.json"], tmp_path / "board.html").read_text()
    assert "press-r0" in page and "press-r1" in page
