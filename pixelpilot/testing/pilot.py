"""The pilot: browser steps a test calls one at a time, recorded as one episode.

Each call becomes a script step (``click: Sign in``, ``do: …``) fed to a :class:`ScriptPolicy`
running inside the ordinary :class:`Agent` loop, so a test's steps are located, executed, limited
and recorded exactly as a task file's are. The first failing step ends the episode and raises
:class:`PilotError` in the test.

``AsyncPilot`` is the API for async code; ``Pilot`` (the pytest fixture) is its synchronous
twin, running the async one on an event loop of its own in a background thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..actions import Task, Terminate
from ..agent import Agent, Decision, Limits, ScriptPolicy, StepContext
from ..agent.judge import Judge, Verdict
from ..agent.locators import Locator
from ..agent.policy import Policy
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


@dataclass
class _Command:
    steps: list[dict[str, Any]]
    done: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    finish: tuple[Status, str | None] | None = None


class _PilotPolicy(Policy):
    """Plays the test's calls as they arrive: waits for the next one when the script runs dry."""

    def __init__(self, script: ScriptPolicy) -> None:
        self.script = script
        self.queue: asyncio.Queue[_Command] = asyncio.Queue()
        self._current: _Command | None = None

    async def decide(self, ctx: StepContext) -> Decision:
        while True:
            decision = await self.script.next_decision(ctx)
            if decision is not None:
                return decision
            if self._current is not None:  # (a step that did not work already ended the episode)
                self._current.done.set_result(list(self.script.verdicts))
            self._current = cmd = await self.queue.get()
            if cmd.finish is not None:
                status, message = cmd.finish
                return self.script.with_checks(
                    Decision(Terminate(status=status), thought=message or "", message=message)
                )
            self.script.add_steps(cmd.steps)


class AsyncPilot:
    """Browser steps for tests, recorded as one episode under ``out``.

    ``model`` (a ModelPolicy), ``judge`` and ``grounder`` enable ``do``, ``expect`` and
    ``click(…, by="model")``; without them those calls fail saying a model URL is needed.
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
        self._policy = _PilotPolicy(self._script)
        self.agent = Agent(env, self._policy, recorder=self.recorder, limits=limits)
        self._run: asyncio.Task[Episode] | None = None

    async def start(self) -> None:
        """Open the environment and start the episode (a blank page until ``goto``)."""
        if self._run is None:
            self._run = asyncio.create_task(self.agent.run(self.task))
            await asyncio.sleep(0)

    @property
    def episode(self) -> Episode | None:
        """The finished episode, once it has ended."""
        return self._run.result() if self._run is not None and self._run.done() else None

    async def _play(self, *steps: dict[str, Any]) -> Any:
        await self.start()
        assert self._run is not None
        if self._run.done():
            ep = self._run.result()
            raise PilotError(
                f"the pilot's episode already ended ({ep.status}: {ep.message}); no more steps can run in this test", ep
            )
        cmd = _Command(list(steps))
        self._policy.queue.put_nowait(cmd)
        await asyncio.wait({cmd.done, self._run}, return_when=asyncio.FIRST_COMPLETED)
        if cmd.done.done():
            return cmd.done.result()
        ep = self._run.result()
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
    ) -> None:
        """Click visible text (the DOM's, else OCR of the screen; ``by`` = dom, ocr or model picks
        one) or a point on the 0..1000 grid."""
        target: dict[str, Any] = {"text": text, "by": by} if text is not None else {"x": x, "y": y}
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
        """End the episode (if it is still running) and return it."""
        await self.start()
        assert self._run is not None
        if not self._run.done():
            self._policy.queue.put_nowait(_Command([], finish=(status, message)))
        return await self._run

    async def aclose(self) -> Episode:
        """Finish the episode as a success if it is still running; close the environment and the
        model's connection."""
        try:
            return await self.finish()
        finally:
            await self.env.aclose()
            aclose = getattr(self._script.model, "aclose", None)
            if aclose is not None:
                await aclose()


class Pilot:
    """The synchronous pilot (the ``pilot`` fixture): same methods as :class:`AsyncPilot`.

    It owns an event loop in a background thread, where the browser lives.
    """

    def __init__(self, make: Any, *, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """``make`` is called on the pilot's loop and returns the AsyncPilot to drive."""
        self._own_loop = loop is None
        self._loop = loop or asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        if self._own_loop:
            self._thread = threading.Thread(target=self._loop.run_forever, name="pixelpilot", daemon=True)
            self._thread.start()
        self._async: AsyncPilot = self._call(_as_coro(make))

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

    def goto(self, url: str) -> None:
        self._call(self._async.goto(url))

    def click(
        self,
        text: str | None = None,
        *,
        x: int | None = None,
        y: int | None = None,
        by: str = "auto",
        button: str = "left",
    ) -> None:
        self._call(self._async.click(text, x=x, y=y, by=by, button=button))

    def type(self, text: str, *, into: str | None = None, secret: bool | str = False) -> None:
        self._call(self._async.type(text, into=into, secret=secret))

    def press(self, keys: str) -> None:
        self._call(self._async.press(keys))

    def scroll(self, dy: int = 500, dx: int = 0) -> None:
        self._call(self._async.scroll(dy, dx))

    def expect_text(self, text: str, *, timeout: float = 5.0) -> None:
        self._call(self._async.expect_text(text, timeout=timeout))

    def expect(self, statement: str) -> Verdict:
        return self._call(self._async.expect(statement))

    def do(self, instruction: str, *, max_steps: int | None = None) -> None:
        self._call(self._async.do(instruction, max_steps=max_steps))

    def finish(self, status: Status = "success", message: str | None = None) -> Episode:
        return self._call(self._async.finish(status, message))

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

    for _name in ("goto", "click", "type", "press", "scroll", "expect_text", "expect", "do", "finish"):
        locals()[_name].__doc__ = getattr(AsyncPilot, _name).__doc__
    del _name


async def _as_coro(make: Any) -> AsyncPilot:
    pilot = make()
    await pilot.start()
    return pilot
