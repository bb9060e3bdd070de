"""What the OCR locator costs: loading the models once per process, reading one screen, and asking
again about a screen already read (cached by screenshot hash).

Reads a 1280x800 screen of the example to-do app's sign-in page, rendered by real headless
Chromium, three times with fresh caches, and prints the median milliseconds of each phase and
the ratio of a cached lookup to a full read.

    .venv/bin/python bench/ocr_locate.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))

from todo_app import TodoApp  # noqa: E402

from pixelpilot import Task  # noqa: E402
from pixelpilot.agent.locators import OcrLocator, warm_up_ocr  # noqa: E402
from pixelpilot.envs.browser import BrowserEnv  # noqa: E402


async def main() -> None:
    t0 = time.perf_counter()
    warm_up_ocr()
    load_ms = (time.perf_counter() - t0) * 1000
    with TodoApp() as app:
        env = BrowserEnv()
        try:
            obs = await env.reset(Task(instruction="bench", url=app.url))
        finally:
            await env.aclose()
    first, cached = [], []
    for _ in range(3):
        loc = OcrLocator()
        t0 = time.perf_counter()
        box = await loc.locate(obs, "Sign in")
        first.append((time.perf_counter() - t0) * 1000)
        assert box is not None, "OCR did not find 'Sign in'"
        t0 = time.perf_counter()
        await loc.locate(obs, "Password")
        cached.append((time.perf_counter() - t0) * 1000)
    f, c = statistics.median(first), statistics.median(cached)
    print(f"model load (once per process): {load_ms:.0f} ms")
    print(f"read a {obs.width}x{obs.height} screen: {f:.0f} ms (median of 3)")
    print(f"cached lookup on the same screen: {c:.2f} ms; ratio cached/read = {c / f:.1e}")


if __name__ == "__main__":
    asyncio.run(main())
