"""`pixelpilot server`, the HTTP job API, as its clients meet it: httpx against the server in a
subprocess, running the example app's tasks in real Chromium."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip("fastapi", reason="FastAPI (the 'server' extra) is not installed")
pytest.importorskip("playwright", reason="playwright (the 'browser' extra) is not installed")

from pixelpilot._process import stop_group
from pixelpilot.agent import load_task_file
from pixelpilot.agent.collect import RunnerConfig, collect, load_tasks
from pixelpilot.trajectories import load_episode

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "test-token-4f2a"
WAIT = {"instruction": "wait", "steps": [{"wait": 0}]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def api(todo_app, tmp_path_factory):
    """The job API on loopback with a token, allowing the app's host only; yields (base URL, out folder)."""
    folder = tmp_path_factory.mktemp("job-api")
    port = _free_port()
    log = open(folder / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pixelpilot.cli", "server", "--port", str(port), "--out", str(folder / "runs")]
        + ["--token", TOKEN, "--allow-domain", "127.0.0.1", "--concurrency", "2"],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the job API did not start:\n{(folder / 'server.log').read_text()[-3000:]}")
            time.sleep(0.2)
        yield base, folder / "runs"
    finally:
        stop_group(proc, grace=20)
        log.close()


def _client(base: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)


def _tasks_file(todo_app, folder: Path, *extra_steps: dict) -> Path:
    """Two tasks from the example task file: the whole demo, and signing in alone."""
    demo = load_task_file(ROOT / "examples/todo.yaml")
    lines = [
        {"id": "demo", "instruction": demo.instruction, "url": todo_app.url, "steps": demo.steps},
        {
            "id": "sign-in",
            "instruction": "Sign in as alice",
            "url": todo_app.url,
            "steps": [*demo.steps[:4], *extra_steps],
            "checker": {"text": "Welcome, alice"},
        },
    ]
    path = folder / "tasks.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


async def _events(client: httpx.AsyncClient, job: str, *, last: int | None = None, stop_after: int | None = None):
    """The job's server-sent events as (id, name, data), from after ``last``; ``stop_after`` hangs up early."""
    headers = {"Last-Event-ID": str(last)} if last is not None else {}
    events: list[tuple[int, str, dict]] = []
    async with client.stream("GET", f"/jobs/{job}/events", headers=headers) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line:
                key, _, value = line.partition(": ")
                fields[key] = value
                continue
            events.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
            fields = {}
            if stop_after is not None and len(events) >= stop_after:
                break  # leaving the block closes the connection mid-job
    return events


async def test_a_batch_streams_its_events_and_writes_what_collect_writes(api, todo_app, tmp_path):
    base, out = api
    tasks = _tasks_file(todo_app, tmp_path)
    async with _client(base) as client:
        submitted = await client.post(
            "/jobs?id=batch", content=tasks.read_bytes(), headers={"Content-Type": "application/x-ndjson"}
        )
        assert submitted.status_code == 202, submitted.text
        assert submitted.headers["location"] == "/jobs/batch"
        assert [e["id"] for e in submitted.json()["episodes"]] == ["demo-r0", "sign-in-r0"]

        events = await _events(client, "batch")
        assert [i for i, _, _ in events] == list(range(len(events)))
        assert events[-1][1] == "job" and events[-1][2]["state"] == "done"
        ended = {d["episode"]: d for _, name, d in events if name == "episode"}
        assert {k: v["status"] for k, v in ended.items()} == {"demo-r0": "success", "sign-in-r0": "success"}
        assert ended["sign-in-r0"]["reward"] == 1.0
        steps = [d for _, name, d in events if name == "step"]
        assert len(steps) == sum(d["steps"] for d in ended.values())

        status = (await client.get("/jobs/batch")).json()
        assert status["state"] == "done" and status["statuses"] == {"success": 2}
        episode = (await client.get("/jobs/batch/episodes/demo-r0")).json()
        assert episode["status"] == "success" and len(episode["steps"]) == ended["demo-r0"]["steps"]
        report = await client.get("/jobs/batch/episodes/demo-r0/report")
        assert report.status_code == 200 and "<html" in report.text.lower()

        # The same id again resumes: both episodes were done, so nothing runs.
        again = await client.post("/jobs?id=batch", content=tasks.read_bytes())
        assert again.status_code == 202
        rerun = await _events(client, "batch")
        assert not [e for e in rerun if e[1] == "step"] and rerun[-1][2]["skipped"] == 2

    await collect(load_tasks(tasks), RunnerConfig(out=tmp_path / "collect"), concurrency=2)
    for episode_id in ("demo-r0", "sign-in-r0"):
        served, collected = load_episode(out / "batch" / episode_id), load_episode(tmp_path / "collect" / episode_id)
        assert (served.status, served.reward, served.task) == (collected.status, collected.reward, collected.task)
        assert [s.action for s in served.steps] == [s.action for s in collected.steps]


async def test_refused_and_malformed_requests_get_their_documented_answers(api, todo_app):
    base, _ = api
    async with _client(base) as client:
        refused = await client.post(
            "/jobs", json={"instruction": "x", "url": "http://example.com/", "steps": [{"wait": 0}]}
        )
        assert refused.status_code == 403 and "not on the allowlist" in refused.json()["error"]
        malformed = await client.post("/jobs", content=b'{"instruction": "a"}\n{not json')
        assert malformed.status_code == 400 and "request:2" in malformed.json()["error"]
        bad_step = await client.post(
            "/jobs", json=[{"instruction": "x", "url": todo_app.url, "steps": [{"fly": "away"}]}]
        )
        assert bad_step.status_code == 400 and "unknown step 'fly'" in bad_step.json()["error"]
        no_model = await client.post("/jobs", json={"instruction": "Sign in", "url": todo_app.url})
        assert no_model.status_code == 400 and "model" in no_model.json()["error"]
        assert (await client.post("/jobs?rollouts=zero", json=WAIT)).status_code == 400
        assert (await client.post("/jobs?id=../up", json=WAIT)).status_code == 400
        assert (await client.get("/jobs/nothing-here")).status_code == 404
        assert (await client.get("/jobs/batch/episodes/..%2F..%2Fetc")).status_code == 404
    async with httpx.AsyncClient(base_url=base) as anonymous:
        assert (await anonymous.get("/jobs")).status_code == 401
        assert (await anonymous.post("/jobs", json=WAIT)).status_code == 401
        assert (await anonymous.get("/health")).status_code == 200


async def test_a_client_that_hangs_up_mid_job_loses_nothing(api, todo_app, tmp_path):
    base, out = api
    tasks = _tasks_file(todo_app, tmp_path, {"wait": 1}, {"wait": 1})
    async with _client(base) as client:
        assert (await client.post("/jobs?id=slow", content=tasks.read_bytes())).status_code == 202
        busy = await client.post("/jobs?id=slow", content=tasks.read_bytes())
        assert busy.status_code == 409 and "running" in busy.json()["error"]
        first = await _events(client, "slow", stop_after=3)
    async with _client(base) as client:  # a new connection, from where the first one stopped
        rest = await _events(client, "slow", last=first[-1][0])
        assert rest[0][0] == first[-1][0] + 1 and rest[-1][1] == "job"
        everything = await _events(client, "slow")
    assert first + rest == everything
    for episode_id in ("demo-r0", "sign-in-r0"):
        episode = load_episode(out / "slow" / episode_id)
        assert episode.finished and episode.status == "success"


async def test_two_clients_at_once(api, todo_app, tmp_path):
    base, out = api
    tasks = _tasks_file(todo_app, tmp_path).read_bytes()

    async def one(job: str) -> list:
        async with _client(base) as client:
            assert (await client.post(f"/jobs?id={job}", content=tasks)).status_code == 202
            return await _events(client, job)

    left, right = await asyncio.gather(one("left"), one("right"))
    for job, events in (("left", left), ("right", right)):
        assert events[-1][2]["state"] == "done" and events[-1][2]["statuses"] == {"success": 2}
        assert all(d["job"] == job for _, _, d in events)
        assert all(load_episode(out / job / e).status == "success" for e in ("demo-r0", "sign-in-r0"))
