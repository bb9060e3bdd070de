"""`pixelpilot mcp` as other agents meet it: a subprocess spoken to by the MCP SDK's own client, over
stdio and over streamable HTTP, driving the example to-do app in real Chromium."""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("mcp", reason="the MCP SDK (the 'tools' extra) is not installed")
pytest.importorskip("playwright", reason="playwright (the 'browser' extra) is not installed")

import httpx
import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from PIL import Image

from pixelpilot._process import stop_group
from pixelpilot.trajectories import load_episode

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "mcp-test-token"
EXPECTED_TOOLS = {
    "screenshot",
    "click",
    "type",
    "press",
    "scroll",
    "drag",
    "goto",
    "find_text",
    "expect_text",
    "list_windows",
    "window",
    "write_clipboard",
    "read_clipboard",
    "end_episode",
    "run_task",
    "list_episodes",
    "episode_summary",
}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "pixelpilot.cli", *args]


def _data(result) -> dict:
    assert not result.is_error, result.content[0].text
    return result.structured_content


async def test_stdio_session_logs_in_runs_the_task_file_and_records_every_call(todo_app, tmp_path):
    out = tmp_path / "runs"
    params = StdioServerParameters(
        command=sys.executable,
        args=_cli("mcp", "--url", todo_app.url, "--out", str(out), "--approve", "yes")[1:],
        env=dict(os.environ),
        cwd=str(ROOT),
    )
    async with Client(params, read_timeout_seconds=120) as client:
        listed = await client.list_tools()
        assert {t.name for t in listed.tools} == EXPECTED_TOOLS

        shot = await client.call_tool("screenshot", {})
        assert not shot.is_error and shot.content[0].type == "image"
        png = base64.b64decode(shot.content[0].data)
        assert Image.open(io.BytesIO(png)).size == (1280, 800)
        assert todo_app.url in shot.content[1].text

        # Log in: the username field by grid coordinates (found by its text), the rest by text.
        field = _data(await client.call_tool("find_text", {"text": "Username"}))
        assert field["found"] and field["visible"] and 0 <= field["x"] <= 1000 and 0 <= field["y"] <= 1000
        clicked = _data(await client.call_tool("click", {"x": field["x"], "y": field["y"]}))
        assert clicked["steps"][0]["action"] == {"action": "click", "x": field["x"], "y": field["y"], "button": "left"}
        _data(await client.call_tool("type", {"text": "alice"}))
        _data(await client.call_tool("type", {"text": "wonderland", "into": "Password", "secret": True}))
        signed_in = _data(await client.call_tool("click", {"text": "Sign in"}))
        assert signed_in["steps"][0]["target"] == "Sign in"
        _data(await client.call_tool("expect_text", {"text": "Welcome, alice"}))
        assert "alice" in [s["user"] for s in todo_app.state.snapshot().values()]
        by_dom = _data(await client.call_tool("find_text", {"text": "Welcome, alice", "by": "dom"}))
        by_ocr = _data(await client.call_tool("find_text", {"text": "Welcome, alice", "by": "ocr"}))
        assert by_ocr["found"] and by_ocr["by"] == "ocr"
        assert abs(by_ocr["y"] - by_dom["y"]) <= 30  # the same words on the screen, read from the pixels

        missing = await client.call_tool("click", {"text": "No such button"})
        assert missing.is_error and "No such button" in missing.content[0].text
        bad_key = await client.call_tool("press", {"keys": "hyperdrive"})
        assert bad_key.is_error and "unknown key 'hyperdrive'" in bad_key.content[0].text
        no_model = await client.call_tool("run_task", {"instruction": "Add milk", "url": todo_app.url})
        assert no_model.is_error and "model" in no_model.content[0].text
        ended = _data(await client.call_tool("end_episode", {}))
        assert ended["status"] == "success"

        ran = _data(
            await client.call_tool("run_task", {"task_file": str(ROOT / "examples/todo.yaml"), "url": todo_app.url})
        )
        (task_episode,) = ran["episodes"]
        assert task_episode["status"] == "success" and task_episode["num_steps"] > 0

        listed_eps = _data(await client.call_tool("list_episodes", {}))["result"]
        assert {e["id"] for e in listed_eps} == {ended["episode"], task_episode["id"]}
        summary = _data(await client.call_tool("episode_summary", {"episode": ended["episode"]}))
        assert summary["status"] == "success"
        report = await client.read_resource(f"pixelpilot://episodes/{ended['episode']}/report")
        assert "<html" in report.contents[0].text.lower()

    # On disk: the live episode holds every call, in order, and never the password.
    live = load_episode(out / ended["episode"])
    calls = [c["tool"] for s in live.steps for c in s.extra.get("calls", [])]
    assert calls == [
        *["screenshot", "find_text", "click", "type", "type", "click", "expect_text"],
        *["find_text", "find_text", "click", "press"],
    ]
    failed = live.steps[-1].extra["calls"][-2]
    assert failed["arguments"]["text"] == "No such button" and "error" in failed
    assert "wonderland" not in (out / ended["episode"] / "steps.jsonl").read_text()
    assert [s.action["action"] for s in live.steps][:6] == ["click", "type", "click", "type", "click", "terminate"]
    assert load_episode(out / task_episode["id"]).status == "success"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def http_mcp(todo_app, tmp_path):
    """`pixelpilot mcp --transport http` on loopback with a token (approvals refused, only the app's
    host allowed)."""
    port = _free_port()
    log = open(tmp_path / "mcp.log", "w")
    proc = subprocess.Popen(
        _cli(
            "mcp",
            "--transport",
            "http",
            "--port",
            str(port),
            "--url",
            todo_app.url,
            "--out",
            str(tmp_path / "runs"),
            "--allow-domain",
            "127.0.0.1",
            "--token",
            TOKEN,
        ),
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the MCP server did not start:\n{(tmp_path / 'mcp.log').read_text()[-3000:]}")
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/mcp", tmp_path / "runs"
    finally:
        stop_group(proc, grace=20)
        log.close()


async def test_http_session_applies_the_gate_and_the_url_policy(http_mcp):
    url, out = http_mcp
    anonymous = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, timeout=10)
    assert anonymous.status_code == 401
    authorized = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {TOKEN}"}, timeout=httpx2.Timeout(30, read=300), follow_redirects=False
    )
    async with (
        authorized,
        Client(streamable_http_client(url, http_client=authorized), read_timeout_seconds=60) as client,
    ):
        assert {t.name for t in (await client.list_tools()).tools} == EXPECTED_TOOLS
        first = _data(await client.call_tool("type", {"text": "alice", "into": "Username"}))["episode"]
        refused = await client.call_tool("type", {"text": "wonderland", "into": "Password", "secret": True})
        assert refused.is_error and "safety gate refused" in refused.content[0].text
        assert "wonderland" not in refused.content[0].text
        blocked = await client.call_tool("goto", {"url": "http://example.com/"})
        assert blocked.is_error and "not on the allowlist" in blocked.content[0].text
        # A third refusal ends the episode (the gate's limit); the next call starts a new one.
        third = await client.call_tool("goto", {"url": "http://example.org/"})
        assert third.is_error and "the episode ended (blocked" in third.content[0].text
        shot = await client.read_resource("pixelpilot://screenshot")
        assert base64.b64decode(shot.contents[0].blob).startswith(b"\x89PNG")
        second = _data(await client.call_tool("end_episode", {"status": "failure"}))
    assert second["episode"] != first and second["status"] == "failure"
    episode = load_episode(out / first)
    gates = [s.extra.get("gate", {}).get("verdict") for s in episode.steps]
    assert episode.status == "blocked" and gates.count("refused") == 1 and gates.count("deny") == 2
    assert "wonderland" not in json.dumps([s.model_dump(mode="json") for s in episode.steps])


@pytest.mark.parametrize("command", ["mcp", "server"])
def test_listening_beyond_loopback_needs_a_token(command):
    args = ["--transport", "http"] if command == "mcp" else []
    env = {k: v for k, v in os.environ.items() if k != "PIXELPILOT_API_TOKEN"}
    proc = subprocess.run(
        _cli(command, *args, "--host", "0.0.0.0"), capture_output=True, text=True, cwd=ROOT, env=env, timeout=60
    )
    assert proc.returncode == 2 and "API token" in proc.stderr


async def test_run_task_with_an_instruction_is_driven_by_the_configured_model(todo_app, server_url, tmp_path):
    params = StdioServerParameters(
        command=sys.executable,
        args=_cli("mcp", "--out", str(tmp_path), "--model-url", server_url, "--max-steps", "2")[1:],
        env=dict(os.environ),
        cwd=str(ROOT),
    )
    async with Client(params, read_timeout_seconds=300) as client:
        ran = _data(await client.call_tool("run_task", {"instruction": "Sign in as alice", "url": todo_app.url}))
    (episode,) = ran["episodes"]
    recorded = load_episode(tmp_path / episode["id"])
    assert recorded.policy == "ModelPolicy" and recorded.task.instruction == "Sign in as alice"
    assert recorded.num_steps >= 1 and all(s.raw_output for s in recorded.steps)
