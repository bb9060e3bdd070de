"""The loop: observe → decide → gate → act → record, until the task ends or a budget runs out.

Every way out leaves a finished, loadable episode: success/failure (the policy said so), max_steps,
timeout, max_tokens, loop (see loops.py), blocked (the gate refused too often, or the start page is
off limits; see gate.py), env_error (after one relaunch of a crashed env), model_error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from ..actions import DEFAULT_GRID, FINAL_ACTIONS, Grid, Observation, Outcome, Task, is_coordinate_action
from ..envs import Env, EnvCrashed, EnvError, NavigationBlocked
from ..trajectories import Episode, Recorder, Status, Step
from .gate import Gate, GateDecision
from .loops import LoopDetector
from .policy import Decision, ModelError, Policy, StepContext

T = TypeVar("T")


@dataclass(frozen=True)
class Limits:
    """Budgets for one episode. A task's own ``max_steps`` wins over ``max_steps`` here."""

    max_steps: int = 30
    max_seconds: float | None = None
    #: Prompt plus completion tokens, as the model server reports them.
    max_tokens: int | None = None


class ToolRunner(Protocol):
    """Runs ``tool`` actions (the tool registry implements this)."""

    async def call(self, name: str, arguments: dict[str, Any]) -> Outcome: ...


class _Stop(Exception):
    """Ends the episode with a status."""

    def __init__(self, status: Status, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000


class Agent:
    """Drives one environment with one policy and records every step.

    >>> episode = await Agent(BrowserEnv(), ScriptPolicy()).run(task)   # doctest: +SKIP

    ``gate`` checks each action before it runs (without one, nothing is refused); ``loops`` notices
    when the agent repeats itself. ``on_step`` is called with each recorded Step.
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
        gate: Gate | None = None,
        loops: LoopDetector | None = None,
        on_step: Callable[[Step], None] | None = None,
    ) -> None:
        self.env = env
        self.policy = policy
        self.tools = tools
        self.recorder = recorder if recorder is not None else Recorder("runs")
        self.limits = limits
        self.grid = grid
        self.gate = gate if gate is not None else Gate(rules=None)
        self.loops = loops if loops is not None else LoopDetector()
        self.on_step = on_step

    async def run(self, task: Task | str) -> Episode:
        """Run one episode of ``task`` and return it (also on disk, under the recorder's root)."""
        task = Task.coerce(task)
        writer = self.recorder.start(task, env=self.env.kind, policy=type(self.policy).__name__, grid=self.grid.size)
        self.loops.reset()
        await self.policy.reset(task)
        self._started, self._recovered, self._denials = time.monotonic(), False, 0
        status: Status = "max_steps"
        answer: str | None = None
        max_steps = task.max_steps or self.limits.max_steps
        message: str | None = f"stopped after {max_steps} steps"
        try:
            t0 = time.perf_counter()
            obs = await self._bounded(self.env.reset(task), "opening the task")
            timings = {"reset": _ms(t0)}
            pointer: tuple[int, int] | None = None
            notes: list[str] = []
            for index in range(max_steps):
                ctx = StepContext(task, obs, writer.steps, self.env, index, self.grid, pointer, notes)
                t0 = time.perf_counter()
                decision = await self._bounded(self._decide(ctx), "deciding")
                timings["decide"] = _ms(t0)
                action = decision.action
                if action.action in FINAL_ACTIONS:
                    self._record(writer, ctx, decision, Outcome(ok=True), timings, {"urls": self._url_decisions()})
                    status = "success" if action.action == "answer" else action.status
                    answer = action.text if action.action == "answer" else None
                    message = decision.message
                    break

                gate = await self.gate.check(action, ctx)
                t0 = time.perf_counter()
                outcome, crash = await self._act(action, gate)
                timings["execute"] = _ms(t0)
                urls = self._url_decisions()
                self._record(writer, ctx, decision, outcome, timings, {"gate": gate.to_json(), "urls": urls})
                notes = self._notes(action, outcome, gate, urls)
                if self._denials >= self.gate.max_denials:
                    raise _Stop("blocked", f"the safety gate refused {self._denials} times; last: {notes[0]}")
                if is_coordinate_action(action):
                    pointer = (getattr(action, "x2", action.x), getattr(action, "y2", action.y))
                self._check_budgets(writer)

                signal, said = self.loops.see(obs.sha256, action.model_dump(mode="json"))
                if signal == "stop":
                    raise _Stop("loop", said)
                if signal == "nudge":
                    notes.append(said)

                t0 = time.perf_counter()
                obs = await self._recover(crash) if crash else await self._observe()
                timings = {"observe": _ms(t0)}
        except _Stop as stop:
            status, message = stop.status, stop.message
        except NavigationBlocked as e:
            status, message = "blocked", str(e)
        except EnvError as e:
            status, message = "env_error", str(e)
        except asyncio.CancelledError:
            writer.finish("interrupted", message="the run was cancelled")
            raise
        except Exception as e:  # a bug: the episode is kept, with what it was, and the error goes on up
            writer.finish("error", message=f"{type(e).__name__}: {e}")
            raise
        return writer.finish(status, message=message, answer=answer)

    # --- one step's parts ------------------------------------------------------------------------

    async def _decide(self, ctx: StepContext) -> Decision:
        try:
            return await self.policy.decide(ctx)
        except ModelError as e:
            raise _Stop("model_error", str(e)) from e

    async def _act(self, action: Any, gate: GateDecision) -> tuple[Outcome, EnvCrashed | None]:
        """Execute an allowed action; a crash becomes an error outcome (and a relaunch after it)."""
        if not gate.allowed:
            self._denials += 1
            return Outcome(
                ok=False, error=f"not executed: the safety gate refused it ({gate.rule}): {gate.reason}"
            ), None
        if action.action == "tool":
            return await self._bounded(self._call_tool(action), "running a tool"), None
        try:
            return await self._bounded(self.env.execute(action), "executing"), None
        except EnvCrashed as e:
            return Outcome(ok=False, error=f"the environment crashed: {e}", info={"crashed": True}), e

    async def _observe(self) -> Observation:
        try:
            return await self._bounded(self.env.observe(), "observing")
        except EnvCrashed as e:
            return await self._recover(e)

    async def _recover(self, crash: EnvCrashed) -> Observation:
        """Relaunch a crashed env once per episode; a second crash ends it as env_error."""
        recover: Callable[[], Awaitable[Observation]] | None = getattr(self.env, "recover", None)
        if self._recovered or recover is None:
            raise EnvError(f"{crash} (no relaunch left)" if self._recovered else str(crash))
        self._recovered = True
        return await self._bounded(recover(), "relaunching the environment")

    def _url_decisions(self) -> list[dict[str, Any]]:
        take = getattr(self.env, "url_decisions", None)
        urls: list[dict[str, Any]] = take() if take is not None else []
        self._denials += sum(1 for u in urls if not u["allowed"] and u["kind"] != "subresource")
        return urls

    def _notes(self, action: Any, outcome: Outcome, gate: GateDecision, urls: list[dict[str, Any]]) -> list[str]:
        """What the policy is told before its next decision."""
        notes = (
            [f"The safety gate refused your last action ({gate.reason}); do something else."]
            if not gate.allowed
            else []
        )
        notes += [
            f"The URL policy blocked {u['url']}: {u['reason']}."
            for u in urls
            if not u["allowed"] and u["kind"] != "subresource"
        ]
        if action.action == "tool" and gate.allowed:
            notes.append(f"Tool {action.name} returned: {outcome.info.get('result', outcome.error)}")
        return notes

    def _check_budgets(self, writer: Any) -> None:
        used = writer.usage.prompt_tokens + writer.usage.completion_tokens
        if self.limits.max_tokens is not None and used >= self.limits.max_tokens:
            raise _Stop("max_tokens", f"{used} tokens used; the budget is {self.limits.max_tokens}")

    async def _bounded(self, work: Awaitable[T], doing: str) -> T:
        """Await ``work`` within what is left of the time budget."""
        if self.limits.max_seconds is None:
            return await work
        left = self.limits.max_seconds - (time.monotonic() - self._started)
        try:
            return await asyncio.wait_for(work, max(left, 0.001))
        except TimeoutError:
            raise _Stop("timeout", f"the {self.limits.max_seconds} s budget ran out while {doing}") from None

    async def _call_tool(self, action: Any) -> Outcome:
        if self.tools is None:
            return Outcome(ok=False, error=f"no tools are available; cannot call {action.name!r}")
        return await self.tools.call(action.name, dict(action.arguments))

    def _record(
        self,
        writer: Any,
        ctx: StepContext,
        decision: Decision,
        outcome: Outcome,
        timings: dict[str, float],
        extra: dict[str, Any],
    ) -> None:
        step = writer.add_step(
            ctx.observation,
            timings=timings,
            notes=list(ctx.notes),
            model_image=decision.model_image,
            thought=decision.thought,
            raw_output=decision.raw,
            action=decision.action.model_dump(mode="json"),
            pixel_action=outcome.pixel_action,
            outcome=outcome.to_json(),
            usage=decision.usage,
            extra={**decision.extra, **{k: v for k, v in extra.items() if v}},
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
                await self.env.aclose()

        return asyncio.run(main())
