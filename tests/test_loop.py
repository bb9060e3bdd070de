"""The agent loop on FakeEnv, in milliseconds: every way an episode ends, the step-at-a-time API, the
gate, loop detection, budgets and what the recorder keeps. No browser, display or model server."""

from __future__ import annotations

import asyncio
import time

import pytest

from pixelpilot import Agent, Decision, Limits, Policy, Recorder, ScriptPolicy, StepContext, Task, load_episode
from pixelpilot.actions import Answer, Click, Key, Terminate, Type, Wait
from pixelpilot.agent import ApprovalRules, Gate, LoopDetector, ModelError
from pixelpilot.envs import FakeEnv, UrlPolicy
from pixelpilot.trajectories import Usage

SIGN_IN = [
    {"type": {"text": "alice", "into": "Username"}},
    {"click": "Sign in"},
    {"answer": "signed in"},
]


class Plays(Policy):
    """Plays the given decisions in order, forever repeating the last one; counts resets."""

    def __init__(self, *decisions: Decision | BaseException) -> None:
        self.decisions = list(decisions)
        self.resets: list[str] = []
        self.contexts: list[StepContext] = []

    async def reset(self, task: Task) -> None:
        self.resets.append(task.instruction)

    async def decide(self, ctx: StepContext) -> Decision:
        self.contexts.append(ctx)
        item = self.decisions[min(ctx.index, len(self.decisions) - 1)]
        if isinstance(item, BaseException):
            raise item
        return item


def click_at(x: int, y: int = 500, **kw) -> Decision:
    return Decision(Click(x=x, y=y), **kw)


class Hangs(Policy):
    async def decide(self, ctx: StepContext) -> Decision:
        await asyncio.sleep(60)
        raise AssertionError("not reached")


async def _run(tmp_path, policy: Policy, env: FakeEnv | None = None, **agent) -> object:
    agent.setdefault("recorder", Recorder(tmp_path))
    return await Agent(env or FakeEnv(), policy, **agent).run(Task(instruction="sign in", url="http://fake.test/"))


@pytest.fixture(autouse=True)
def _quick():
    t0 = time.perf_counter()
    yield
    assert time.perf_counter() - t0 < 2.0, "a FakeEnv loop test should take milliseconds"


# --- every ending ---------------------------------------------------------------------------------


async def test_success_with_an_answer(tmp_path):
    env = FakeEnv()
    episode = await Agent(env, ScriptPolicy(), recorder=Recorder(tmp_path)).run(
        Task(instruction="sign in", url="http://fake.test/", steps=SIGN_IN)
    )
    assert (episode.status, episode.answer) == ("success", "signed in")
    assert env.value("Username") == "alice" and env.widget("Sign in").presses == 1


async def test_failure_when_the_policy_gives_up(tmp_path):
    episode = await _run(tmp_path, Plays(Decision(Terminate(status="failure"), message="no way in")))
    assert (episode.status, episode.message, episode.num_steps) == ("failure", "no way in", 1)


async def test_max_steps(tmp_path):
    episode = await _run(tmp_path, Plays(*(click_at(100 + 10 * i) for i in range(9))), limits=Limits(max_steps=4))
    assert (episode.status, episode.num_steps) == ("max_steps", 4) and "after 4 steps" in episode.message


async def test_timeout_while_the_policy_decides(tmp_path):
    episode = await _run(tmp_path, Hangs(), limits=Limits(max_seconds=0.2))
    assert episode.status == "timeout" and "while deciding" in episode.message


async def test_timeout_while_the_env_acts(tmp_path):
    episode = await _run(tmp_path, Plays(click_at(100)), FakeEnv(delay=0.5), limits=Limits(max_seconds=0.2))
    assert episode.status == "timeout" and "while executing" in episode.message


async def test_max_tokens(tmp_path):
    costly = Decision(Click(x=100, y=500), usage=Usage(prompt_tokens=600, completion_tokens=20))
    episode = await _run(tmp_path, Plays(costly), loops=LoopDetector(repeats=99), limits=Limits(max_tokens=1000))
    assert (episode.status, episode.num_steps) == ("max_tokens", 2) and episode.usage.prompt_tokens == 1200


async def test_loop_nudges_first_then_stops(tmp_path):
    policy = Plays(click_at(900, 900))  # empty space: the screen never changes
    episode = await _run(tmp_path, policy, loops=LoopDetector(repeats=3, grace=2))
    assert episode.status == "loop" and episode.num_steps == 5
    steps = load_episode(episode.path).steps
    nudged = [s.index for s in steps if any("stuck" in n for n in s.notes)]
    assert nudged == [3]  # the policy was told once, and the step records what it was told


async def test_env_error_after_the_one_relaunch(tmp_path):
    episode = await _run(tmp_path, Plays(click_at(100), click_at(200), click_at(300)), FakeEnv(crash_on={0, 1}))
    assert episode.status == "env_error" and "no relaunch left" in episode.message
    first = load_episode(episode.path).steps[0]
    assert first.outcome["info"]["crashed"] and "crashed" in first.outcome["error"]


async def test_model_error(tmp_path):
    episode = await _run(tmp_path, Plays(click_at(100), ModelError("the server at http://x is gone")))
    assert (episode.status, episode.num_steps) == ("model_error", 1) and "is gone" in episode.message


async def test_blocked_after_the_gate_refuses_three_times(tmp_path):
    env = FakeEnv()
    focus, secret = click_at(297, 387), Decision(Type(text="hunter2"))  # the password field, then type
    gate = Gate(rules=ApprovalRules(), approver=None)
    episode = await _run(tmp_path, Plays(focus, secret), env, gate=gate)
    assert episode.status == "blocked" and "refused 3 times" in episode.message
    assert env.value("Password") == ""  # nothing was typed
    steps = load_episode(episode.path).steps
    assert [s.extra.get("gate", {}).get("rule") for s in steps] == [None, "password", "password", "password"]
    assert "safety gate refused" in steps[2].notes[0]  # the policy was told, step after step


async def test_blocked_navigation_by_the_url_policy(tmp_path):
    from pixelpilot.actions import Navigate

    gate = Gate(UrlPolicy.of(allow=["fake.test"]), rules=None, max_denials=1)
    episode = await _run(tmp_path, Plays(Decision(Navigate(url="http://evil.test/"))), gate=gate)
    assert episode.status == "blocked" and load_episode(episode.path).steps[0].extra["gate"]["rule"] == "url_policy"


async def test_an_env_that_cannot_open_ends_as_env_error_before_any_step(tmp_path):
    episode = await _run(tmp_path, Plays(click_at(1)), FakeEnv(reset_error="no screen"))
    assert (episode.status, episode.message, episode.num_steps) == ("env_error", "no screen", 0)


async def test_a_bug_is_recorded_as_error_and_raised(tmp_path):
    policy = Plays(click_at(100), ZeroDivisionError("oops"))
    with pytest.raises(ZeroDivisionError):
        await _run(tmp_path, policy)
    (folder,) = tmp_path.iterdir()
    episode = load_episode(folder)
    assert (episode.status, episode.num_steps) == ("error", 1) and episode.message == "ZeroDivisionError: oops"


async def test_a_cancelled_run_is_interrupted_on_disk(tmp_path):
    run = asyncio.create_task(_run(tmp_path, Hangs()))
    await asyncio.sleep(0.05)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    (folder,) = tmp_path.iterdir()
    assert load_episode(folder).status == "interrupted" and (folder / "episode.json").exists()


def test_the_table_covers_every_status():
    from typing import get_args

    from pixelpilot.trajectories import Status

    tested = {
        "success", "failure", "max_steps", "timeout", "max_tokens", "loop", "env_error",
        "model_error", "blocked", "error", "interrupted",
    }  # fmt: skip
    assert tested == set(get_args(Status))


# --- one step at a time ---------------------------------------------------------------------------


async def test_start_step_finish_drive_one_episode_and_the_agent_keeps_no_state(tmp_path):
    env = FakeEnv()
    policy = Plays(click_at(300, 240), Decision(Type(text="alice")), Decision(Answer(text="done")))
    agent = Agent(env, policy, recorder=Recorder(tmp_path))
    first = await agent.start(Task(instruction="one"))
    second = await agent.start(Task(instruction="two"))  # the same Agent, a second episode at once
    assert policy.resets == ["one", "two"]
    step = await agent.step(first)
    assert step is not None and step.index == 0 and step.action["action"] == "click"
    assert (first.index, second.index, first.done) == (1, 0, False)
    while not first.done:
        await agent.step(first)
    episode = agent.finish(first)
    assert (episode.status, episode.answer, episode.num_steps) == ("success", "done", 3)
    ended = agent.finish(second, "failure", "stopped by its caller")  # ended from outside
    assert (ended.status, ended.message, ended.num_steps) == ("failure", "stopped by its caller", 0)
    with pytest.raises(RuntimeError, match="has ended"):
        await agent.step(first)


async def test_a_stand_in_decide_may_have_nothing_to_do(tmp_path):
    agent = Agent(FakeEnv(), Plays(click_at(1)), recorder=Recorder(tmp_path))
    state = await agent.start("idle")

    async def nothing(ctx: StepContext) -> Decision | None:
        return None

    assert await agent.step(state, nothing) is None and not state.done and state.index == 0
    assert (await agent.step(state)).index == 0  # the policy again


async def test_the_pointer_follows_pointing_actions(tmp_path):
    from pixelpilot.actions import Drag

    policy = Plays(Decision(Drag(x=10, y=10, x2=300, y2=400)), Decision(Key(keys=["tab"])), Decision(Wait()))
    agent = Agent(FakeEnv(), policy, recorder=Recorder(tmp_path), limits=Limits(max_steps=3))
    await agent.run("drag")
    assert [c.pointer for c in policy.contexts] == [None, (300, 400), (300, 400)]


async def test_each_step_records_its_phases(tmp_path):
    episode = await _run(tmp_path, Plays(click_at(100), Decision(Answer(text="ok"))))
    first, last = load_episode(episode.path).steps
    assert {"reset", "decide", "execute", "record"} <= set(first.timings)
    assert {"observe", "decide", "record"} <= set(last.timings)
    assert first.pixel_action == {"action": "click", "x": 64, "y": 240, "button": "left"}  # 640×480 input space
