"""What an action costs through ``pixelpilot mcp`` (stdio, the MCP SDK's client) against the same
action played in process by the pytest pilot, which goes through the same ``Agent.step``.

Signs in to the example to-do app, then adds to-dos with ``type`` + ``press`` (grid clicks
and keys, nothing located by text), ROUNDS times each way, alternating, and prints the median
milliseconds per action and the ratio. The difference is the protocol (JSON-RPC over a pipe) and the
service's bookkeeping.

    .venv/bin/python bench/mcp_overhead.py
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))

from mcp import Client, StdioServerParameters  # noqa: E402
from todo_app import TodoApp  # noqa: E402

from pixelpilot.envs.browser import BrowserEnv  # noqa: E402
from pixelpilot.testing.pilot import AsyncPilot  # noqa: E402

ACTIONS = 10
ROUNDS = 3


async def pilot_round(url: str, out: str) -> list[float]:
    pilot = AsyncPilot(BrowserEnv(viewport=(1280, 800)), out=out)
    try:
        await pilot.goto(url)
        await pilot.type("alice", into="Username")
        await pilot.type("wonderland", into="Password")
        await pilot.click("Sign in")
        times = []
        for i in range(ACTIONS):
            t0 = time.perf_counter()
            await pilot.type(f"to-do {i}")
            await pilot.press("Enter")
            times.append((time.perf_counter() - t0) * 500)  # per action: two actions each round
        return times
    finally:
        await pilot.aclose()


async def mcp_round(client: Client) -> list[float]:
    for call, args in (
        ("type", {"text": "alice", "into": "Username"}),
        ("type", {"text": "wonderland", "into": "Password"}),
        ("click", {"text": "Sign in"}),
    ):
        assert not (await client.call_tool(call, args)).is_error
    times = []
    for i in range(ACTIONS):
        t0 = time.perf_counter()
        assert not (await client.call_tool("type", {"text": f"to-do {i}"})).is_error
        assert not (await client.call_tool("press", {"keys": "Enter"})).is_error
        times.append((time.perf_counter() - t0) * 500)
    assert not (await client.call_tool("end_episode", {})).is_error
    return times


async def main() -> None:
    with TodoApp() as app, tempfile.TemporaryDirectory() as tmp:
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "pixelpilot.cli", "mcp", "--url", app.url, "--out", tmp, "--approve", "yes"],
            env=dict(os.environ),
            cwd=str(ROOT),
        )
        direct: list[float] = []
        served: list[float] = []
        async with Client(params, read_timeout_seconds=120) as client:
            await client.call_tool("screenshot", {})  # the server's browser starts here, not in a round
            for _ in range(ROUNDS):
                direct += await pilot_round(app.url, tmp)
                served += await mcp_round(client)
    d, s = statistics.median(direct), statistics.median(served)
    print(f"pilot in process: {d:.1f} ms per action (median of {len(direct)} pairs)")
    print(f"MCP over stdio:   {s:.1f} ms per action")
    print(f"ratio MCP/pilot:  {s / d:.2f}  (overhead {s - d:+.1f} ms per action)")


if __name__ == "__main__":
    asyncio.run(main())
