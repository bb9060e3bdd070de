"""The pytest plugin end to end: examples/test_todo_app.py passes headless, and deliberately failing
tests fail with their episode and HTML report kept and named in the test report."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pixelpilot.trajectories import load_episode

pytest_plugins = ["pytester"]

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

FAILING = """
import pytest
from todo_app import TodoApp


@pytest.fixture(scope="module")
def app():
    with TodoApp() as app:
        yield app


def test_a_step_that_fails(pilot, app):
    pilot.goto(app.url)
    pilot.type("alice", into="Username")
    pilot.type("wonderland", into="Password", secret="password")
    pilot.click("Sign in")
    pilot.expect_text("3 open, 0 done", timeout=0.5)


def test_an_assertion_that_fails(pilot, app):
    pilot.goto(app.url)
    pilot.click("Sign in")
    assert "ok" == "not ok"


@pytest.mark.pilot(max_steps=2)
def test_the_step_budget_stops_a_long_test(pilot, app):
    pilot.goto(app.url)
    pilot.click("Sign in")
    pilot.click("Sign in")
"""


def test_examples_pass_and_failures_come_with_their_episode_and_report(pytester):
    for name in ("test_todo_app.py", "todo_app.py"):
        shutil.copy(EXAMPLES / name, pytester.path / name)
    pytester.makepyfile(test_failing=FAILING)
    out = pytester.path / "runs"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--pilot-out", str(out), "--junitxml", str(pytester.path / "junit.xml"), timeout=240
    )
    result.assert_outcomes(passed=3, failed=3)

    # Both failures name their episode and report; only failed tests' episodes are kept.
    text = result.stdout.str()
    assert text.count("- pixelpilot -") == 3, text
    episodes = sorted(p for p in out.iterdir() if p.is_dir())
    assert len(episodes) == 3
    for ep_dir in episodes:
        assert f"episode: {ep_dir}" in text and f"report:  {ep_dir / 'report.html'}" in text

    by_name = {load_episode(p).task.name: load_episode(p) for p in episodes}
    stepped = by_name["test_a_step_that_fails"]
    assert stepped.status == "failure" and "expected text '3 open, 0 done' is not on the page" in stepped.message
    assert [s.action["action"] for s in stepped.steps][:2] == ["navigate", "click"]
    asserted = by_name["test_an_assertion_that_fails"]
    assert asserted.status == "failure" and asserted.message.startswith("the test failed: AssertionError")
    budget = by_name["test_the_step_budget_stops_a_long_test"]
    assert budget.status == "max_steps" and budget.num_steps == 2
    report = Path(asserted.path, "report.html").read_text()
    assert "the test failed: AssertionError" in report and "data:image/png;base64," in report

    # JUnit XML carries the paths as properties of the failing test cases.
    props = {
        (tc.get("name"), p.get("name")): p.get("value")
        for tc in ET.parse(pytester.path / "junit.xml").iter("testcase")
        for p in tc.iter("property")
    }
    assert props[("test_a_step_that_fails", "pixelpilot_episode")] == stepped.path

    # The secret typed with secret="password" is masked in everything kept.
    for f in Path(stepped.path).rglob("*"):
        if f.suffix in (".json", ".jsonl", ".html"):
            assert "wonderland" not in f.read_text(), f
    assert {"action": "type", "text": "${password}"} in [s.action for s in stepped.steps]
    assert json.loads(Path(stepped.path, "task.json").read_text())["task"]["name"] == "test_a_step_that_fails"


async def test_async_pilot_records_each_call_as_steps_of_one_episode(browser_env, todo_app, tmp_path):
    from pixelpilot.testing.pilot import AsyncPilot, PilotError

    pilot = AsyncPilot(browser_env(), name="async", out=tmp_path)
    await pilot.goto(todo_app.url)
    await pilot.type("alice", into="Username")
    await pilot.type("wonderland", into="Password", secret=True)
    await pilot.press("Enter")
    await pilot.expect_text("Welcome, alice")
    episode = await pilot.finish()
    assert episode.status == "success"
    assert [s.action["action"] for s in episode.steps] == [
        "navigate",
        "click",
        "type",
        "click",
        "type",
        "key",
        "terminate",
    ]
    assert episode.steps[4].action["text"] == "${secret}"
    with pytest.raises(PilotError, match="already ended"):
        await pilot.click("Sign in")
