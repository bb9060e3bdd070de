"""Per-phase cost of one agent step, and what observe() adds to a bare screenshot.

Runs a 20-step scripted episode at 1280x800 against the example to-do app in real headless
Chromium, then prints the median milliseconds per phase (observe, decide, execute, record), the
median of everything per step that is not observe or execute, and the ratio of BrowserEnv.observe()
to a bare ``page.screenshot()`` measured alternately in the same run.

Targets (issue 2): observe/screenshot ratio <= 1.15; everything but observe and execute <= 10 ms.

    .venv/bin/python bench/step_overhead.py
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))

from _stats import med  # noqa: E402
from todo_app import TodoApp  # noqa: E402

from pixelpilot import Agent, Recorder, ScriptPolicy, Task  # noqa: E402
from pixelpilot.envs.browser import BrowserEnv  # noqa: E402

STEPS = [
    {"type": {"text": "alice", "into": "Username"}},  # 2 steps
    {"type": {"text": "wonderland", "into": "Password"}},  # 2
    {"click": "Sign in"},  # 1
] + [s for i in range(5) for s in ({"type": {"text": f"to-do {i}", "into": "New to-do"}}, {"press": "Enter"})]  # 15


async def main() -> None:
    with TodoApp() as app, tempfile.TemporaryDirectory() as tmp:
        env = BrowserEnv(viewport=(1280, 800))
        marks: list[float] = []
        agent = Agent(env, ScriptPolicy(), recorder=Recorder(tmp), on_step=lambda s: marks.append(time.perf_counter()))
        episode = await agent.run(Task(instruction="bench", url=app.url, steps=STEPS, max_steps=40))
        steps = [s for s in episode.steps if s.action["action"] != "terminate"]
        assert episode.status == "success", episode.message
        phases = {
            k: [s.timings[k] for s in steps if k in s.timings] for k in ("observe", "decide", "execute", "record")
        }
        # Wall time per step (between consecutive on_step calls) minus observe and execute.
        walls = [(b - a) * 1000 for a, b in zip(marks, marks[1:], strict=False)]
        rest = [
            w - s.timings.get("observe", 0) - s.timings.get("execute", 0)
            for w, s in zip(walls, steps[1:], strict=False)
        ]

        page = env.page
        bare, obs = [], []
        for _ in range(30):
            t = time.perf_counter()
            await page.screenshot(type="png", scale="css")
            bare.append(time.perf_counter() - t)
            t = time.perf_counter()
            await env.observe()
            obs.append(time.perf_counter() - t)
        await env.aclose()

    print(f"episode: {len(steps)} steps at 1280x800, status {episode.status}")
    for k, v in phases.items():
        print(f"  {k:8s} median {med(v):7.2f} ms   (n={len(v)})")
    print(f"  not observe/execute per step: median {med(rest):.2f} ms   (target <= 10)")
    ratio = med(obs) / med(bare)
    print(
        f"observe() {med(obs) * 1000:.1f} ms vs bare page.screenshot() {med(bare) * 1000:.1f} ms: "
        f"ratio {ratio:.3f}   (target <= 1.15)"
    )


if __name__ == "__main__":
    asyncio.run(main())
