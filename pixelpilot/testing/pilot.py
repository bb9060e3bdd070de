"""The pilot: browser steps a test calls one at a time, recorded as one episode.

Each call becomes a script step (``click: Sign in``, ``do: …``) that a :class:`ScriptPolicy` plays
through the ordinary :meth:`Agent.step`, so a test's steps are located, executed, limited
and recorded exactly as a task file's are. The first failing step ends the episode and raises
:class:`PilotError` in the test.

``AsyncPilot`` is the API for async code; ``Pilot`` (the pytest fixture, in ``pilot_sync.py``) is its
synchronous twin, generated from it by ``scripts/generate_sync.py`` (see pixelpilot/_sync.py), running
the async one on an event loop in a thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from ..actions import Task, Terminate
from ..agent import Agent, Decision, Limits, ScriptPolicy
from ..agent.judge import Judge, Verdict
from ..agent.locators import Locator
from ..agent.policy import Policy
from ..agent.state import EpisodeState
from ..envs import Env
from ..trajectories import Episode, Recorder, Status

T = TypeVar("T")
#: A test's budget unless it sets its own: many small steps, no time limit.
PILOT_LIMITS = Limits(max_steps=200)


class PilotError(AssertionError):
    """A pilot step failed (the text was not found, the model said no, a budget ran out).

    An AssertionError, so pytest reports it as a test failure rather than an error.
    """

    def __init__(self, message: str, episode: Episode | None = None) -> None:
        super().__init__(message)
        self.episode = episode


class AsyncPilot:
    """Browser steps for tests, recorded as one episode under ``out``.

    Each call adds script steps and drives the agent one step at a time (:meth:`Agent.step`) until the
    script has nothing left to do. ``model`` (a ModelPolicy), ``judge`` and ``grounder`` enable ``do``,
    ``expect`` and ``click(…, by="model")``; without them those calls fail saying a model URL is needed.
    """

    def __init__(
        self,
        env: Env,
        *,
        name: str = "pilot",
        instruction: str | None = None,
        out: str | Path = "pilot-runs",
        limits: Limits = PILOT_LIMITS,
        do_steps: int = 5,
        model: Policy | None = None,
        judge: Judge | None = None,
        grounder: Locator | None = None,
        locate_timeout: float = 5.0,
    ) -> None:
        self.env = env
        self.task = Task(instruction=instruction or name, name=name, env=env.kind)
        self.recorder = Recorder(out)
        self.do_steps = do_steps
        self._script = ScriptPolicy([], model=model, judge=judge, grounder=grounder, locate_timeout=locate_timeout)
        self.agent = Agent(env, self._script, recorder=self.recorder, limits=limits)
        self._state: EpisodeState | None = None

    async def start(self) -> None:
        """Open the environment and start the episode (a blank page until ``goto``)."""
        if self._state is None:
            self._state = await self.agent.start(self.task)

    @property
    def episode(self) -> Episode | None:
        """The finished episode, once it has ended."""
        return self._state.episode if self._state is not None else None

    async def _play(self, *steps: dict[str, Any]) -> list[dict[str, Any]]:
        """Run ``steps``; the model verdicts of the episode so far, or PilotError when it ended."""
        await self.start()
        state = self._state
        assert state is not None
        if state.done:
            ep = self.agent.finish(state)
            raise PilotError(
                f"the pilot's episode already ended ({ep.status}: {ep.message}); no more steps can run in this test", ep
            )
        self._script.add_steps(list(steps))
        while not state.done:
            if await self.agent.step(state, self._script.next_decision) is None and not state.done:
                return list(self._script.verdicts)  # the script ran dry: this call's steps are done
        ep = self.agent.finish(state)
        raise PilotError(f"{ep.status}: {ep.message}" if ep.message else ep.status, ep)

    # --- steps ------------------------------------------------------------------------------

    async def goto(self, url: str) -> None:
        """Open ``url`` (relative URLs resolve against the current page)."""
        await self._play({"goto": url})

    async def click(
        self,
        text: str | None = None,
        *,
        x: int | None = None,
        y: int | None = None,
        by: str = "auto",
        button: str = "left",
        nth: int | None = None,
        near: str | None = None,
        within: dict[str, int] | None = None,
        role: str | None = None,
        strict: bool = False,
    ) -> None:
        """Click visible text (the DOM's, else OCR of the screen; ``by`` = dom, ocr or model picks
        one) or a point on the 0..1000 grid. Where the text shows more than once, ``nth``, ``near``,
        ``within`` (a grid region ``{"x1", "y1", "x2", "y2"}``), ``role`` or ``strict`` say which, as
        in a task file."""
        target: dict[str, Any] = {"text": text, "by": by} if text is not None else {"x": x, "y": y}
        choose = {"nth": nth, "near": near, "within": within, "role": role, "strict": strict or None}
        target.update((k, v) for k, v in choose.items() if v is not None)
        await self._play({"click": {**target, "button": button}})

    async def type(self, text: str, *, into: str | None = None, secret: bool | str = False) -> None:
        """Type ``text`` (into the field labelled ``into`` first). ``secret`` masks the text as
        ``${secret}`` (or ``${<the name given>}``) wherever the episode is recorded."""
        if secret:
            self.recorder.redactor.add(secret if isinstance(secret, str) else "secret", text)
        step: dict[str, Any] = {"type": {"text": text, "into": into} if into else text}
        await self._play(step)

    async def press(self, keys: str) -> None:
        """Press a key or combination: ``"Enter"``, ``"ctrl+a"``."""
        await self._play({"press": keys})

    async def scroll(self, dy: int = 500, dx: int = 0) -> None:
        """Scroll by grid units (1000 = one screen)."""
        await self._play({"scroll": {"dx": dx, "dy": dy}})

    async def expect_text(self, text: str, *, timeout: float = 5.0) -> None:
        """Fail unless ``text`` shows on the page within ``timeout`` seconds (no model involved)."""
        await self._play({"expect": {"text": text, "timeout": timeout}})

    async def expect(self, statement: str) -> Verdict:
        """Ask the model whether ``statement`` holds for the screen; fail with its reason if not."""
        checks = await self._play({"expect": {"that": statement}})
        return Verdict.model_validate({k: checks[-1][k] for k in ("passed", "reason")})

    async def do(self, instruction: str, *, max_steps: int | None = None) -> None:
        """Let the model carry out a natural-language step, in at most ``max_steps`` actions."""
        await self._play({"do": {"task": instruction, "max_steps": max_steps or self.do_steps}})

    async def finish(self, status: Status = "success", message: str | None = None) -> Episode:
        """End the episode (if it is still running) and return it. Success and failure are recorded
        as a last step showing the final screen."""
        await self.start()
        state = self._state
        assert state is not None
        if not state.done and status in ("success", "failure"):
            end = Terminate(status="success" if status == "success" else "failure")
            await self.agent.step(state, lambda ctx: _decided(Decision(end, thought=message or "", message=message)))
        return self.agent.finish(state, status, message)

    async def aclose(self) -> Episode:
        """Finish the episode as a success if it is still running; close the environment and the
        model's connection."""
        try:
            return await self.finish()
        finally:
            await self.env.aclose()
            if self._script.model is not None:
                await self._script.model.aclose()


class PilotRuntime:
    """What the synchronous pilot needs besides its generated methods (``pilot_sync.Pilot``): the
    AsyncPilot it drives, the event loop it lives on (``loop``, or one of its own in a thread), and
    ``close``."""

    def __init__(self, make: Callable[[], AsyncPilot], *, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """``make`` is called on the pilot's loop and returns the AsyncPilot to drive."""
        self._own_loop = loop is None
        self._loop = loop or asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        if self._own_loop:
            self._thread = threading.Thread(target=self._loop.run_forever, name="pixelpilot", daemon=True)
            self._thread.start()
        self._async: AsyncPilot = self._call(_started(make))

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        __tracebackhide__ = True  # pytest: show the test's line, not this plumbing
        try:
            return asyncio.run_coroutine_threadsafe(coro, self._loop).result()
        except PilotError as e:
            raise PilotError(str(e), e.episode) from None  # raised here, not deep in the loop's frames

    @property
    def episode(self) -> Episode | None:
        return self._async.episode

    @property
    def recorder(self) -> Recorder:
        return self._async.recorder

    def close(self) -> Episode:
        """Finish (as a success if still running), close the browser and stop the loop."""
        try:
            return self._call(self._async.aclose())
        finally:
            if self._own_loop:
                self._loop.call_soon_threadsafe(self._loop.stop)
                assert self._thread is not None
                self._thread.join(timeout=10)
                self._loop.close()


async def _started(make: Callable[[], AsyncPilot]) -> AsyncPilot:
    pilot = make()
    await pilot.start()
    return pilot


async def _decided(decision: Decision) -> Decision:
    return decision
