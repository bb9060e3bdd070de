"""``do:`` and model-checked expectations against the local backend serving a tiny random Qwen3-VL.

A random model's verdicts and actions mean nothing; what is checked is the path: the request is
schema-constrained, the verdict parses into {passed, reason}, the model's actions execute in real
Chromium and are recorded, and the budgets hold.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("xgrammar", reason="the local model backend needs the 'local' extra (xgrammar)")
pytest.importorskip("transformers", reason="the local model backend needs the 'local' extra (transformers)")

from pixelpilot import Agent, Recorder, ScriptPolicy, Task  # noqa: E402
from pixelpilot.agent.model_checks import model_helpers  # noqa: E402
from pixelpilot.agent.model_policy import ModelPolicy  # noqa: E402
from pixelpilot.testing.pilot import AsyncPilot, PilotError  # noqa: E402

pytest_plugins = ["pytester"]

#: Actions that always execute cleanly on a page and never end a step: a `do` must use its budget.
SAFE_ACTIONS = ("click", "scroll")


async def test_a_do_step_runs_the_models_actions_within_its_budget(server_url, browser_env, todo_app, tmp_path):
    helpers = model_helpers(ModelPolicy(server_url, actions=SAFE_ACTIONS))
    script = ScriptPolicy([{"click": "Username"}, {"do": {"task": "sign in as alice", "max_steps": 2}}], **helpers)
    try:
        episode = await Agent(browser_env(), script, recorder=Recorder(tmp_path)).run(
            Task(instruction="sign in", url=todo_app.url)
        )
    finally:
        await helpers["model"].aclose()
    assert episode.status == "failure", episode.message
    assert episode.message == "do 'sign in as alice' did not finish within 2 steps"
    model_steps = [s for s in episode.steps if s.extra.get("do") == "sign in as alice"]
    assert len(model_steps) == 2
    for s in model_steps:
        assert s.action["action"] in SAFE_ACTIONS and s.outcome["ok"], s
        assert s.raw_output and s.usage and s.usage.completion_tokens > 0 and s.pixel_action


async def test_an_expectation_gets_a_parsed_verdict(server_url, browser_env, todo_app, tmp_path):
    helpers = model_helpers(ModelPolicy(server_url))
    script = ScriptPolicy([{"expect": {"that": "the page shows a sign-in form"}}], **helpers)
    try:
        episode = await Agent(browser_env(), script, recorder=Recorder(tmp_path)).run(
            Task(instruction="check", url=todo_app.url)
        )
    finally:
        await helpers["model"].aclose()
    (check,) = episode.steps[-1].extra["checks"]
    assert check["that"] == "the page shows a sign-in form"
    assert isinstance(check["passed"], bool) and isinstance(check["reason"], str)
    if check["passed"]:
        assert episode.status == "success"
    else:
        assert episode.status == "failure" and episode.message.startswith("expected that the page shows")


async def test_the_pilot_asks_the_model(server_url, browser_env, todo_app, tmp_path):
    helpers = model_helpers(ModelPolicy(server_url, actions=SAFE_ACTIONS))
    pilot = AsyncPilot(browser_env(), name="model", out=tmp_path, **helpers)
    await pilot.goto(todo_app.url)
    with pytest.raises(PilotError, match=r"did not finish within 1 steps"):
        await pilot.do("sign in as alice", max_steps=1)
    await pilot.aclose()
    assert [s.action["action"] in SAFE_ACTIONS for s in pilot.episode.steps if "do" in s.extra] == [True]


def test_the_plugin_takes_a_server_url(pytester, server_url, todo_app):
    pytester.makepyfile(f'''
        from pixelpilot.testing.pilot import PilotError

        def test_expect(pilot):
            pilot.goto("{todo_app.url}")
            try:
                verdict = pilot.expect("the page shows a sign-in form")
            except PilotError as e:
                assert str(e).startswith("failure: expected that the page shows a sign-in form")
            else:
                assert verdict.passed and isinstance(verdict.reason, str)
    ''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--pilot-model-url", server_url, timeout=240)
    result.assert_outcomes(passed=1)


def test_the_cli_runs_a_script_with_a_do_step(server_url, todo_app, tmp_path):
    taskfile = tmp_path / "do.yaml"
    taskfile.write_text("instruction: t\nsteps:\n  - click: Username\n  - do: {task: sign in as alice, max_steps: 1}\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pixelpilot.cli",
            "run",
            str(taskfile),
            "--url",
            todo_app.url,
            "--model-url",
            server_url,
            "--out",
            str(tmp_path / "runs"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode in (0, 1), out
    (episode_dir,) = (tmp_path / "runs").iterdir()
    episode = json.loads((episode_dir / "episode.json").read_text())
    # The model took the do: step (one action, or it said it was done at once); it was not missing.
    assert episode["status"] in ("success", "failure") and "needs a model" not in (episode["message"] or ""), episode
    assert episode["policy"] == "ScriptPolicy"


async def test_a_model_grounded_click_lands_on_the_models_point(server_url, browser_env, todo_app, tmp_path):
    helpers = model_helpers(ModelPolicy(server_url))
    script = ScriptPolicy([{"click": {"text": "the Sign in button", "by": "model"}}], **helpers)
    try:
        episode = await Agent(browser_env(viewport=(1000, 800)), script, recorder=Recorder(tmp_path)).run(
            Task(instruction="click", url=todo_app.url)
        )
    finally:
        await helpers["model"].aclose()
    assert episode.status == "success", episode.message
    click = episode.steps[0]
    assert click.extra["target"]["by"] == "model"
    left, top, _, _ = click.extra["target"]["box"]  # the model's point_2d, scaled to the 1000x800 viewport
    assert click.pixel_action["x"] == round(left) and click.pixel_action["y"] == round(top)
