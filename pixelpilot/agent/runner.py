"""The loop: observe → decide → act → record, until the task ends or a budget runs out."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from ..actions import DEFAULT_GRID, FINAL_ACTIONS, Grid, Observation, Outcome, Task, is_coordinate_action
from ..envs import Env, EnvError
from ..trajectories import Episode, Recorder, Status, Step
from .policy import Decision, ModelError, Policy, StepContext


@dataclass(frozen=True)
class Limits:
    """Budgets for one episode. A task's own ``max_steps`` wins over ``max_steps`` here."""

    max_steps: int = 30
    max_seconds: float | None = None


class ToolRunner(Protocol):
    """Runs ``tool`` actions (the tool registry implements this)."""

    async def call(self, name: str, arguments: dict[str, Any]) -> Outcome: ...


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000


class Agent:
    """Drives one environment with one policy and records every step.

    >>> episode = await Agent(BrowserEnv(), ScriptPolicy()).run(task)   # doctest: +SKIP

    ``on_step`` is called with each recorded Step (the CLI prints a line per step with it).
    """

    def __init__(
        self,
        env: Env,
        policy: Policy,
        *,
        tools: ToolRunner | None = None,
        recorder: Recorder | None = None,
        limits: Limits = Limits(),
        grid: Grid = DEFAULT_GRID,
        on_step: Callable[[Step], None] | None = None,
    ) -> None:
        self.env = env
        self.policy = policy
        self.tools = tools
        self.recorder = recorder if recorder is not None else Recorder("runs")
        self.limits = limits
        self.grid = grid
        self.on_step = on_step

    async def run(self, task: Task | str) -> Episode:
        """Run one episode of ``task`` and return it (also on disk, under the recorder's root)."""
        task = Task.coerce(task)
        writer = self.recorder.start(
            task, env=self.env.kind, policy=type(self.policy).__name__, grid=self.grid.size
        )
        status: Status = "max_steps"
        message: str | None = None
        answer: str | None = None
        started = time.monotonic()
        max_steps = task.max_steps or self.limits.max_steps
        try:
            t0 = time.perf_counter()
            obs = await self.env.reset(task)
            timings = {"reset": _ms(t0)}
            pointer: tuple[int, int] | None = None
            notes: list[str] = []
            for index in range(max_steps):
                left = self._seconds_left(started)
                if left is not None and left <= 0:
                    status, message = "timeout", f"the {self.limits.max_seconds} s budget ran out"
                    break
                ctx = StepContext(task, obs, writer.steps, self.env, index, self.grid, pointer, notes)
                t0 = time.perf_counter()
                try:
                    decision = await asyncio.wait_for(self.policy.decide(ctx), left)
                except asyncio.TimeoutError:
                    status, message = "timeout", f"the {self.limits.max_seconds} s budget ran out while deciding"
                    break
                except ModelError as e:
                    status, message = "model_error", str(e)
                    break
                timings["decide"] = _ms(t0)
                action = decision.action

                if action.action in FINAL_ACTIONS:
                    self._record(writer, obs, decision, Outcome(ok=True), timings)
                    if action.action == "answer":
                        status, answer = "success", action.text
                    else:
                        status = action.status
                    message = decision.message
                    break

                t0 = time.perf_counter()
                if action.action == "tool":
                    outcome = await self._call_tool(action)
                else:
                    outcome = await self.env.execute(action)
                timings["execute"] = _ms(t0)
                self._record(writer, obs, decision, outcome, timings)
                if is_coordinate_action(action):
                    pointer = (getattr(action, "x2", action.x), getattr(action, "y2", action.y))
                notes = [f"Tool {action.name} returned: {outcome.info.get('result', outcome.error)}"] \
                    if action.action == "tool" else []

                t0 = time.perf_counter()
                obs = await self.env.observe()
                timings = {"observe": _ms(t0)}
            else:
                message = f"stopped after {max_steps} steps"
        except EnvError as e:
            status, message = "env_error", str(e)
        except asyncio.CancelledError:
            writer.finish("interrupted", message="the run was cancelled")
            raise
        episode = writer.finish(status, message=message, answer=answer)
        return episode

    def _seconds_left(self, started: float) -> float | None:
        if self.limits.max_seconds is None:
            return None
        return self.limits.max_seconds - (time.monotonic() - started)

    async def _call_tool(self, action: Any) -> Outcome:
        if self.tools is None:
            return Outcome(ok=False, error=f"no tools are available; cannot call {action.name!r}")
        return await self.tools.call(action.name, dict(action.arguments))

    def _record(self, writer: Any, obs: Observation, decision: Decision, outcome: Outcome,
                timings: dict[str, float]) -> None:
        step = writer.add_step(
            obs, timings=timings, model_image=decision.model_image, thought=decision.thought,
            raw_output=decision.raw, action=decision.action.model_dump(mode="json"),
            pixel_action=outcome.pixel_action, outcome=outcome.to_json(), usage=decision.usage,
            extra=decision.extra,
        )
        if self.on_step is not None:
            self.on_step(step)

    def run_sync(self, task: Task | str) -> Episode:
        """Run an episode from plain (non-async) code.

        It runs in an event loop of its own, and closes the environment at the end, since an
        environment's connections belong to the loop that opened them.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError("run_sync() was called inside an event loop; use `await agent.run(task)` there")

        async def main() -> Episode:
            try:
                return await self.run(task)
            finally:
                await self.env.close()

        return asyncio.run(main())
