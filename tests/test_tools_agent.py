"""Tool calls inside the agent loop: a scripted episode in real Chromium calls the calculator and the
search tool; the calls, their results and their errors are in the trajectory on disk, and each
result reaches the policy in the next step's notes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("playwright", reason="the browser extra provides Playwright")

from pixelpilot import Agent, Limits, Recorder, ScriptPolicy, Task, load_episode  # noqa: E402
from pixelpilot.tools.calculator import calculator_tool  # noqa: E402
from pixelpilot.tools.registry import ToolRegistry  # noqa: E402
from pixelpilot.tools.search import LocalIndex, search_tool  # noqa: E402


class NoteTakingScript(ScriptPolicy):
    """ScriptPolicy that also keeps the notes the loop hands it at each step."""

    def __init__(self, steps):
        super().__init__(steps)
        self.notes: list[list[str]] = []

    async def decide(self, ctx):
        self.notes.append(list(ctx.notes))
        return await super().decide(ctx)


async def test_scripted_episode_calls_calculator_and_search(todo_app, browser_env, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tea.md").write_text("# Tea\n\nGreen tea steeps for two minutes at 80 degrees.\n")
    (docs / "coffee.md").write_text("# Coffee\n\nEspresso takes about 25 seconds.\n")
    index = LocalIndex(tmp_path / "index.sqlite")
    index.add_folder(docs)
    tools = ToolRegistry([calculator_tool(), search_tool(index)])

    policy = NoteTakingScript(
        [
            {"action": "tool", "name": "calculator", "arguments": {"expression": "(17 + 25) * 3"}},
            {"type": {"text": "alice", "into": "Username"}},
            {"action": "tool", "name": "search", "arguments": {"query": "green tea minutes", "limit": 1}},
            {"action": "tool", "name": "calculator", "arguments": {"expression": "__import__('os')"}},
            {"answer": "126"},
        ]
    )
    env = browser_env()
    episode = await Agent(env, policy, tools=tools, recorder=Recorder(tmp_path / "runs")).run(
        Task(instruction="Compute and look things up", url=todo_app.url)
    )
    typed = await env.page.input_value("#username")

    assert episode.status == "success" and episode.answer == "126"
    assert typed == "alice"  # the browser steps between the tool calls still ran
    loaded = load_episode(episode.path)
    kinds = [s.action["action"] for s in loaded.steps]
    assert kinds == ["tool", "click", "type", "tool", "tool", "answer"]

    calc, search, refused = loaded.steps[0], loaded.steps[3], loaded.steps[4]
    assert calc.action == {"action": "tool", "name": "calculator", "arguments": {"expression": "(17 + 25) * 3"}}
    assert calc.outcome["ok"] is True and calc.outcome["info"]["result"] == "126"
    assert search.outcome["info"]["result"].startswith("1. Tea\n   " + str(docs / "tea.md"))
    assert "[Green] [tea] steeps for two [minutes]" in search.outcome["info"]["result"]
    assert refused.outcome["ok"] is False
    assert (
        refused.outcome["error"]
        == "calculator: unknown function '__import__'; allowed: " + refused.outcome["error"].split("allowed: ")[1]
    )

    # The same facts in the raw file a trainer reads.
    lines = [json.loads(line) for line in (Path(episode.path) / "steps.jsonl").read_text().splitlines()]
    assert lines[0]["outcome"]["info"]["result"] == "126" and lines[0]["outcome"]["info"]["tool"] == "calculator"

    # Each result is handed to the policy at the next step, and only then.
    assert policy.notes[1] == ["Tool calculator returned: 126"]
    assert policy.notes[2] == [] and policy.notes[3] == []
    assert policy.notes[4][0].startswith("Tool search returned: 1. Tea")
    assert policy.notes[5][0].startswith("Tool calculator returned: error: calculator: unknown function")


async def test_tool_action_without_a_registry_is_an_error_step(todo_app, browser_env, tmp_path):
    episode = await Agent(
        browser_env(),
        ScriptPolicy(
            [
                {"action": "tool", "name": "calculator", "arguments": {"expression": "1+1"}},
                {"answer": "done"},
            ]
        ),
        recorder=Recorder(tmp_path / "runs"),
    ).run(Task(instruction="x", url=todo_app.url))
    step = load_episode(episode.path).steps[0]
    assert step.outcome["ok"] is False and "no tools are available" in step.outcome["error"]


@pytest.mark.parametrize("tool_name", ["calculator", "search"])
async def test_model_policy_calls_a_tool_through_constrained_output(
    tool_name, server_url, todo_app, browser_env, tmp_path
):
    """The tiny local model, constrained to tool calls, calls each tool; calls and results are recorded.

    A random model's arguments mean nothing: the point is the path — the tool's schema in the
    grammar, the call parsed into a ``tool`` action, run by the registry, its result in the trajectory
    and in the next request.
    """
    from pixelpilot.agent.model_policy import ModelPolicy

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tea.md").write_text("# Tea\n\nGreen tea steeps for two minutes.\n")
    index = LocalIndex(tmp_path / "index.sqlite")
    index.add_folder(docs)
    tools = ToolRegistry([calculator_tool()] if tool_name == "calculator" else [search_tool(index)])
    policy = ModelPolicy(server_url, actions=("tool",), tools=tools.schemas(), max_tokens=160)
    try:
        episode = await Agent(
            browser_env(), policy, tools=tools, recorder=Recorder(tmp_path / "runs"), limits=Limits(max_steps=2)
        ).run(Task(instruction="Use the tool", url=todo_app.url))
    finally:
        await policy.aclose()
    loaded = load_episode(episode.path)
    assert loaded.status == "max_steps" and len(loaded.steps) == 2, loaded.message
    for step in loaded.steps:
        assert step.action["action"] == "tool" and step.action["name"] == tool_name
        assert step.raw_output and step.usage is not None
        assert step.outcome["info"]["tool"] == tool_name
        assert isinstance(step.outcome["info"].get("result", step.outcome["error"]), str)
