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
