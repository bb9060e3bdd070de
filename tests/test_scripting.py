"""Task-file scripts: ``vars:`` with ``${NAME}``, secrets kept out of everything recorded, ``do:``
and ``expect: {that: …}`` steps' checks, and their file:line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from pixelpilot.actions import Task, VarError, resolve_vars, substitute
from pixelpilot.agent import Agent, ScriptPolicy, TaskFileError, load_task_file
from pixelpilot.trajectories import Recorder, Redactor, write_report

SECRET = "wonderland"  # the example app's password

TASK = """\
name: secret-login
instruction: Sign in with the password from the environment.
vars:
  user: alice
  password: {env: PIXELPILOT_TEST_PASSWORD, secret: true}
steps:
  - type: {text: "${user}", into: Username}
  - type: {text: "${password}", into: Password}
  - click: Sign in
  - expect: {text: "Welcome, ${user}"}
  - expect: {text: "${password} is never shown", timeout: 0.5}
"""


def test_substitution_and_resolution():
    values, secrets = resolve_vars(
        load_task_file_text("vars: {a: x, n: 3, s: {env: S, secret: true}}").vars, {"S": "hush"}
    )
    assert values == {"a": "x", "n": "3", "s": "hush"} and secrets == {"s": "hush"}
    assert substitute({"type": ["${a}-${n}", "$${a}"]}, values) == {"type": ["x-3", "${a}"]}
    with pytest.raises(VarError, match=r"\$\{b\} is not defined"):
        substitute("${b}", values)
    with pytest.raises(VarError, match="environment variable S is not set"):
        resolve_vars(Task(instruction="t", vars={"s": {"env": "S"}}).vars, {})


def test_redactor_masks_longest_first_and_follows_its_parent():
    parent = Redactor()
    r = Redactor({"pin": "1234"}, parent=parent)
    parent.add("token", "1234abcd")
    assert r.redact({"k": ["x 1234abcd y", "1234"], "1234": 5}) == {"k": ["x ${token} y", "${pin}"], "${pin}": 5}


def load_task_file_text(text: str) -> Task:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = Path(d, "t.yaml")
        p.write_text("instruction: t\n" + text)
        return load_task_file(p)


@pytest.mark.parametrize(
    "body, line, message",
    [
        ("steps:\n  - type: ${who}\n", 3, r"\$\{who\} is not defined; add it under `vars:`"),
        ("vars:\n  a: {env: A, secrte: true}\n", 3, r"vars\.a: a variable is a value"),
        ("vars: [a]\n", 2, r"`vars:` must be a mapping"),
        ("steps:\n  - do: {task: x, max_steps: 0}\n", 3, r"max_steps must be a whole number"),
        ("steps:\n  - click: {text: Go, by: xpath}\n", 3, r"by='xpath'; expected one of auto, dom, ocr, model"),
        ("steps:\n  - expect: {that: ''}\n", 3, r"expect that needs a statement"),
        (
            "steps:\n  - click: {text: Go, nht: 2}\n",
            3,
            r"click: unknown option 'nht'; a text target takes text, by, nth",
        ),
        ("steps:\n  - click: {text: Go, nth: 0}\n", 3, r"nth must be a whole number from 1 \(the first match\), got 0"),
        ("steps:\n  - click: {text: Go, within: {x1: 0, y1: 0, x2: 1200, y2: 9}}\n", 3, r"within: x2=1200 is not on"),
        ("steps:\n  - click: {text: Go, within: {x1: 600, y1: 0, x2: 100, y2: 9}}\n", 3, r"within needs x1 < x2"),
        ("steps:\n  - click: {text: Go, within: [0, 0, 9, 9]}\n", 3, r"within is a grid region"),
        ("steps:\n  - click: {text: Go, nth: 2, strict: true}\n", 3, r"nth and strict contradict"),
        ("steps:\n  - click: {text: Go, strict: yes please}\n", 3, r"strict is true or false"),
        ("steps:\n  - click: {text: Go, by: model, near: Stop}\n", 3, r"by: model points at one thing"),
        ("steps:\n  - click: {x: 5, y: 5, near: Go}\n", 3, r"unknown option 'near' for a grid point"),
        ("steps:\n  - type: {text: a, into: {text: Name, nth: -1}}\n", 3, r"type into: nth must be"),
        ("steps:\n  - expect: {text: Hi, timout: 3}\n", 3, r"expect: unknown option 'timout'"),
        ("steps:\n  - expect: {text: Hi, timeout: 0}\n", 3, r"timeout must be seconds between 0 and 600"),
        ("steps:\n  - expect: {text: Hi, by: model}\n", 3, r"expect: by='model'; expected one of auto, dom, ocr"),
    ],
)
def test_task_file_errors_name_the_line(tmp_path, body, line, message):
    p = tmp_path / "bad.yaml"
    p.write_text("instruction: t\n" + body)
    with pytest.raises(TaskFileError, match=message) as e:
        load_task_file(p)
    assert e.value.line == line, str(e.value)


def test_a_secret_never_lands_in_the_episode_the_report_or_the_cli_output(todo_app, tmp_path):
    taskfile = tmp_path / "login.yaml"
    taskfile.write_text(TASK)
    out = tmp_path / "runs"
    env = {**os.environ, "PIXELPILOT_TEST_PASSWORD": SECRET}
    proc = subprocess.run(
        [sys.executable, "-m", "pixelpilot.cli", "run", str(taskfile), "--url", todo_app.url, "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # It really signed in with the secret, then failed on purpose on a step that names it.
    assert proc.returncode == 1, proc.stdout + proc.stderr
    state = json.load(urllib.request.urlopen(todo_app.url + "api/state"))
    assert any(s["user"] == "alice" for s in state.values())
    (episode,) = [p for p in out.iterdir() if p.is_dir()]
    report = write_report(episode)
    texts = {
        p.name: p.read_text()
        for p in (episode / "steps.jsonl", episode / "episode.json", episode / "task.json", report)
    }
    texts["cli"] = proc.stdout + proc.stderr
    for name, text in texts.items():
        assert SECRET not in text, f"the secret leaked into {name}"
    assert "${password} is never shown" in json.loads(texts["episode.json"])["message"]
    assert "'${password}'" in texts["cli"]  # the type step's line shows the placeholder
    steps = [json.loads(line) for line in texts["steps.jsonl"].splitlines()]
    assert {"action": "type", "text": "${password}"} in [s["action"] for s in steps]
    assert {"action": "type", "text": "alice"} in [s["action"] for s in steps]  # not a secret: kept


def test_the_cli_names_an_unset_secret_before_starting(tmp_path):
    taskfile = tmp_path / "login.yaml"
    taskfile.write_text(TASK)
    env = {k: v for k, v in os.environ.items() if k != "PIXELPILOT_TEST_PASSWORD"}
    proc = subprocess.run(
        [sys.executable, "-m", "pixelpilot.cli", "run", str(taskfile)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "vars.password: the environment variable PIXELPILOT_TEST_PASSWORD is not set" in proc.stderr


async def test_do_and_expect_that_without_a_model_fail_saying_so(browser_env, todo_app, tmp_path):
    for step, needs in (
        ({"do": "sign in"}, "a `do:` step needs a model"),
        ({"expect": {"that": "the page is blank"}}, "needs a model to judge it"),
    ):
        agent = Agent(browser_env(), ScriptPolicy([step]), recorder=Recorder(tmp_path))
        episode = await agent.run(Task(instruction="t", url=todo_app.url))
        assert episode.status == "failure" and needs in episode.message


async def test_a_scripted_action_that_fails_ends_the_script(browser_env, todo_app, tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/"
    agent = Agent(browser_env(), ScriptPolicy([{"goto": dead}, {"click": "Sign in"}]), recorder=Recorder(tmp_path))
    episode = await agent.run(Task(instruction="t", url=todo_app.url))
    assert episode.status == "failure"
    assert episode.message.startswith('{"goto": "' + dead + '"}: ') and "ERR_CONNECTION_REFUSED" in episode.message
    assert [s.action["action"] for s in episode.steps] == ["navigate", "terminate"]


# --- which of several matches: the ranking rule and the step's nth, near, within, role, strict ---
# tests/pages/rows.html shows "Delete" five times: a heading, the buttons of two rows (Buy milk at
# y 100, Walk dog at y 300), a link "Delete all", and a button far below the 800×600 viewport.


async def _rows(browser_env, pages_url, tmp_path, steps, **options):
    env = browser_env(viewport=(800, 600))
    agent = Agent(env, ScriptPolicy(steps, **options), recorder=Recorder(tmp_path))
    episode = await agent.run(Task(instruction="t", url=pages_url + "rows.html"))
    return episode, await env.page.evaluate("window.hits")


async def test_the_dom_gives_every_candidate_and_the_ranking_puts_a_visible_exact_button_first(browser_env, pages_url):
    from pixelpilot.envs import rank_matches

    env = browser_env(viewport=(800, 600))
    await env.reset(Task(instruction="t", url=pages_url + "rows.html"))
    found = await env.find_text("delete")
    assert {m.source for m in found} == {"dom"}
    assert sorted((m.role, m.text, m.exact, m.visible) for m in found) == [
        ("a", "Delete all", False, True),
        ("button", "Delete", True, False),  # below the viewport
        ("button", "Delete", True, True),
        ("button", "Delete", True, True),
        ("h2", "Delete", True, True),
    ]
    ranked = rank_matches(found)
    # exact, visible, a control, top first: the Buy milk row's button; the heading before the far button
    assert [(m.role, m.visible, round(m.box[1])) for m in ranked] == [
        ("button", True, 100),
        ("button", True, 300),
        ("h2", True, 10),
        ("button", False, 2000),
        ("a", True, 200),
    ]
    assert ranked[0].box.center == (await env.locate_text("Delete")).center
    # near the last pointer (the Walk dog row), the Walk dog button comes first
    assert rank_matches(found, near=(100, 330))[0].box[1] == 300
    assert [m.text for m in await env.find_text("Delete", role="link")] == ["Delete all"]


@pytest.mark.parametrize(
    "target, hit",
    [
        ({"text": "Delete", "nth": 2}, "milk"),  # reading order: the heading is the first
        ({"text": "Delete", "nth": 3}, "dog"),
        ({"text": "Delete", "near": "Walk dog"}, "dog"),
        ({"text": "Delete", "within": {"x1": 0, "y1": 400, "x2": 1000, "y2": 700}}, "dog"),
        ({"text": "Delete", "role": "link"}, "all"),
        ({"text": "Delete", "nth": 4}, "far"),  # below the viewport: scrolled into view, then clicked
    ],
)
async def test_a_step_says_which_match_it_means(browser_env, pages_url, tmp_path, target, hit):
    episode, hits = await _rows(browser_env, pages_url, tmp_path, [{"click": target}])
    assert episode.status == "success", episode.message
    assert hits == [hit]
    recorded = episode.steps[-2].extra["target"]  # the click (the last step ends the script)
    assert "ambiguous" not in recorded and recorded["source"] == "dom"
    assert recorded["role"] == ("a" if hit == "all" else "button")


async def test_an_ambiguous_pick_is_recorded_with_its_candidates_and_follows_the_pointer(
    browser_env, pages_url, tmp_path, caplog
):
    steps = [{"click": "Delete"}, {"click": {"text": "Delete", "nth": 3}}, {"click": "Delete"}]
    episode, hits = await _rows(browser_env, pages_url, tmp_path, steps)
    assert episode.status == "success", episode.message
    # the first by the rule; then, after the pointer went to the Walk dog row, the one nearest it
    assert hits == ["milk", "dog", "dog"]
    first = episode.steps[0].extra["target"]
    assert first["ambiguous"] is True and first["matches"] == 4
    assert first["text"] == "Delete" and first["role"] == "button"
    candidates = first["candidates"]
    assert [(c["role"], c["source"], round(c["box"][1])) for c in candidates] == [
        ("button", "dom", 100),
        ("button", "dom", 300),
        ("h2", "dom", 10),
        ("button", "dom", 2000),
    ]  # the exact matches, ranked; the link only contains the text
    assert all(c["text"] == "Delete" and len(c["box"]) == 4 for c in candidates)
    assert "things match 'Delete' equally well" in caplog.text


async def test_strict_fails_an_ambiguous_step_listing_the_candidates(browser_env, pages_url, tmp_path):
    episode, hits = await _rows(browser_env, pages_url, tmp_path, [{"click": {"text": "Delete", "strict": True}}])
    assert episode.status == "failure" and hits == []
    assert episode.message.startswith("'Delete' matches 4 things and the step is strict: 'Delete' (button) at {x1: ")
    assert episode.message.count("(button)") == 3 and "(h2)" in episode.message
    assert episode.message.endswith("say which with nth, near, within or role")
    # one match left by the filters: strict passes
    one = {"click": {"text": "Delete", "role": "link", "strict": True}}
    episode, hits = await _rows(browser_env, pages_url, tmp_path, [one])
    assert episode.status == "success" and hits == ["all"]


async def test_a_choice_that_matches_nothing_says_what_there_is(browser_env, pages_url, tmp_path):
    for target, message in (
        ({"nth": 9}, "nth: 9, but 5 things match 'Delete' on the page: 'Delete' (h2) at"),
        ({"within": {"x1": 900, "y1": 0, "x2": 1000, "y2": 100}}, "no element with text 'Delete' on the page within"),
        ({"role": "checkbox"}, "no element with text 'Delete' on the page with role 'checkbox'"),
        ({"near": "Feed cat"}, "'Feed cat' (near:) is not on the page"),
    ):
        steps = [{"click": {"text": "Delete", "by": "dom", **target}}]
        episode, hits = await _rows(browser_env, pages_url, tmp_path, steps, locate_timeout=0.3)
        assert episode.status == "failure" and hits == []
        assert message in episode.message, episode.message


async def test_the_pilot_says_which_match_as_a_task_file_does(browser_env, pages_url, tmp_path):
    from pixelpilot.testing.pilot import AsyncPilot, PilotError

    env = browser_env(viewport=(800, 600))
    pilot = AsyncPilot(env, out=tmp_path)
    await pilot.goto(pages_url + "rows.html")
    await pilot.click("Delete", near="Walk dog")
    await pilot.click("Delete", role="link", strict=True)
    await pilot.click("Delete", within={"x1": 0, "y1": 100, "x2": 1000, "y2": 300})
    assert await env.page.evaluate("window.hits") == ["dog", "all", "milk"]
    with pytest.raises(PilotError, match="'Delete' matches 4 things and the step is strict"):
        await pilot.click("Delete", strict=True)
    assert await env.page.evaluate("window.hits") == ["dog", "all", "milk"]
