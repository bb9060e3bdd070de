"""The loop: observe → decide → gate → act → record, until the task ends or a budget runs out.

``Agent.run(task)`` is ``start`` (open the episode), ``step`` until it is done, ``finish`` (write it).
One step, in order: ask the policy (:meth:`Agent._decide`), let the gate check the action, execute it
(or call the tool), record the step, tell the policy what happened (notes), check budgets and loops,
and observe the screen the next step decides on. A step's failures end the episode through one table
(status.py): success/failure (the policy said so), max_steps, timeout, max_tokens, loop (loops.py),
blocked (the gate or the URL policy refused too often, or the start page is off limits), env_error
(after one relaunch of a crashed env), model_error, and error — a bug, recorded, then raised.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from .._sync import run_sync
from ..actions import DEFAULT_GRID, Action, Answer, Grid, Observation, Outcome, Task, Terminate, Tool
from ..envs import Env, EnvCrashed, EnvError, Recoverable, UrlDecision, UrlGuarded
from ..trajectories import Episode, Recorder, Status, Step, write_episode
from .gate import Gate, GateDecision
from .loops import LoopDetector
from .policy import Decision, Policy, StepContext
from .scenario import Scenario
from .state import EpisodeState
from .status import EpisodeStop, describe, status_for

T = TypeVar("T")
#: What chooses a step's action: a policy's ``decide``, or a stand-in that may have nothing to do yet.
Decide = Callable[[StepContext], Awaitable[Decision | None]]


@dataclass(frozen=True)
class Limits:
    """Budgets for one episode. A task's own ``max_steps`` wins over ``max_steps`` here."""

    max_steps: int = 30
    max_seconds: float | None = None
    #: Prompt plus completion tokens, as the model server reports them.
    max_tokens: int | None = None


DEFAULT_LIMITS = Limits()


class ToolRunner(Protocol):
    """Runs ``tool`` actions (the tool registry implements this)."""

    async def call(self, name: str, arguments: dict[str, Any]) -> Outcome: ...


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000


class Agent:
    """Drives one environment with one policy and records every step.

    >>> episode = await Agent(BrowserEnv(), ScriptPolicy()).run(task)   # doctest: +SKIP

    ``gate`` checks each action before it runs (without one, nothing is refused); ``loops`` notices
    when the agent repeats itself (each episode gets a fresh detector with its settings). ``on_step``
    is called with each recorded Step. The Agent keeps no episode state of its own: :meth:`start`
    returns an :class:`EpisodeState` that :meth:`step` advances, for callers that drive a run one
    step at a time.
    """

    def __init__(
        self,
        env: Env,
        policy: Policy,
        *,
        tools: ToolRunner | None = None,
        recorder: Recorder | None = None,
        limits: Limits = DEFAULT_LIMITS,
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

    # --- an episode --------------------------------------------------------------------------

    async def run(self, task: Task | str, *, scenario: Scenario | None = None) -> Episode:
        """Run one episode of ``task`` and return it (also on disk, under the recorder's root).

        With a ``scenario`` (a benchmark task's own program, :mod:`pixelpilot.agent.scenario`) the
        task starts and ends as the scenario says, and the episode carries its reward.
        """
        state = await self.start(task, scenario=scenario)
        while not state.done:
            await self.step(state)
        await self.judge(state)
        return self.finish(state)

    def run_sync(self, task: Task | str) -> Episode:
        """:meth:`run` from plain (non-async) code; the environment is closed at the end, since its
        connections belong to the event loop that opened them."""

        async def main() -> Episode:
            try:
                return await self.run(task)
            finally:
                await self.env.aclose()

        return run_sync(main(), "agent.run(task)")

    async def start(
        self, task: Task | str, *, episode_id: str | None = None, scenario: Scenario | None = None
    ) -> EpisodeState:
        """Open an episode: its folder on disk (named ``episode_id``, else a new id), the env at the
        task's start (then the ``scenario``'s own start, which may complete the task), the policy's
        reset, the first observation.

        An env that cannot open the task ends the episode at once (``state.done``); :meth:`finish` it.
        """
        task = Task.coerce(task)
        writer = self.recorder.start(
            task, env=self.env.kind, policy=type(self.policy).__name__, grid=self.grid.size, episode_id=episode_id
        )
        state = EpisodeState(
            task=task,
            writer=writer,
            max_steps=task.max_steps or self.limits.max_steps,
            loops=self.loops.fresh(),
            scenario=scenario,
        )
        await self._guarded(state, self._open(state))
        return state

    async def step(self, state: EpisodeState, decide: Decide | None = None) -> Step | None:
        """One step: decide, gate, act, record, observe. Returns the step it recorded, if any.

        ``decide`` stands in for the policy's ``decide`` for this step (the pytest pilot feeds its
        test's calls this way); when it returns None there is nothing to do yet and the step records
        nothing. When the step ends the episode, ``state.done`` becomes true.
        """
        if state.done:
            raise RuntimeError(f"the episode has ended ({state.status}); start another")
        recorded = len(state.steps)
        if state.index >= state.max_steps:
            state.end("max_steps", f"stopped after {state.max_steps} steps")
        else:
            await self._guarded(state, self._step(state, decide or self.policy.decide))
        return state.steps[-1] if len(state.steps) > recorded else None

    def finish(self, state: EpisodeState, status: Status | None = None, message: str | None = None) -> Episode:
        """Write the episode's ``episode.json`` and return it.

        ``status`` ends an episode that is still going (a caller that stops driving it); an episode
        that has ended keeps its own status.
        """
        if state.episode is None:
            if status is not None:
                state.end(status, message)
            if state.status is None:
                raise RuntimeError("the episode has not ended; pass the status to finish it with")
            episode = self._summary(state)
            write_episode(episode)
            state.episode = episode
        return state.episode

    async def judge(self, state: EpisodeState) -> None:
        """Ask the episode's scenario for its verdict when the episode ended without one (the policy
        stopped, a budget ran out); :meth:`finish` then records its reward."""
        if state.scenario is not None and state.verdict is None and state.done and state.episode is None:
            state.verdict = await state.scenario.judge(self.env, self._summary(state))

    def _summary(self, state: EpisodeState) -> Episode:
        """The ended episode as it will be written, with the scenario's reward if it has given one."""
        assert state.status is not None
        episode = state.writer.summarize(state.status, message=state.message, answer=state.answer)
        if state.verdict is not None:
            episode.reward, episode.raw_reward = state.verdict.reward, state.verdict.raw_reward
        return episode

    # --- one step's phases -------------------------------------------------------------------

    async def _open(self, state: EpisodeState) -> None:
        t0 = time.perf_counter()
        state.observation = await self._bounded(state, self.env.reset(state.task), "opening the task")
        if state.scenario is not None:
            state.task = await self._bounded(state, state.scenario.begin(self.env, state.task), "starting the task")
            state.writer.retask(state.task)
            state.observation = await self._bounded(state, self.env.observe(), "observing")
        state.timings = {"reset": _ms(t0)}
        await self.policy.reset(state.task)

    async def _step(self, state: EpisodeState, decide: Decide) -> None:
        ctx = state.context(self.env, self.grid)
        t0 = time.perf_counter()
        decision = await self._bounded(state, decide(ctx), "deciding")
        if decision is None:
            return
        state.timings["decide"] = _ms(t0)
        action = decision.action
        if isinstance(action, Answer | Terminate):
            self._record(state, ctx, decision, Outcome(ok=True), {"urls": self._url_decisions(state)})
            if isinstance(action, Answer):
                state.end("success", decision.message, answer=action.text)
            else:
                state.end(action.status, decision.message)
            return

        gate = await self.gate.check(action, ctx)
        t0 = time.perf_counter()
        outcome, crash = await self._act(state, action, gate)
        state.timings["execute"] = _ms(t0)
        urls = self._url_decisions(state)
        self._record(state, ctx, decision, outcome, {"gate": gate.to_json(), "urls": urls})

        state.notes = self._notes(action, outcome, gate, urls)
        if state.scenario is not None:
            verdict = await self._bounded(state, state.scenario.poll(self.env), "asking the task whether it is over")
            if verdict is not None:
                state.verdict = verdict
                state.end("success" if verdict.success else "failure", f"the task ended: {verdict.reason or 'done'}")
                return
        if state.denials >= self.gate.max_denials:
            raise EpisodeStop("blocked", f"the safety gate refused {state.denials} times; last: {state.notes[0]}")
        done = action.model_dump()
        if "x" in done:  # the pointer stays where a pointing action left it
            state.pointer = (done.get("x2", done["x"]), done.get("y2", done["y"]))
        used = state.writer.usage.prompt_tokens + state.writer.usage.completion_tokens
        if self.limits.max_tokens is not None and used >= self.limits.max_tokens:
            raise EpisodeStop("max_tokens", f"{used} tokens used; the budget is {self.limits.max_tokens}")
        signal, said = state.loops.see(ctx.observation.sha256, action.model_dump(mode="json"))
        if signal == "stop":
            raise EpisodeStop("loop", said)
        if signal == "nudge":
            state.notes.append(said)

        t0 = time.perf_counter()
        state.observation = await (self._recover(state, crash) if crash else self._observe(state))
        state.timings = {"observe": _ms(t0)}

    async def _act(self, state: EpisodeState, action: Action, gate: GateDecision) -> tuple[Outcome, EnvCrashed | None]:
        """Execute an allowed action; a crash becomes an error outcome (and a relaunch after it)."""
        if not gate.allowed:
            state.denials += 1
            why = f"not executed: the safety gate refused it ({gate.rule}): {gate.reason}"
            return Outcome(ok=False, error=why), None
        if isinstance(action, Tool):
            return await self._bounded(state, self._call_tool(action), "running a tool"), None
        try:
            return await self._bounded(state, self.env.execute(action), "executing"), None
        except EnvCrashed as e:
            return Outcome(ok=False, error=f"the environment crashed: {e}", info={"crashed": True}), e

    async def _observe(self, state: EpisodeState) -> Observation:
        try:
            return await self._bounded(state, self.env.observe(), "observing")
        except EnvCrashed as e:
            return await self._recover(state, e)

    async def _recover(self, state: EpisodeState, crash: EnvCrashed) -> Observation:
        """Relaunch a crashed env once per episode; a second crash ends it as env_error."""
        if state.recovered or not isinstance(self.env, Recoverable):
            raise EnvError(f"{crash} (no relaunch left)" if state.recovered else str(crash))
        state.recovered = True
        return await self._bounded(state, self.env.recover(), "relaunching the environment")

    def _url_decisions(self, state: EpisodeState) -> list[UrlDecision]:
        urls = self.env.url_decisions() if isinstance(self.env, UrlGuarded) else []
        state.denials += sum(1 for u in urls if not u["allowed"] and u["kind"] != "subresource")
        return urls

    def _notes(self, action: Action, outcome: Outcome, gate: GateDecision, urls: list[UrlDecision]) -> list[str]:
        """What the policy is told before its next decision."""
        notes = (
            [] if gate.allowed else [f"The safety gate refused your last action ({gate.reason}); do something else."]
        )
        notes += [
            f"The URL policy blocked {u['url']}: {u['reason']}."
            for u in urls
            if not u["allowed"] and u["kind"] != "subresource"
        ]
        if isinstance(action, Tool) and gate.allowed:
            notes.append(f"Tool {action.name} returned: {outcome.info.get('result', outcome.error)}")
        return notes

    async def _bounded(self, state: EpisodeState, work: Awaitable[T], doing: str) -> T:
        """Await ``work`` within what is left of the time budget."""
        if self.limits.max_seconds is None:
            return await work
        left = self.limits.max_seconds - (time.monotonic() - state.started)
        try:
            return await asyncio.wait_for(work, max(left, 0.001))
        except TimeoutError:
            raise EpisodeStop("timeout", f"the {self.limits.max_seconds} s budget ran out while {doing}") from None

    async def _guarded(self, state: EpisodeState, work: Awaitable[None]) -> None:
        """Run a phase; what it raises ends the episode with the status that status.py gives it.

        A bug (no status) and a cancellation are recorded first — ``error`` and ``interrupted`` — and
        then go on up: the caller learns of them, and the episode on disk says what it was.
        """
        try:
            await work
        except asyncio.CancelledError:
            state.end("interrupted", "the run was cancelled")
            self.finish(state)
            raise
        except Exception as e:
            status = status_for(e)
            state.end(status or "error", describe(e))
            if status is None:
                self.finish(state)
                raise

    async def _call_tool(self, action: Tool) -> Outcome:
        if self.tools is None:
            return Outcome(ok=False, error=f"no tools are available; cannot call {action.name!r}")
        return await self.tools.call(action.name, dict(action.arguments))

    def _record(
        self, state: EpisodeState, ctx: StepContext, decision: Decision, outcome: Outcome, extra: dict[str, Any]
    ) -> None:
        step = state.writer.add_step(
            ctx.observation,
            timings=state.timings,
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
