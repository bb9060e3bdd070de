"""The one sync-twin rule: generated twins are current, and a twin called inside a loop says what to await."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import generate_sync  # noqa: E402

from pixelpilot._sync import run_sync  # noqa: E402
from pixelpilot.testing.pilot import AsyncPilot  # noqa: E402
from pixelpilot.testing.pilot_sync import Pilot  # noqa: E402


def test_the_generated_sync_pilot_is_current():
    on_disk = generate_sync.TARGET.read_text(encoding="utf-8")
    assert on_disk == generate_sync.render(), "AsyncPilot changed: run scripts/generate_sync.py"


def test_every_public_async_pilot_method_has_a_blocking_twin():
    import inspect

    for name, fn in vars(AsyncPilot).items():
        if name.startswith("_") or name == "aclose" or not inspect.iscoroutinefunction(fn):
            continue
        twin = getattr(Pilot, name)
        assert not inspect.iscoroutinefunction(twin)
        assert list(inspect.signature(twin).parameters) == list(inspect.signature(fn).parameters)
    assert callable(Pilot.close) and not hasattr(Pilot, "aclose")


async def _answer() -> int:
    return 42


def test_run_sync_runs_a_coroutine_in_a_loop_of_its_own():
    assert run_sync(_answer()) == 42


async def test_run_sync_inside_a_loop_refuses_and_names_what_to_await():
    coro = _answer()
    with pytest.raises(RuntimeError, match=r"use `await agent.run\(task\)` there"):
        run_sync(coro, "agent.run(task)")
    assert coro.cr_frame is None  # closed, not left to warn "never awaited"
