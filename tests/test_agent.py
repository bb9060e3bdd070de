"""The agent loop end to end: scripts in real Chromium, statuses, budgets, and the episode on disk."""

from __future__ import annotations

import json
import urllib.request

import pytest

from pixelpilot import Agent, Limits, Policy, Recorder, ScriptPolicy, Task, load_episode
from pixelpilot.actions import Click, Wait
from pixelpilot.agent import Decision, StepContext, load_task_file

ROOT_EXAMPLES = __import__("pathlib").Path(__file__).resolve().parent.parent / "examples"


def app_state(app) -> dict:
    with urllib.request.urlopen(app.url + "api/state", timeout=5) as r:
        return json.load(r)


async def test_example_task_really_changes_the_app(browser_env, todo_app, tmp_path):
    task = load_task_file(ROOT_EXAMPLES / "todo.yaml").model_copy(update={"url": todo_app.url})
    before = set(app_state(todo_app))
    episode = await Agent(browser_env(), ScriptPolicy(), recorder=Recorder(tmp_path)).run(task)
    assert episode.status == "success", episode.message
    (session,) = [s for k, s in app_state(todo_app).items() if k not in before]
    assert session["user"] == "alice"
    assert [(t["title"], t["done"]) for t in session["todos"]] == [("Buy milk", True), ("Water the plants", False)]

    loaded = load_episode(episode.path)
    assert loaded.finished and loaded.status == "success"
    assert loaded.num_steps == len(loaded.steps) == episode.num_steps
    clicks = [s for s in loaded.steps if s.action["action"] == "click"]
    # Text targets were resolved to coordinate clicks that keep the target.
    assert {s.extra["target"]["text"] for s in clicks} >= {"Username", "Sign in", "Done: Buy milk"}
    for step in loaded.steps:
        shot = tmp_path / episode.id / step.screenshot
        assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert step.observation["width"] == 1280 and step.grid == 1000
        assert "decide" in step.timings and "record" in step.timings
    for step in clicks:
        px = step.pixel_action
        box = step.extra["target"]["box"]
        assert box[0] <= px["x"] <= box[0] + box[2] and box[1] <= px["y"] <= box[1] + box[3]


async def test_failed_expectation_fails_with_a_clear_message(browser_env, todo_app, tmp_path):
    task = Task(instruction="x", url=todo_app.url, steps=[{"expect": {"text": "Dashboard", "timeout": 0.3}}])
    episode = await Agent(browser_env(), ScriptPolicy(), recorder=Recorder(tmp_path)).run(task)
    assert episode.status == "failure"
    assert episode.message == "expected text 'Dashboard' is not on the page"
    assert load_episode(episode.path).steps[-1].action == {"action": "terminate", "status": "failure"}


async def test_missing_click_target_fails_the_episode(browser_env, todo_app, tmp_path):
    policy = ScriptPolicy(locate_timeout=0.2)
    task = Task(instruction="x", url=todo_app.url, steps=[{"click": "Launch rockets"}])
    episode = await Agent(browser_env(), policy, recorder=Recorder(tmp_path)).run(task)
    assert episode.status == "failure" and "Launch rockets" in episode.message


async def test_off_screen_target_is_scrolled_into_view_first(browser_env, pages_url, tmp_path):
    task = Task(instruction="x", url=pages_url + "clicks.html", steps=[{"click": "Far down"}])
    env = browser_env()
    episode = await Agent(env, ScriptPolicy(), recorder=Recorder(tmp_path)).run(task)
    assert episode.status == "success"
    kinds = [s.action["action"] for s in episode.steps]
    assert kinds[0] == "scroll" and kinds[-2:] == ["click", "terminate"]
    assert (await env.page.evaluate("window.clicks"))[-1]["id"] == "tall"


class Forever(Policy):
    """A policy that never finishes."""

    async def decide(self, ctx: StepContext) -> Decision:
        return Decision(Click(x=1, y=1), thought="again")


async def test_step_budget_ends_with_max_steps(browser_env, pages_url, tmp_path):
    agent = Agent(browser_env(), Forever(), recorder=Recorder(tmp_path), limits=Limits(max_steps=3))
    episode = await agent.run(Task(instruction="x", url=pages_url + "clicks.html"))
    assert episode.status == "max_steps" and episode.num_steps == 3


class Slow(Policy):
    async def decide(self, ctx: StepContext) -> Decision:
        return Decision(Wait(seconds=0.3))


async def test_time_budget_ends_with_timeout(browser_env, pages_url, tmp_path):
    agent = Agent(browser_env(), Slow(), recorder=Recorder(tmp_path), limits=Limits(max_seconds=2.5))
    episode = await agent.run(Task(instruction="x", url=pages_url + "clicks.html"))
    assert episode.status == "timeout"
    assert 1 <= episode.num_steps <= 9


async def test_broken_env_ends_with_env_error_and_a_saved_episode(tmp_path):
    from pixelpilot.envs.browser import BrowserEnv

    env = BrowserEnv(executable_path="/nonexistent/chromium")
    episode = await Agent(env, ScriptPolicy(), recorder=Recorder(tmp_path)).run(Task(instruction="x"))
    assert episode.status == "env_error" and "/nonexistent/chromium" in episode.message
    assert load_episode(episode.path).status == "env_error"


async def test_unreachable_start_url_is_an_env_error(browser_env, tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/"
    episode = await Agent(browser_env(), ScriptPolicy(), recorder=Recorder(tmp_path)).run(
        Task(instruction="x", url=url)
    )
    assert episode.status == "env_error"
    assert url in episode.message and "ERR_CONNECTION_REFUSED" in episode.message


def test_run_sync_from_plain_code(pages_url, tmp_path):
    from pixelpilot.envs.browser import BrowserEnv

    task = Task(instruction="x", url=pages_url + "clicks.html", steps=[{"click": "TL"}, {"answer": "clicked"}])
    episode = Agent(BrowserEnv(), ScriptPolicy(), recorder=Recorder(tmp_path)).run_sync(task)
    assert episode.status == "success" and episode.answer == "clicked"


async def test_run_sync_inside_a_loop_says_to_await(tmp_path):
    from pixelpilot.envs.browser import BrowserEnv

    with pytest.raises(RuntimeError, match="await agent.run"):
        Agent(BrowserEnv(), ScriptPolicy(), recorder=Recorder(tmp_path)).run_sync("x")
