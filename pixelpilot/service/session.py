"""One live env, driven call by call by another program (the MCP server's low-level tools).

Every call that acts is a script step (``click: Sign in``, ``type: …``) that a :class:`ScriptPolicy`
plays through the ordinary :meth:`Agent.step`, as the pytest pilot's calls are: the target is
located, the safety gate and the URL policy check the action, the env executes it and the
recorder writes the step. Calls that only look (``screenshot``, ``find_text``, ``expect_text``)
are noted in the next recorded step's ``extra["calls"]``, with the call that acted, so the
episode holds every call and its steps stay actions (training data). A call that cannot do what
it asks (the text is not there, the gate refused) raises :class:`CallFailed` and leaves the
episode running; an episode that ends (the gate refused too often, a budget ran out, or
:meth:`LiveSession.end`) is written, and the next call starts a new one in a fresh env.

Secrets typed with ``secret=True`` are masked in the episode and in every answer the session gives.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..actions import Answer, Observation, Task, Terminate
from ..agent import Agent, Decision, Gate, Limits, ScriptError, ScriptPolicy
from ..agent.locators import OcrLocator, OcrUnavailable, ocr_available
from ..agent.policy import StepContext
from ..agent.state import EpisodeState
from ..envs import Clipboard, Env, EnvError, TextQueries, WindowInfo, Windows
from ..trajectories import Episode, Recorder, Step

#: A session's budget: many small steps (a client drives it), no time limit.
SESSION_LIMITS = Limits(max_steps=500)


class CallFailed(RuntimeError):
    """A call did not do what it asked; the message says why (secrets masked)."""


@dataclass(frozen=True)
class Found:
    """Where ``find_text`` found its text: the centre and the box on the grid, and how."""

    x: int
    y: int
    box: tuple[int, int, int, int]
    by: str
    #: Whether the centre is on the screen (off screen: scroll before clicking it).
    visible: bool


@dataclass(frozen=True)
class Acted:
    """What a call that acts did: the steps it recorded, in which episode, and the episode if it
    ended with this call."""

    steps: list[Step]
    episode: Path
    ended: Episode | None = None


class LiveSession:
    """A client's calls on ``env``, recorded as episodes under ``out``.

    ``gate`` checks every action (without one, nothing is refused); ``url`` is where each episode
    starts. Calls are served one at a time, in the order they come.
    """

    def __init__(
        self,
        env: Env,
        *,
        out: str | Path = "runs",
        gate: Gate | None = None,
        limits: Limits = SESSION_LIMITS,
        url: str | None = None,
        name: str = "mcp-session",
        locate_timeout: float = 5.0,
    ) -> None:
        self.env = env
        self.recorder = Recorder(out)
        self.task = Task(
            instruction="Actions chosen by an MCP client, one call at a time.", name=name, url=url, env=env.kind
        )
        self._script = ScriptPolicy([], locate_timeout=locate_timeout)
        self._ocr = OcrLocator()
        self.agent = Agent(env, self._script, recorder=self.recorder, limits=limits, gate=gate)
        self._state: EpisodeState | None = None
        self._calls: list[dict[str, Any]] = []  # calls not yet recorded with a step
        self._lock = asyncio.Lock()

    @property
    def episode_path(self) -> Path | None:
        """The folder of the running episode, if one is running."""
        return self._state.writer.path if self._state is not None else None

    def redact(self, value: Any) -> Any:
        """``value`` with every secret this session knows masked (what leaves the session passes here)."""
        redactor = self._state.writer.redactor if self._state is not None else self.recorder.redactor
        return redactor.redact(value)

    # --- calls that act ------------------------------------------------------------------------

    async def act(self, tool: str, arguments: dict[str, Any], step: dict[str, Any]) -> Acted:
        """Play one script ``step`` for the call ``tool(arguments)``: what it recorded, and where.

        CallFailed when the step could not be done; the episode goes on unless it ended (then the
        message says how). An episode that ends with the call (a budget ran out, the agent looped) is
        in ``Acted.ended``; the next call starts another.
        """
        async with self._lock:
            state = await self._running()
            await self._script.reset(state.task)  # a fresh script for each call: one failure does not stick
            self._calls.append({"tool": tool, "arguments": arguments})
            try:
                self._script.add_steps([step])
            except ScriptError as e:
                self._calls[-1]["error"] = str(e)
                raise CallFailed(self.redact(str(e))) from None
            failure: list[str] = []

            async def decide(ctx: StepContext) -> Decision | None:
                try:
                    decision = await self._script.next_decision(ctx)
                except ValidationError as e:  # an action the client's values cannot make (a key name, a length)
                    failure.append(f"not a valid action: {e.errors()[0]['msg']}")
                    return None
                except ScriptError as e:  # a step this env cannot do (expect_text without page text)
                    failure.append(str(e))
                    return None
                if decision is not None and isinstance(decision.action, Terminate):
                    failure.append(decision.message or "the step failed")  # the script's way of failing a step
                    return None
                if decision is not None and self._calls:
                    decision.extra = {**decision.extra, "calls": self._calls}
                    self._calls = []
                return decision

            recorded: list[Step] = []
            while not state.done and (step_done := await self.agent.step(state, decide)) is not None:
                recorded.append(step_done)
            if self._calls and failure:
                self._calls[-1]["error"] = failure[0]
            if not failure and recorded and not recorded[-1].outcome.get("ok", True):
                failure.append(str(recorded[-1].outcome.get("error")))  # the episode ended before the script saw it
            ended = self._close(state) if state.done else None
            if failure or (ended is not None and not recorded):
                why = failure[0] if failure else "nothing was done"
                if ended is not None:
                    why += f"; the episode ended ({ended.status}: {ended.message})"
                raise CallFailed(self.redact(why))
            return Acted(recorded, state.writer.path, ended)

    # --- calls that look -----------------------------------------------------------------------

    async def screenshot(self) -> Observation:
        """What the screen shows now (the next action is recorded with this screenshot)."""
        async with self._lock:
            state = await self._running()
            state.observation = await self.env.observe()
            self._calls.append({"tool": "screenshot", "arguments": {}})
            return state.observation

    async def find_text(self, text: str, by: str = "auto") -> Found | None:
        """Where ``text`` shows: the page's DOM (``dom``), OCR of the screen (``ocr``), or the DOM
        and then OCR (``auto``). None when it is not there."""
        async with self._lock:
            state = await self._running()
            obs = state.observation = await self.env.observe()
            self._calls.append({"tool": "find_text", "arguments": {"text": text, "by": by}})
            box, how = None, by
            if by in ("auto", "dom") and isinstance(self.env, TextQueries):
                box, how = await self.env.locate_text(text), "dom"
            elif by == "dom":
                self._calls[-1]["error"] = "no DOM"
                raise CallFailed("`by: dom` needs an env with a DOM (the browser)")
            if box is None and (by == "ocr" or (by == "auto" and ocr_available())):
                try:
                    box, how = await self._ocr.locate(obs, text), "ocr"
                except OcrUnavailable as e:
                    self._calls[-1]["error"] = str(e)
                    raise CallFailed(str(e)) from None
            elif box is None and not isinstance(self.env, TextQueries):
                self._calls[-1]["error"] = "no OCR"
                raise CallFailed("finding text without a DOM needs OCR: pip install 'pixelpilot[ocr]'")
            self._calls[-1]["found"] = box is not None
            if box is None:
                return None
            grid, w, h = self.agent.grid, obs.input_width, obs.input_height
            left, top, width, height = box
            x1, y1 = grid.point_to_grid(left, top, w, h)
            x2, y2 = grid.point_to_grid(left + width, top + height, w, h)
            cx, cy = box.center
            x, y = grid.point_to_grid(cx, cy, w, h)
            return Found(x, y, (x1, y1, x2, y2), how, 0 <= cx < w and 0 <= cy < h)

    async def windows(self) -> list[WindowInfo]:
        """The desktop's windows, oldest first (CallFailed where the env has none)."""
        return await self._look("windows", Windows, lambda env: env.list_windows())

    async def read_clipboard(self) -> str:
        """The desktop's clipboard text (CallFailed where the env has none)."""
        return await self._look("read_clipboard", Clipboard, lambda env: env.read_clipboard())

    async def _look(self, tool: str, capability: type, read: Any) -> Any:
        """A call that reads what the env has (its ``capability``) without acting, logged with the calls."""
        async with self._lock:
            await self._running()
            self._calls.append({"tool": tool, "arguments": {}})
            try:
                if not isinstance(self.env, capability):
                    raise CallFailed(f"{self.env.label} has no {tool.removeprefix('read_')} (a desktop has)")
                return await read(self.env)
            except (CallFailed, EnvError) as e:
                self._calls[-1]["error"] = str(e)
                raise CallFailed(self.redact(str(e))) from None

    async def expect_text(self, text: str, timeout: float = 5.0) -> None:
        """Wait until ``text`` is on the page (CallFailed when it never shows within ``timeout`` s)."""
        await self.act(
            "expect_text", {"text": text, "timeout": timeout}, {"expect": {"text": text, "timeout": timeout}}
        )

    # --- the episode ---------------------------------------------------------------------------

    async def end(self, status: str = "success", answer: str | None = None) -> Episode | None:
        """End the running episode (a last step shows the final screen and carries the calls not yet
        recorded) and write it; None when no episode is running."""
        async with self._lock:
            state = self._state
            if state is None:
                return None
            if not state.done:
                final = Answer(text=answer) if answer and status == "success" else None
                action = final or Terminate(status="success" if status == "success" else "failure")
                extra = {"calls": self._calls} if self._calls else {}
                self._calls = []
                decision = Decision(action, thought=answer or "", message=answer, extra=extra)
                await self.agent.step(state, lambda ctx: _decided(decision))
            return self._close(state)

    async def _running(self) -> EpisodeState:
        """The running episode, started (in a fresh env at the session's url) if there is none."""
        if self._state is not None and self._state.done:  # ended by a step that raised (it is written)
            self._close(self._state)
        if self._state is None:
            state = await self.agent.start(self.task)
            self._state = state
            if state.done:  # the env could not open the start page
                episode = self._close(state)
                raise CallFailed(self.redact(f"the episode could not start ({episode.status}: {episode.message})"))
        return self._state

    def _close(self, state: EpisodeState) -> Episode:
        self._state = None
        return self.agent.finish(state)

    async def aclose(self) -> Episode | None:
        """End a running episode as a success (as the pytest pilot does) and close the env."""
        try:
            return await self.end()
        finally:
            await self.env.aclose()


async def _decided(decision: Decision) -> Decision:
    return decision
