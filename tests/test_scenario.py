"""Scenarios in the loop and in collect, on FakeEnv: a task's own start (the instruction it writes),
its own end (a verdict after an action ends the episode with its reward) and its judgement of an
episode the policy ended. The benchmarks built on this (MiniWoB …) have tests of their own."""

from __future__ import annotations

from dataclasses import dataclass

from pixelpilot import Agent, Decision, Policy, Recorder, StepContext, Task, load_episode
from pixelpilot.actions import Click, Terminate
from pixelpilot.agent.collect import RunnerConfig, TaskSpec, collect
from pixelpilot.agent.scenario import Scenario, Verdict
from pixelpilot.envs import Env, FakeEnv
from pixelpilot.trajectories import Episode, list_episodes

# The fake sign-in screen is 640x480; on the 0-1000 grid the Sign in button (40..160, 230..270) is here.
ON_BUTTON = (156, 521)
OFF_BUTTON = (900, 900)


@dataclass(frozen=True)
class PressTheButton(Scenario):
    """A toy benchmark: its instruction depends on the seed; pressing Sign in solves it, and any
    other action uses up one of its two chances."""

    async def begin(self, env: Env, task: Task) -> Task:
        seed = task.metadata["seed"]
        return task.model_copy(update={"instruction": f"Press Sign in (problem {seed})"})

    async def poll(self, env: Env) -> Verdict | None:
        assert isinstance(env, FakeEnv)
        if env.widget("Sign in").presses:
            return Verdict(reward=0.8, success=True, raw_reward=1.0, reason="pressed")
        if len(env.received) >= 2:
            return Verdict(reward=-1.0, success=False, raw_reward=-1.0, reason="two misses")
        return None

    async def judge(self, env: Env, episode: Episode) -> Verdict:
        return Verdict(reward=0.0, success=False, raw_reward=0.0, reason="stopped early")


class Clicks(Policy):
    """Clicks the given grid points in order, then says it is done; remembers the instructions it got."""

    def __init__(self, *points: tuple[int, int]) -> None:
        self.points = list(points)
        self.instructions: list[str] = []

    async def reset(self, task: Task) -> None:
        self.instructions.append(task.instruction)

    async def decide(self, ctx: StepContext) -> Decision:
        if ctx.index < len(self.points):
            x, y = self.points[ctx.index]
            return Decision(Click(x=x, y=y))
        return Decision(Terminate(status="success"))


def _task(seed: int = 3) -> Task:
    return Task(instruction="(the page says)", url="http://fake.test/", metadata={"seed": seed})


async def test_the_scenario_writes_the_instruction_and_ends_the_episode_with_its_reward(tmp_path):
    policy = Clicks(OFF_BUTTON, ON_BUTTON, OFF_BUTTON)
    episode = await Agent(FakeEnv(), policy, recorder=Recorder(tmp_path)).run(_task(), scenario=PressTheButton())

    assert policy.instructions == ["Press Sign in (problem 3)"]
    assert episode.status == "success" and episode.num_steps == 2  # ended by the task, not by the policy
    assert episode.reward == 0.8 and episode.raw_reward == 1.0 and "pressed" in episode.message
    on_disk = load_episode(episode.path)
    assert on_disk.task.instruction == "Press Sign in (problem 3)" and on_disk.reward == 0.8
    assert on_disk.raw_reward == 1.0


async def test_a_verdict_of_failure_ends_the_episode_as_a_failure(tmp_path):
    episode = await Agent(FakeEnv(), Clicks(OFF_BUTTON, OFF_BUTTON, ON_BUTTON), recorder=Recorder(tmp_path)).run(
        _task(), scenario=PressTheButton()
    )
    assert episode.status == "failure" and episode.num_steps == 2
    assert episode.reward == -1.0 and episode.raw_reward == -1.0 and "two misses" in episode.message


async def test_an_episode_the_policy_ends_is_judged_by_the_scenario(tmp_path):
    episode = await Agent(FakeEnv(), Clicks(OFF_BUTTON), recorder=Recorder(tmp_path)).run(
        _task(), scenario=PressTheButton()
    )
    # The policy claimed success; the status keeps its word, the reward is the task's.
    assert episode.status == "success" and episode.reward == 0.0 and episode.raw_reward == 0.0


class ScenarioEnvPool:
    """Hands out FakeEnvs in place of browsers (collect's EnvPool interface)."""

    async def acquire(self, task: Task) -> Env:
        return FakeEnv()

    async def release(self, env: Env) -> None:
        await env.aclose()

    async def aclose(self) -> None:
        pass


async def test_collect_seeds_each_rollout_and_records_the_verdicts(tmp_path, monkeypatch):
    from pixelpilot.agent.collect import episode as episode_module

    monkeypatch.setattr(episode_module, "EnvPool", lambda config: ScenarioEnvPool())
    spec = TaskSpec(id="press", task=_task(), scenario=PressTheButton())
    config = RunnerConfig(out=tmp_path / "out", policy_factory=lambda s: Clicks(ON_BUTTON))
    summary = await collect([spec], config, rollouts=3, first_seed=100, concurrency=2)

    episodes = sorted((load_episode(p) for p in list_episodes(tmp_path / "out")), key=lambda e: e.id)
    assert summary.ran == 3 and [e.id for e in episodes] == ["press-r0", "press-r1", "press-r2"]
    assert [e.task.metadata["seed"] for e in episodes] == [100, 101, 102]
    assert [e.task.instruction for e in episodes] == [f"Press Sign in (problem {s})" for s in (100, 101, 102)]
    assert all(e.status == "success" and e.reward == 0.8 and e.raw_reward == 1.0 for e in episodes)

    again = await collect([spec], config, rollouts=3, first_seed=100)  # everything is done: nothing reruns
    assert again.ran == 0 and again.skipped == 3
