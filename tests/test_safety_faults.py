"""Fault injection (Chromium killed mid-episode, a page that never finishes loading, the model server
killed or answering garbage mid-episode), loop detection, and budgets: each ends with the right
status and a loadable episode holding every completed step."""

from __future__ import annotations

import os
import signal

import pytest
from sites import Sites
from test_serving_client import FaultServer, _client  # issue 3's OpenAI-shaped fault server

from pixelpilot.actions import Click, Task
from pixelpilot.agent import Agent, Decision, Gate, Limits, LoopDetector, ModelError, Policy, ScriptPolicy
from pixelpilot.agent.model_policy import ModelPolicy
from pixelpilot.envs import UrlPolicy
from pixelpilot.envs.browser import BrowserEnv
from pixelpilot.trajectories import Recorder, Usage, load_episode


@pytest.fixture(scope="module")
def sites():
    with Sites([("127.0.0.1", 0)]) as s:
        yield s


def _url(sites: Sites, path: str) -> str:
    return f"http://127.0.0.1:{sites.ports[0]}{path}"


async def _browser_pid(env: BrowserEnv) -> int:
    cdp = await env._browser.new_browser_cdp_session()
    info = await cdp.send("SystemInfo.getProcessInfo")
    await cdp.detach()
    return next(p["id"] for p in info["processInfo"] if p["type"] == "browser")


class KillAt(Policy):
    """Plays a script, killing the Chromium this env launched (by its pid) before the listed steps."""

    def __init__(self, steps: list[dict], kill_at: set[int]) -> None:
        self.script, self.kill_at, self.killed = ScriptPolicy(steps), kill_at, []

    async def reset(self, task):
        await self.script.reset(task)

    async def decide(self, ctx):
        if ctx.index in self.kill_at:
            pid = await _browser_pid(ctx.env)
            os.kill(pid, signal.SIGKILL)
            self.killed.append(pid)
        return await self.script.decide(ctx)


async def test_chromium_killed_mid_episode_relaunches_and_continues(sites, tmp_path):
    steps = [
        {"goto": "/page/one"},
        {"goto": "/page/two"},
        {"goto": "/page/three"},
        {"goto": "/page/four"},
        {"expect": {"text": "four"}},
    ]
    policy = KillAt(steps, kill_at={2})
    env = BrowserEnv(settle_timeout=1.5)
    try:
        episode = await Agent(env, policy, recorder=Recorder(tmp_path)).run(
            Task(instruction="k", url=_url(sites, "/start"))
        )
        new_pid = await _browser_pid(env)
    finally:
        await env.aclose()
    assert episode.status == "success", episode.message
    assert new_pid != policy.killed[0]
    loaded = load_episode(episode.path)
    crashed = loaded.steps[2]
    assert crashed.outcome["ok"] is False and "crashed" in crashed.outcome["error"]
    after = loaded.steps[3]  # the first look after the relaunch: back at the last page seen …
    assert after.observation["url"].endswith("/page/two")
    assert "the browser crashed and was restarted" in after.observation["events"]
    assert after.action["url"] == "/page/three"  # … and the script plays the step that crashed again
    assert loaded.steps[4].observation["url"].endswith("/page/three")
    assert loaded.steps[5].observation["url"].endswith("/page/four")  # and it went on from there


async def test_chromium_killed_twice_ends_as_env_error_with_every_step(sites, tmp_path):
    steps = [{"goto": f"/page/{i}"} for i in range(6)]
    policy = KillAt(steps, kill_at={1, 3})
    env = BrowserEnv(settle_timeout=1.5)
    try:
        episode = await Agent(env, policy, recorder=Recorder(tmp_path)).run(
            Task(instruction="k2", url=_url(sites, "/start"))
        )
    finally:
        await env.aclose()
    assert episode.status == "env_error" and "no relaunch left" in episode.message
    loaded = load_episode(episode.path)
    assert loaded.finished and loaded.num_steps == len(loaded.steps) == 4
    # The first crash's step is played again after the relaunch; the second crash ends the run.
    assert [s.action["url"] for s in loaded.steps] == ["/page/0", "/page/1", "/page/1", "/page/2"]


async def test_page_that_never_finishes_loading_ends_as_timeout(sites, browser, tmp_path):
    steps = [{"goto": "/page/before"}, {"goto": "/hang"}, {"answer": "never"}]
    env = BrowserEnv(browser=browser, settle_timeout=1.0)
    try:
        episode = await Agent(env, ScriptPolicy(steps), recorder=Recorder(tmp_path), limits=Limits(max_seconds=5)).run(
            Task(instruction="hang", url=_url(sites, "/start"))
        )
    finally:
        await env.aclose()
    assert episode.status == "timeout" and "executing" in episode.message
    loaded = load_episode(episode.path)
    assert loaded.finished and [s.action["url"] for s in loaded.steps] == ["/page/before"]


async def test_a_slow_page_is_an_error_outcome_when_the_navigation_times_out(sites, browser, tmp_path):
    steps = [{"goto": "/hang"}, {"goto": "/page/after"}, {"answer": "done"}]
    env = BrowserEnv(browser=browser, settle_timeout=1.0, navigation_timeout=1.0)
    try:  # on_error="continue": the point is that the run goes on after the error outcome
        episode = await Agent(env, ScriptPolicy(steps, on_error="continue"), recorder=Recorder(tmp_path)).run(
            Task(instruction="slow", url=_url(sites, "/start"))
        )
    finally:
        await env.aclose()
    assert episode.status == "success"
    first = load_episode(episode.path).steps[0]
    assert first.outcome["ok"] is False and "Timeout" in first.outcome["error"]


class FailingModel(Policy):
    """A test double for a model-backed policy: it answers twice, then raises ModelError the way a
    policy whose server is gone does (the real ModelPolicy over HTTP is tested further down)."""

    def __init__(self) -> None:
        self.calls = 0

    async def decide(self, ctx):
        self.calls += 1
        if self.calls > 2:
            raise ModelError("the model server at http://127.0.0.1:9/v1 did not answer after 3 tries")
        return Decision(
            Click(x=10, y=10), raw='{"action": "click"}', usage=Usage(prompt_tokens=100, completion_tokens=5)
        )


async def test_model_error_keeps_the_completed_steps(sites, browser, tmp_path):
    env = BrowserEnv(browser=browser, settle_timeout=1.0)
    try:
        episode = await Agent(env, FailingModel(), recorder=Recorder(tmp_path)).run(
            Task(instruction="m", url=_url(sites, "/start"))
        )
    finally:
        await env.aclose()
    assert episode.status == "model_error" and "did not answer" in episode.message
    loaded = load_episode(episode.path)
    assert loaded.num_steps == 2 and loaded.usage.prompt_tokens == 200


async def test_token_budget(sites, browser, tmp_path):
    env = BrowserEnv(browser=browser, settle_timeout=1.0)
    try:
        episode = await Agent(env, FailingModel(), recorder=Recorder(tmp_path), limits=Limits(max_tokens=150)).run(
            Task(instruction="t", url=_url(sites, "/start"))
        )
    finally:
        await env.aclose()
    assert episode.status == "max_tokens" and load_episode(episode.path).num_steps == 2


class Repeater(Policy):
    """A tiny policy that repeats one click forever and keeps the notes it is given."""

    def __init__(self, x: int, y: int) -> None:
        self.action, self.notes = Click(x=x, y=y), []

    async def decide(self, ctx):
        self.notes.append(list(ctx.notes))
        return Decision(self.action)


async def test_same_action_on_unchanged_screen_nudges_then_stops(sites, browser, tmp_path):
    policy = Repeater(900, 900)  # empty space: nothing changes
    env = BrowserEnv(browser=browser, settle_timeout=1.0)
    try:
        episode = await Agent(env, policy, recorder=Recorder(tmp_path), loops=LoopDetector(repeats=3, grace=2)).run(
            Task(instruction="loop", url=_url(sites, "/page/still"))
        )
    finally:
        await env.aclose()
    assert episode.status == "loop" and "unchanged screen" in episode.message
    nudged = [i for i, n in enumerate(policy.notes) if any("stuck" in x for x in n)]
    assert nudged == [3], policy.notes  # told once, after the third repeat; stopped two steps later
    assert load_episode(episode.path).num_steps == 5


async def test_changing_screen_is_not_a_loop(sites, browser, tmp_path):
    env = BrowserEnv(browser=browser, settle_timeout=1.0)
    try:
        await env.reset(Task(instruction="c", url=_url(sites, "/counter")))
        box = await env.locate_text("Press")
        policy = Repeater(*env.grid.point_to_grid(*box.center, *env.viewport))  # the text changes per click
        episode = await Agent(env, policy, recorder=Recorder(tmp_path), limits=Limits(max_steps=6)).run(
            Task(instruction="count", url=_url(sites, "/counter"))
        )
        text = await env.page_text()
    finally:
        await env.aclose()
    assert episode.status == "max_steps"
    assert "clicked 6" in text


async def test_oscillation_between_two_pages_is_a_loop(sites, browser, tmp_path):
    steps = [{"goto": "/page/a"}, {"goto": "/page/b"}] * 8
    env = BrowserEnv(browser=browser, settle_timeout=1.0)
    try:
        episode = await Agent(env, ScriptPolicy(steps), recorder=Recorder(tmp_path)).run(
            Task(instruction="osc", url=_url(sites, "/page/b"))
        )
    finally:
        await env.aclose()
    assert episode.status == "loop" and "back and forth" in episode.message
    assert load_episode(episode.path).num_steps == 8


# --- the model server failing mid-episode (ModelPolicy over real HTTP) ------------------------------

# Answers in the json profile's format (its user turns carry the page title, which one test checks).
TERMINATE = '{"thought": "done", "action": {"action": "terminate", "status": "success"}}'
CLICK = '{"thought": "go", "action": {"action": "click", "x": 500, "y": 500}}'


class KillServerBefore(Policy):
    """Wraps a ModelPolicy and shuts its server down (socket closed) before step ``at``."""

    def __init__(self, policy: ModelPolicy, server: FaultServer, at: int) -> None:
        self.policy, self.server, self.at = policy, server, at

    async def reset(self, task):
        await self.policy.reset(task)

    async def decide(self, ctx):
        if ctx.index == self.at:
            self.server.httpd.shutdown()
            self.server.httpd.server_close()
        return await self.policy.decide(ctx)


async def test_model_server_killed_mid_episode(sites, browser, tmp_path):
    clicks = [
        '{"thought":"a","action":{"action":"click","x":100,"y":100}}',
        '{"thought":"b","action":{"action":"click","x":200,"y":200}}',
    ]
    server = FaultServer(["ok:" + c for c in clicks] + ["ok:" + TERMINATE]).__enter__()
    policy = ModelPolicy(_client(server.url, max_retries=2), profile="json")
    env = BrowserEnv(browser=browser, settle_timeout=1.0)
    try:
        episode = await Agent(env, KillServerBefore(policy, server, at=2), recorder=Recorder(tmp_path)).run(
            Task(instruction="m", url=_url(sites, "/page/model"))
        )
    finally:
        await policy.aclose()
        await env.aclose()
    assert episode.status == "model_error" and server.url in episode.message
    loaded = load_episode(episode.path)
    assert loaded.finished and [s.action["x"] for s in loaded.steps] == [100, 200]
    assert loaded.usage.prompt_tokens == 200  # both completed steps kept their usage


async def test_model_server_answering_garbage_mid_episode(sites, browser, tmp_path):
    with FaultServer(["ok:" + CLICK, "garbage"]) as server:  # the last entry repeats
        policy = ModelPolicy(_client(server.url, max_retries=2), profile="json")
        env = BrowserEnv(browser=browser, settle_timeout=1.0)
        try:
            episode = await Agent(env, policy, recorder=Recorder(tmp_path)).run(
                Task(instruction="g", url=_url(sites, "/page/model"))
            )
        finally:
            await policy.aclose()
            await env.aclose()
    assert episode.status == "model_error"
    assert len(server.requests) == 1 + 3  # one good answer, then 1 + max_retries tries
    loaded = load_episode(episode.path)
    assert loaded.finished and loaded.num_steps == 1 and loaded.steps[0].outcome["ok"]


async def test_injection_page_text_stays_out_of_the_system_prompt_and_the_gate_holds(sites, browser, tmp_path):
    """A model that obeys the page asks to go to another host: the gate refuses, the model is told
    so in its next user turn, the host never sees a request, and no page text is in the system prompt."""
    a = sites.ports[0]
    evil = f"http://evil.test:{a}/collect"
    go = '{"thought":"the page says so","action":{"action":"navigate","url":"' + evil + '"}}'
    url_policy = UrlPolicy.of(allow=[f"127.0.0.1:{a}"])
    with FaultServer(["ok:" + go, "ok:" + TERMINATE]) as server:
        policy = ModelPolicy(_client(server.url), profile="json")
        env = BrowserEnv(browser=browser, settle_timeout=1.0, url_policy=url_policy)
        try:
            episode = await Agent(env, policy, recorder=Recorder(tmp_path), gate=Gate(url_policy)).run(
                Task(instruction="read the support page", url=_url(sites, f"/inject?to={evil}"))
            )
        finally:
            await policy.aclose()
            await env.aclose()
    assert episode.status == "success" and not sites.hit(f"evil.test:{a}")
    first, second = server.requests
    system = [m for m in first["messages"] if m["role"] == "system"]
    assert system and all("Support" not in str(m["content"]) and "evil.test" not in str(m["content"]) for m in system)
    assert "Support" in str(first["messages"][1:])  # the page's title reaches the model as observation
    assert "safety gate refused" in str(second["messages"][-1]["content"])
    assert load_episode(episode.path).steps[0].extra["gate"]["rule"] == "url_policy"


class _BuggyPolicy(Policy):
    """Clicks once, then fails the way a bug does."""

    async def decide(self, ctx):
        if ctx.index == 0:
            return Decision(action=Click(x=500, y=500), thought="first")
        raise KeyError("oops")


async def test_a_bug_in_the_policy_keeps_the_episode_and_surfaces(browser_env, sites, tmp_path):
    env = browser_env()
    with pytest.raises(KeyError):
        await Agent(env, _BuggyPolicy(), recorder=Recorder(tmp_path)).run(
            Task(instruction="click, then crash", url=_url(sites, "/"))
        )
    [folder] = [p for p in tmp_path.iterdir() if p.is_dir()]
    episode = load_episode(folder)
    assert episode.finished and episode.status == "error" and episode.message == "KeyError: 'oops'"
    assert episode.num_steps == 1 and episode.steps[0].action["action"] == "click"
