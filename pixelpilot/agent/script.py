"""Exact scripts: a task file's ``steps`` played back as actions.

Each step is a one-key mapping::

    - goto: /login                     # navigate (relative to the current page)
    - click: Sign in                   # by visible text, label, placeholder or alt text …
    - click: {x: 500, y: 120}          # … or on the 0..1000 grid
    - type: alice                      # into whatever has focus
    - type: {text: alice, into: Username}   # click the target first
    - press: ctrl+a                    # key combos
    - scroll: {dy: 500}                # half a screen down
    - wait: 0.5
    - back: true
    - expect: {text: Welcome}          # fails the episode when the text never shows
    - expect: {that: the list shows one to-do}   # a model looks at the screen and gives a verdict
    - do: add a to-do called Buy milk  # a natural-language step: the model acts, a few steps at most
    - do: {task: tick it, max_steps: 3}
    - answer: done                     # end with an answer
    - window: {focus: Mousepad}        # a desktop's windows and clipboard (desktop_steps.py)
    - clipboard: {write: some text}

A step may also be a plain action (``{action: drag, x: …, y: …, x2: …, y2: …}``). Text targets are
resolved through the page's DOM to the element's box, or by OCR of the screenshot where there is
no DOM text (a canvas, a desktop app); ``{text: …, by: dom|ocr|model}`` picks one (``model`` asks
the model where the described thing is). They are recorded as coordinate clicks that keep the
target, so a scripted run is also training data.

``${NAME}`` in a step is replaced by the task's variable ``NAME`` (``vars:``) when the task runs;
the recorded script keeps ``${NAME}``, and secret values are masked in everything recorded.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from ..actions import (
    ACTION_TYPES,
    FINAL_ACTIONS,
    Back,
    Click,
    DoubleClick,
    Key,
    Navigate,
    Scroll,
    Task,
    Terminate,
    TripleClick,
    Type,
    VarError,
    Wait,
    action_from_dict,
    resolve_vars,
    substitute,
)
from ..actions import Answer as AnswerAction
from ..envs import TextQueries
from . import desktop_steps
from .judge import Judge
from .locators import Locator, OcrLocator, OcrUnavailable, ocr_available
from .policy import Decision, Policy, StepContext

STEP_KINDS = (
    "goto",
    "click",
    "double_click",
    "triple_click",
    "type",
    "press",
    "scroll",
    "wait",
    "back",
    "expect",
    "do",
    "answer",
    "action",
    *desktop_steps.STEP_KINDS,
)
LOCATE_BY = ("auto", "dom", "ocr", "model")
#: How long ``by: auto`` polls the DOM before it also reads the screenshot by OCR (seconds).
DOM_GRACE = 1.0

_CLICKS = {"click": Click, "double_click": DoubleClick, "triple_click": TripleClick}


class ScriptError(ValueError):
    """A script step is malformed; the message says which and how to fix it."""


@dataclass
class Target:
    """Where a pointer step goes: visible text, or a grid point."""

    text: str | None = None
    x: int | None = None
    y: int | None = None
    #: How text is found: the DOM first then OCR (auto), one of them, or by asking the model.
    by: str = "auto"


@dataclass
class ScriptStep:
    kind: str
    value: Any = None
    target: Target | None = None
    source: dict[str, Any] = field(default_factory=dict)


def _target(value: Any, kind: str) -> Target:
    if isinstance(value, str) and value.strip():
        return Target(text=value)
    if isinstance(value, dict):
        if "text" in value and isinstance(value["text"], str):
            by = value.get("by", "auto")
            if by not in LOCATE_BY:
                raise ScriptError(f"{kind}: by={by!r}; expected one of {', '.join(LOCATE_BY)}")
            return Target(text=value["text"], by=by)
        if isinstance(value.get("x"), int) and isinstance(value.get("y"), int):
            for k in ("x", "y"):
                if not 0 <= value[k] <= 1000:
                    raise ScriptError(f"{kind}: {k}={value[k]} is off the 0..1000 grid")
            return Target(x=value["x"], y=value["y"])
    raise ScriptError(f"{kind} needs visible text (`{kind}: Sign in`) or a grid point (`{kind}: {{x: 500, y: 300}}`)")


def compile_step(raw: Any, values: dict[str, str] | None = None) -> ScriptStep:
    """Check one script step and turn it into a ScriptStep; raises ScriptError saying what is wrong.

    With ``values``, ``${NAME}`` references are replaced first; the step's ``source`` keeps them.
    """
    if values is not None:
        try:
            step = compile_step(substitute(raw, values))
        except VarError as e:
            raise ScriptError(str(e)) from None
        step.source = raw
        return step
    if not isinstance(raw, dict):
        raise ScriptError(f"a step must be a mapping like `click: Sign in`, got {raw!r}")
    if "action" in raw:
        try:
            action_from_dict(raw)
        except ValidationError as e:
            err = e.errors()[0]
            raise ScriptError(
                f"invalid {raw.get('action')} action: {'.'.join(map(str, err['loc'][1:]))} {err['msg']}"
            ) from None
        return ScriptStep("action", raw, source=raw)
    if len(raw) != 1:
        raise ScriptError(f"a step has exactly one key (one of {', '.join(STEP_KINDS)}), got {sorted(raw)}")
    kind, value = next(iter(raw.items()))
    if kind not in STEP_KINDS:
        hint = f"; as a raw action write `action: {kind}`" if kind in ACTION_TYPES else ""
        raise ScriptError(f"unknown step {kind!r}; expected one of {', '.join(STEP_KINDS)}{hint}")
    if kind in desktop_steps.STEP_KINDS:
        try:
            return ScriptStep(*desktop_steps.compile_desktop_step(kind, value), source=raw)
        except ValueError as e:
            raise ScriptError(str(e)) from None
    if kind in _CLICKS:
        return ScriptStep(
            kind, value.get("button", "left") if isinstance(value, dict) else "left", _target(value, kind), raw
        )
    if kind == "goto":
        if not isinstance(value, str) or not value:
            raise ScriptError("goto needs a URL, e.g. `goto: /login`")
        return ScriptStep(kind, value, source=raw)
    if kind == "type":
        if isinstance(value, (str, int, float)):
            return ScriptStep(kind, str(value), source=raw)
        if isinstance(value, dict) and isinstance(value.get("text"), (str, int, float)):
            into = _target(value["into"], "type into") if "into" in value else None
            return ScriptStep(kind, str(value["text"]), into, raw)
        raise ScriptError("type needs text: `type: hello` or `type: {text: hello, into: Search}`")
    if kind == "press":
        keys = value if isinstance(value, list) else re.split(r"\s*\+\s*", str(value)) if value else []
        if not keys or not all(isinstance(k, str) and k for k in keys):
            raise ScriptError("press needs keys: `press: Enter` or `press: ctrl+a`")
        return ScriptStep(kind, keys, source=raw)
    if kind == "scroll":
        if not isinstance(value, dict) or not ({"dx", "dy"} & value.keys()):
            raise ScriptError("scroll needs an amount: `scroll: {dy: 500}` (1000 = one screen)")
        try:
            Scroll(**value)
        except ValidationError as e:
            raise ScriptError(f"scroll: {e.errors()[0]['msg']}") from None
        return ScriptStep(kind, value, source=raw)
    if kind == "wait":
        if not isinstance(value, (int, float)) or not 0 <= value <= 60:
            raise ScriptError("wait needs seconds between 0 and 60: `wait: 0.5`")
        return ScriptStep(kind, float(value), source=raw)
    if kind == "back":
        return ScriptStep(kind, source=raw)
    if kind == "expect" and isinstance(value, dict) and "that" in value:
        if not isinstance(value["that"], str) or not value["that"].strip():
            raise ScriptError("expect that needs a statement: `expect: {that: the cart shows 1 item}`")
        return ScriptStep("verify", value["that"], source=raw)
    if kind == "expect":
        text = value.get("text") if isinstance(value, dict) else value
        if not isinstance(text, str) or not text:
            raise ScriptError("expect needs text: `expect: {text: Welcome}`")
        timeout = value.get("timeout", 5.0) if isinstance(value, dict) else 5.0
        return ScriptStep(kind, (text, float(timeout)), source=raw)
    if kind == "do":
        task, max_steps = (value.get("task"), value.get("max_steps", 5)) if isinstance(value, dict) else (value, 5)
        if not isinstance(task, str) or not task.strip():
            raise ScriptError(
                "do needs an instruction: `do: add a to-do called Buy milk` or `do: {task: …, max_steps: 5}`"
            )
        if not isinstance(max_steps, int) or not 1 <= max_steps <= 50:
            raise ScriptError("do: max_steps must be a whole number from 1 to 50")
        return ScriptStep(kind, (task, max_steps), source=raw)
    # answer
    return ScriptStep(kind, str(value), source=raw)


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def _fail(message: str, step: ScriptStep | None = None) -> Decision:
    return Decision(
        Terminate(status="failure"), thought=message, raw=json.dumps(step.source) if step else None, message=message
    )


class ScriptPolicy(Policy):
    """Plays a script back. Steps come from the constructor or from ``task.steps``.

    ``model`` (a ModelPolicy) carries out ``do:`` steps and finds ``by: model`` targets' points;
    ``judge`` answers ``expect: {that: …}``; ``ocr`` finds text where there is no DOM.
    """

    def __init__(
        self,
        steps: list[dict[str, Any]] | None = None,
        *,
        locate_timeout: float = 5.0,
        max_scrolls: int = 6,
        model: Policy | None = None,
        judge: Judge | None = None,
        ocr: Locator | None = None,
        grounder: Locator | None = None,
        on_error: Literal["fail", "continue"] = "fail",
    ) -> None:
        for s in steps or []:
            compile_step(s)  # fail at construction, not mid-run
        self._given = list(steps) if steps is not None else None
        self.locate_timeout = locate_timeout
        self.max_scrolls = max_scrolls
        self.model = model
        self.judge = judge
        self.ocr = ocr if ocr is not None else OcrLocator()
        self.grounder = grounder
        #: What a scripted action that did not work does: fail the script, or go on to the next step.
        self.on_error = on_error
        self._values: dict[str, str] = {}
        self._steps: list[ScriptStep] = []
        self._cursor = 0
        self._pending: list[Decision] = []  # the rest of a step that takes two actions
        self._scrolls = 0
        self._do_start: int | None = None  # the episode step where the current `do:` began
        self._checks: list[dict[str, Any]] = []  # verdicts to record with the next action
        #: Every model verdict of the episode so far: ``{"that", "passed", "reason"}``.
        self.verdicts: list[dict[str, Any]] = []
        self._acted_at: int | None = None  # the step index of the last scripted action, to check it
        self._broken: str | None = None  # why this episode's script cannot run (a missing variable …)

    async def reset(self, task: Task) -> None:
        """Start the script of ``task`` (or the steps given to the constructor) from its first step."""
        self._cursor, self._pending, self._scrolls, self._do_start, self._checks = 0, [], 0, None, []
        self._acted_at, self._broken, self.verdicts = None, None, []
        self._steps = []
        try:
            self._values, _ = resolve_vars(task.vars)
            raw = self._given if self._given is not None else task.steps or []
            self._steps = [compile_step(s, self._values) for s in raw]
        except (VarError, ScriptError) as e:
            self._broken = str(e)

    def add_steps(self, steps: list[dict[str, Any]]) -> None:
        """Append steps to a running script (the pytest ``pilot`` feeds its calls in this way)."""
        self._steps.extend(compile_step(s, self._values) for s in steps)

    async def decide(self, ctx: StepContext) -> Decision:
        decision = await self.next_decision(ctx)
        if decision is None:
            return self.with_checks(Decision(Terminate(status="success"), thought="the script is done", raw=None))
        return decision

    async def next_decision(self, ctx: StepContext) -> Decision | None:
        """The next action of the script, or ``None`` once every step is done."""
        if self._broken is not None:
            return _fail(self._broken)
        if self._acted_at is not None:
            # A scripted action that did not work (the browser refused it, the display went away)
            # fails the script: later steps would act on a screen the script did not expect. A
            # tool's error is a result like any other, and is only recorded.
            done = next((s for s in reversed(ctx.history) if s.index == self._acted_at), None)
            self._acted_at = None
            if done is not None and not done.outcome.get("ok", True) and done.action.get("action") != "tool":
                if done.outcome.get("info", {}).get("crashed"):
                    # The env was relaunched at the same page: play the step that crashed again.
                    return self._acted(
                        ctx,
                        Decision(
                            action_from_dict(done.action),
                            raw=done.raw_output,
                            thought="again, after the environment was relaunched",
                            extra={k: v for k, v in done.extra.items() if k == "target"},
                        ),
                    )
                if self.on_error == "fail":
                    return _fail(f"{done.raw_output or done.action}: {done.outcome.get('error')}")
        if self._pending:
            return self._acted(ctx, self._pending.pop(0))
        while self._cursor < len(self._steps):
            step = self._steps[self._cursor]
            raw = json.dumps(step.source)
            if step.kind == "expect":
                text, timeout = step.value
                if not await self._wait_for_text(ctx, text, timeout):
                    return _fail(f"expected text {text!r} is not on the page", step)
                self._cursor += 1
                continue
            if step.kind == desktop_steps.CHECK:
                if (failure := await desktop_steps.check(ctx.env, *step.value)) is not None:
                    return _fail(failure, step)
                self._cursor += 1
                continue
            if step.kind == "verify":
                if self.judge is None:
                    return _fail("`expect: {that: …}` needs a model to judge it; give a model URL", step)
                verdict = await self.judge.judge(ctx.observation, step.value)
                self._checks.append({"that": step.value, **verdict.model_dump()})
                self.verdicts.append(self._checks[-1])
                if not verdict.passed:
                    return self.with_checks(
                        _fail(f"expected that {step.value}: {verdict.reason or 'the model says no'}", step)
                    )
                self._cursor += 1
                continue
            if step.kind == "do":
                decision = await self._do(ctx, step)
                if decision is None:
                    continue  # the model says the step is done
                return self.with_checks(decision)
            result = await self._step_actions(ctx, step)
            if isinstance(result, Decision):
                return self._acted(ctx, result)  # a scroll towards the target, or a failure
            self._cursor += 1
            self._scrolls = 0
            first, *self._pending = [Decision(a, raw=raw, extra=e) for a, e in result]
            return self._acted(ctx, self.with_checks(first))
        return None

    def _acted(self, ctx: StepContext, decision: Decision) -> Decision:
        self._acted_at = ctx.index
        return decision

    def with_checks(self, decision: Decision) -> Decision:
        """``decision`` carrying the verdicts not yet recorded (in ``extra["checks"]``)."""
        if self._checks:
            decision.extra = {**decision.extra, "checks": self._checks}
            self._checks = []
        return decision

    async def _do(self, ctx: StepContext, step: ScriptStep) -> Decision | None:
        """One model action for a ``do:`` step; ``None`` when the model says the step is done."""
        instruction, max_steps = step.value
        if self.model is None:
            return _fail("a `do:` step needs a model; give a model URL (ModelPolicy)", step)
        sub_task = Task(instruction=instruction, env=ctx.task.env)
        if self._do_start is None:  # each `do:` is an episode of its own for the model
            self._do_start = ctx.index
            await self.model.reset(sub_task)
        if ctx.index - self._do_start >= max_steps:
            return _fail(f"do {instruction!r} did not finish within {max_steps} steps", step)
        sub = StepContext(
            sub_task,
            ctx.observation,
            ctx.history[self._do_start :],
            ctx.env,
            ctx.index - self._do_start,
            ctx.grid,
            ctx.pointer,
            ctx.notes,
        )
        decision = await self.model.decide(sub)
        if decision.action.action in FINAL_ACTIONS:
            if isinstance(decision.action, Terminate) and decision.action.status == "failure":
                return _fail(f"do {instruction!r}: the model gave up ({decision.thought or 'no reason given'})", step)
            self._cursor += 1
            self._do_start = None
            return None
        decision.extra = {**decision.extra, "do": instruction, "do_start": self._do_start}
        return decision

    async def _step_actions(self, ctx: StepContext, step: ScriptStep) -> list[tuple[Any, dict[str, Any]]] | Decision:
        k, v = step.kind, step.value
        if k in _CLICKS:
            point = await self._resolve(ctx, step.target, step)
            if isinstance(point, Decision):
                return point
            (x, y), extra = point
            kwargs = {"button": v} if k == "click" else {}
            return [(_CLICKS[k](x=x, y=y, **kwargs), extra)]
        if k == "type":
            actions: list[tuple[Any, dict[str, Any]]] = []
            if step.target is not None:
                point = await self._resolve(ctx, step.target, step)
                if isinstance(point, Decision):
                    return point
                (x, y), extra = point
                actions.append((Click(x=x, y=y), extra))
            return actions + [(Type(text=v), {})]
        simple = {
            "goto": lambda: Navigate(url=v),
            "press": lambda: Key(keys=v),
            "scroll": lambda: Scroll(**v),
            "wait": lambda: Wait(seconds=v),
            "back": lambda: Back(),
            "answer": lambda: AnswerAction(text=v),
            "action": lambda: action_from_dict(v),
        }
        return [(simple[k](), {})]

    async def _resolve(self, ctx: StepContext, target: Target | None, step: ScriptStep):
        """A grid point for the target, or a Decision (scroll it into view / fail)."""
        assert target is not None
        if target.text is None:
            return (target.x, target.y), {}
        found = await self._find(ctx, target)
        if isinstance(found, str):
            return _fail(found, step)
        box, how = found
        obs = ctx.observation
        cx, cy = box.center
        w, h = obs.input_width, obs.input_height
        if not (0 <= cx < w and 0 <= cy < h) and self._scrolls < self.max_scrolls:
            # Off screen: scroll it towards the middle first, so the screenshot shows what is clicked.
            self._scrolls += 1
            dy = max(-1000, min(1000, round((cy - h / 2) * 1000 / h)))
            dx = max(-1000, min(1000, round((cx - w / 2) * 1000 / w))) if not 0 <= cx < w else 0
            return Decision(
                Scroll(dx=dx, dy=dy),
                thought=f"scroll {target.text!r} into view",
                raw=json.dumps(step.source),
                extra={"target": {"text": target.text}},
            )
        x, y = ctx.grid.point_to_grid(cx, cy, w, h)
        return (x, y), {"target": {"text": target.text, "box": [float(v) for v in box], "by": how}}

    async def _find(self, ctx: StepContext, target: Target) -> tuple[Any, str] | str:
        """The target's box and how it was found, or why it was not.

        The DOM is polled until the timeout; OCR reads the screenshot the step saw (once: results
        are cached per screenshot), after a short grace in ``auto`` mode since it takes seconds.
        Envs without a DOM are looked at again between tries.
        """
        text, by = target.text or "", target.by
        if by == "model":
            if self.grounder is None:
                return f"{text!r}: `by: model` needs a model; give a model URL"
            box = await self.grounder.locate(ctx.observation, text)
            return (box, "model") if box is not None else f"the model found no {text!r} on the screen"
        env = ctx.env
        locate = env.locate_text if isinstance(env, TextQueries) and by in ("auto", "dom") else None
        if by == "dom" and locate is None:
            return f"{text!r}: `by: dom` needs an env with a DOM (BrowserEnv)"
        use_ocr = by == "ocr" or (by == "auto" and locate is None)
        can_ocr = by == "ocr" or ocr_available()  # auto: without the ocr extra, the DOM alone
        if locate is None and not can_ocr:
            return f"{text!r}: finding text without a DOM needs OCR: pip install 'pixelpilot[ocr]'"
        obs = ctx.observation
        start = time.monotonic()
        while True:
            if locate is not None and (box := await locate(text)) is not None:
                return box, "dom"
            if by == "auto" and time.monotonic() - start >= min(DOM_GRACE, self.locate_timeout):
                use_ocr = True
            try:
                if use_ocr and can_ocr and (box := await self.ocr.locate(obs, text)) is not None:
                    return box, "ocr"
            except OcrUnavailable as e:
                return f"{text!r}: {e}"
            if time.monotonic() - start >= self.locate_timeout:
                where = "on the page" if locate is not None else "on the screen"
                return f"no element with text {text!r} {where}"
            await asyncio.sleep(0.1)
            if locate is None:
                obs = await ctx.env.observe()

    async def _wait_for_text(self, ctx: StepContext, text: str, timeout: float) -> bool:
        if not isinstance(ctx.env, TextQueries):
            raise ScriptError("expect needs an env that can read its text (BrowserEnv)")
        page_text = ctx.env.page_text
        deadline = time.monotonic() + timeout
        want = _norm(text)
        while True:
            if want in _norm(await page_text()):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.1)
