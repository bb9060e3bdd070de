"""Episodes per hour from the collector at concurrency 1, 2, 4 and 8, model latency held fixed.

The model is a double of a model server: a real HTTP server on 127.0.0.1 that speaks the OpenAI
chat-completions shape (``GET /v1/models``, ``POST /v1/chat/completions``) and answers every call
after a fixed delay (0.5 s) with a valid action — a click while the conversation is short, then
an answer — so that each episode makes ``CALLS`` model calls and ``CALLS - 1`` real clicks in real
Chromium, through the real ModelPolicy and HTTP client. What the collector adds is measured: how
well it overlaps the model's latency with the other episodes' browser work.

Target (issue 7): at concurrency 8, at least 5 times the sequential rate, on a 2-core machine.

    .venv/bin/python bench/collect_throughput.py [--latency 0.5]
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))

from todo_app import TodoApp  # noqa: E402

from pixelpilot.agent.collect import (  # noqa: E402
    EpisodeRunner,
    RunnerConfig,
    ServerPool,
    drive,
    parse_task_line,
    plan,
)
from pixelpilot.testing.http import LoopbackServer, QuietHandler, respond  # noqa: E402

LATENCY_S = 0.5
CALLS = 4  # model calls per episode: 3 clicks, then an answer
LEVELS = (1, 2, 4, 8)
ROUNDS = 2


class LatencyModelServerDouble(LoopbackServer):
    """A stand-in for a model server: OpenAI chat-completions over real HTTP, a fixed delay per call."""

    def __init__(self, latency: float = LATENCY_S, calls: int = CALLS) -> None:
        self.calls = 0
        self.lock = threading.Lock()
        double = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers do

            def do_GET(self) -> None:
                respond(self, {"object": "list", "data": [{"id": "latency-double", "object": "model"}]})

            def do_POST(self) -> None:
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                time.sleep(latency)
                with double.lock:
                    double.calls += 1
                turns = sum(m["role"] == "assistant" for m in request["messages"])
                action = (
                    {"action": "answer", "text": "done"}
                    if turns >= calls - 1
                    else {"action": "click", "x": 500, "y": 300 + 100 * turns}
                )
                if "response_format" in request:  # the json profile
                    content = json.dumps({"thought": f"step {turns}", "action": action})
                else:  # qwen3-vl, the default profile: an Action line, then one tool call
                    args = (
                        {"action": "answer", "text": "done"}
                        if action["action"] == "answer"
                        else {"action": "left_click", "coordinate": [action["x"], action["y"]]}
                    )
                    call = json.dumps({"name": "computer_use", "arguments": args})
                    content = f"Action: Step {turns}.\n<tool_call>\n{call}\n</tool_call>"
                respond(
                    self,
                    {
                        "id": "x",
                        "object": "chat.completion",
                        "model": "latency-double",
                        "choices": [
                            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
                        ],
                        "usage": {"prompt_tokens": 1000, "completion_tokens": 20, "total_tokens": 1020},
                    },
                )

        super().__init__(Handler)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"


def cpu_seconds() -> float:
    """CPU time of this process and every process under it (Chromium, Playwright's driver), from /proc,
    with the time of children already ended (a closed context's renderer) through their parents."""
    tick = os.sysconf("SC_CLK_TCK")
    parent, cpu = {}, {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                fields = open(f"/proc/{name}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue  # it just ended
            parent[int(name)], cpu[int(name)] = int(fields[1]), sum(map(int, fields[11:15])) / tick
    tree, frontier = {os.getpid()}, [os.getpid()]
    while frontier:
        kids = [p for p, pp in parent.items() if pp in frontier and p not in tree]
        tree.update(kids)
        frontier = kids
    return sum(cpu.get(p, 0.0) for p in tree)


def machine_line(latency: float) -> str:
    """What the figures were measured against: the model double, the cores and the load on them."""
    return (
        f"model double: {latency} s per call, {CALLS} calls per episode; {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f} (other work on the machine competes for them)"
    )


async def best_rates(
    levels: tuple[int, ...], rounds: int, measure: Callable[[int, int], Awaitable[float]]
) -> dict[int, float]:
    """The best rate ``measure(level, round)`` gave at each level, the levels interleaved round by
    round: bursts of other load on the machine hit every level alike."""
    rates: dict[int, float] = {}
    for round_ in range(rounds):
        for level in levels:
            rates[level] = max(rates.get(level, 0.0), await measure(level, round_))
    return rates


async def main(latency: float) -> None:
    with TodoApp() as app, LatencyModelServerDouble(latency) as model, tempfile.TemporaryDirectory() as tmp:
        runner = EpisodeRunner(RunnerConfig(out=Path(tmp), timeout=120))
        servers = ServerPool([model.url])
        try:
            task = parse_task_line({"instruction": "Click around the sign-in page, then answer.", "url": app.url})
            await drive(
                plan([task.model_copy(update={"id": "warmup"})]),
                lambda s, _: runner.run(s),
                out=tmp,
                concurrency=1,
                servers=servers,
            )  # Chromium's launch and the first HTTP connection
            print(machine_line(latency))

            async def measure(level: int, round_: int) -> float:
                episodes = max(4, 4 * level)  # four waves: steady state, not ramp-up and tail
                spec = task.model_copy(update={"id": f"c{level}-{round_}"})
                t0, c0 = time.perf_counter(), cpu_seconds()
                summary = await drive(
                    plan([spec], rollouts=episodes),
                    lambda s, _: runner.run(s),
                    out=tmp,
                    concurrency=level,
                    servers=servers,
                )
                elapsed, cpu = time.perf_counter() - t0, cpu_seconds() - c0
                assert summary.statuses == {"success": episodes}, summary.statuses
                rate = episodes * 3600 / elapsed
                print(
                    f"round {round_ + 1}, concurrency {level}: {episodes:2d} episodes in {elapsed:5.1f} s = "
                    f"{rate:6.0f} episodes/hour ({cpu / episodes:.2f} CPU s per episode)"
                )
                return rate

            rates = await best_rates(LEVELS, ROUNDS, measure)
            print("best of each:")
            for level in LEVELS:
                print(
                    f"  concurrency {level}: {rates[level]:6.0f} episodes/hour = {rates[level] / rates[1]:.2f}x sequential"
                )
            ratio = rates[8] / rates[1]
            print(
                f"concurrency 8 / sequential = {ratio:.2f}x (target >= 5x): {'met' if ratio >= 5 else 'NOT met'}; "
                f"load average now {os.getloadavg()[0]:.1f}"
            )
        finally:
            await runner.aclose()


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--latency",
        type=float,
        default=LATENCY_S,
        help="seconds per model call (a longer one shows the overlap with less CPU in the way)",
    )
    asyncio.run(main(ap.parse_args().latency))
