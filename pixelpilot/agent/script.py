"""Exact scripts: a task file's ``steps`` played back as actions.

Each step is a one-key mapping::

    - goto: /login                     # navigate (relative to the current page)
    - click: Sign in                   # by visible text, label, placeholder or alt text …
    - click: {x: 500, y: 120}          # … or on the 0..1000 grid
    - click: {text: Delete, near: Buy milk}   # which match, when several: nth, near, within, role
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
resolved through the env's own text (a page's DOM, a desktop's accessibility tree) to the element's
box, or by OCR of the screenshot where there is none (a canvas, a desktop app, a phone);
``{text: …, by: dom|ocr|model}`` picks one (``model`` asks the model where the described thing
is). They are recorded as coordinate clicks that keep the target, so a scripted run is also
training data.

When several things match, they are ranked by :func:`~pixelpilot.envs.rank_matches` (exact before
fuzzy, visible before clipped, a control before other text, then nearest to the last pointer
position, else top to bottom and left to right) and the first is taken; when more than one matches
as exactly as the first, the step records the pick as ambiguous with the candidates and logs a
warning. A text target may say which: ``role: button`` and ``within: {x1, y1, x2, y2}`` (a region of
the grid) leave out the others, ``nth: 2`` takes the second in reading order (exact matches first,
then top to bottom and left to right), ``near: other text`` the one nearest to that text, and
``strict: true`` fails the step instead of picking.

``${NAME}`` in a step is replaced by the task's variable ``NAME`` (``vars:``) when the task runs;
the recorded script keeps ``${NAME}``, and secret values are masked in everything recorded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
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
from ..envs import TextMatch, TextQueries, normalize_text, rank_matches
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
#: The options of a text target, besides ``text`` and ``by``: which of several matches to take.
CHOOSE = ("nth", "near", "within", "role", "strict")
#: How ``expect: {text}`` reads the screen: the env's own text then OCR too (auto), or one of them.
EXPECT_BY = ("auto", "dom", "ocr")
#: How long ``by: auto`` polls the DOM before it also reads the screenshot by OCR (seconds).
DOM_GRACE = 1.0
#: How many of an ambiguous pick's candidates a step records.
MAX_CANDIDATES = 10

log = logging.getLogger(__name__)

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
    #: Take the n-th match (1 = the first) after ``within`` and ``role``: exact matches first, then
    #: top to bottom and left to right.
    nth: int | None = None
    #: Take the match nearest to where this other text is.
    near: str | None = None
    #: Only matches whose centre lies in this grid region (x1, y1, x2, y2).
    within: tuple[int, int, int, int] | None = None
    #: Only elements of this role (compared loosely: ``button`` matches an AT-SPI ``push button``).
    role: str | None = None
    #: Fail the step when more than one thing matches, rather than take the first.
    strict: bool = False


@dataclass
class ScriptStep:
    kind: str
    value: Any = None
    target: Target | None = None
    source: dict[str, Any] = field(default_factory=dict)


def _text(value: Any) -> str | None:
    """Text to look for: a non-blank string, or a number as YAML reads ``click: 7``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) and value.strip() else None


def _target(value: Any, kind: str, extra: tuple[str, ...] = ()) -> Target:
    """A step's target; ``extra`` names the step's own options allowed beside it (a click's button)."""
    if (text := _text(value)) is not None:
        return Target(text=text)
    if isinstance(value, dict) and "text" in value:
        allowed = ("text", "by", *CHOOSE, *extra)
        if unknown := [k for k in value if k not in allowed]:
            raise ScriptError(f"{kind}: unknown option {unknown[0]!r}; a text target takes {', '.join(allowed)}")
        if (text := _text(value["text"])) is None:
            raise ScriptError(f"{kind}: text must be what is written on the screen, got {value['text']!r}")
        by = value.get("by", "auto")
        if by not in LOCATE_BY:
            raise ScriptError(f"{kind}: by={by!r}; expected one of {', '.join(LOCATE_BY)}")
        if by == "model" and any(k in value for k in CHOOSE):
            raise ScriptError(f"{kind}: by: model points at one thing; {', '.join(CHOOSE)} choose among text matches")
        return Target(text=text, by=by, **_choose(value, kind))
    if isinstance(value, dict) and isinstance(value.get("x"), int) and isinstance(value.get("y"), int):
        if unknown := [k for k in value if k not in ("x", "y", *extra)]:
            takes = ", ".join(("x", "y", *extra))
            raise ScriptError(f"{kind}: unknown option {unknown[0]!r} for a grid point; it takes {takes}")
        for k in ("x", "y"):
            if not 0 <= value[k] <= 1000:
                raise ScriptError(f"{kind}: {k}={value[k]} is off the 0..1000 grid")
        return Target(x=value["x"], y=value["y"])
    raise ScriptError(f"{kind} needs visible text (`{kind}: Sign in`) or a grid point (`{kind}: {{x: 500, y: 300}}`)")


def _choose(value: dict[str, Any], kind: str) -> dict[str, Any]:
    """A text target's nth, near, within, role and strict, checked."""
    out: dict[str, Any] = {}
    if "nth" in value:
        nth = value["nth"]
        if not isinstance(nth, int) or isinstance(nth, bool) or nth < 1:
            raise ScriptError(f"{kind}: nth must be a whole number from 1 (the first match), got {nth!r}")
        out["nth"] = nth
    for key, example in (("near", "near: Buy milk"), ("role", "role: button")):
        if key in value:
            if (v := _text(value[key])) is None:
                raise ScriptError(f"{kind}: {key} must be text, e.g. `{example}`, got {value[key]!r}")
            out[key] = v
    if "within" in value:
        region, keys = value["within"], ("x1", "y1", "x2", "y2")
        if not isinstance(region, dict) or sorted(region) != sorted(keys):
            raise ScriptError(f"{kind}: within is a grid region: `within: {{x1: 0, y1: 0, x2: 500, y2: 1000}}`")
        for k in keys:
            if not isinstance(region[k], int) or isinstance(region[k], bool) or not 0 <= region[k] <= 1000:
                raise ScriptError(f"{kind}: within: {k}={region[k]!r} is not on the 0..1000 grid")
        if region["x1"] >= region["x2"] or region["y1"] >= region["y2"]:
            raise ScriptError(f"{kind}: within needs x1 < x2 and y1 < y2 (the top-left corner, then the bottom-right)")
        out["within"] = tuple(region[k] for k in keys)
    if "strict" in value:
        if not isinstance(value["strict"], bool):
            raise ScriptError(f"{kind}: strict is true or false, got {value['strict']!r}")
        out["strict"] = value["strict"]
    said = [k for k in ("nth", "near") if k in out] + (["strict"] if out.get("strict") else [])
    if len(said) > 1:
        raise ScriptError(
            f"{kind}: {' and '.join(said)} contradict: nth and near each choose one match, strict refuses to choose"
        )
    return out


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
        button = value.get("button", "left") if isinstance(value, dict) else "left"
        return ScriptStep(kind, button, _target(value, kind, ("button",)), raw)
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
        options = value if isinstance(value, dict) else {"text": value}
        if unknown := [k for k in options if k not in ("text", "timeout", "by")]:
            raise ScriptError(f"expect: unknown option {unknown[0]!r}; it takes text, timeout and by (or that)")
        if (text := _text(options.get("text"))) is None:
            raise ScriptError("expect needs text: `expect: {text: Welcome}`")
        timeout = options.get("timeout", 5.0)
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 < timeout <= 600:
            raise ScriptError(f"expect: timeout must be seconds between 0 and 600, got {timeout!r}")
        by = options.get("by", "auto")
        if by not in EXPECT_BY:
            raise ScriptError(f"expect: by={by!r}; expected one of {', '.join(EXPECT_BY)}")
        return ScriptStep(kind, (text, float(timeout), by), source=raw)
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
        ocr: OcrLocator | None = None,
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
                if (missing := await self._wait_for_text(ctx, *step.value)) is not None:
                    return _fail(missing, step)
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
        match, choice = found
        if choice.get("ambiguous"):
            if target.strict:
                return _fail(_ambiguous(target.text, choice, ctx), step)
            log.warning(
                "%s: %d things match %r equally well; took %s by the ranking rule (say which with nth, near, "
                "within or role)",
                json.dumps(step.source),
                choice["matches"],
                target.text,
                _describe(choice["candidates"][0], ctx),
            )
        obs = ctx.observation
        cx, cy = match.box.center
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
        record = {**_candidate(match), "text": target.text, "by": match.source, **choice}
        return (x, y), {"target": record}

    async def _find(self, ctx: StepContext, target: Target) -> tuple[TextMatch, dict[str, Any]] | str:
        """The match to act on and what to record about the choice (the candidates when it was
        ambiguous), or why there is none.

        The env's own text (a DOM, an accessibility tree) is polled until the timeout; OCR reads the
        screenshot the step saw, then a fresh one each try (results are cached per screenshot), after
        a short grace in ``auto`` mode since it takes seconds.
        """
        text, by = target.text or "", target.by
        if by == "model":
            if self.grounder is None:
                return f"{text!r}: `by: model` needs a model; give a model URL"
            if (box := await self.grounder.locate(ctx.observation, text)) is None:
                return f"the model found no {text!r} on the screen"
            return TextMatch(box, text, exact=True, source="model"), {}
        env = ctx.env
        queries = env if isinstance(env, TextQueries) and by in ("auto", "dom") else None
        if by == "dom" and queries is None:
            return f"{text!r}: `by: dom` needs an env with a DOM (BrowserEnv)"
        if target.role is not None and queries is None:
            return f"{text!r}: `role:` needs an env that knows roles (a DOM); OCR cannot tell a button from text"
        use_ocr = by == "ocr" or (by == "auto" and queries is None)
        # auto: without the ocr extra, the DOM alone; OCR knows no roles
        can_ocr = (by == "ocr" or ocr_available()) and target.role is None
        if queries is None and not can_ocr:
            return f"{text!r}: finding text without a DOM needs OCR: pip install 'pixelpilot[ocr]'"
        obs = ctx.observation
        start = time.monotonic()
        while True:
            why = ""
            if queries is not None:
                near = await queries.find_text(target.near) if target.near else []
                picked = _pick(ctx, target, await queries.find_text(text, role=target.role), near, "on the page")
                if not isinstance(picked, str):
                    return picked
                why = picked
            if by == "auto" and time.monotonic() - start >= min(DOM_GRACE, self.locate_timeout):
                use_ocr = True
            if use_ocr and can_ocr:
                try:
                    near = await self.ocr.find(obs, target.near) if target.near else []
                    picked = _pick(ctx, target, await self.ocr.find(obs, text), near, "on the screen")
                except OcrUnavailable as e:
                    return f"{text!r}: {e}"
                if not isinstance(picked, str):
                    return picked
                why = why or picked
            if time.monotonic() - start >= self.locate_timeout:
                return why or f"no element with text {text!r} on the page"
            await asyncio.sleep(0.1)
            if use_ocr:  # OCR reads the screen as it is now, as expect's does
                obs = await ctx.env.observe()

    async def _wait_for_text(self, ctx: StepContext, text: str, timeout: float, by: str) -> str | None:
        """None once ``text`` shows, else (after ``timeout`` seconds) why the step fails.

        The env's own text (a DOM's) is polled; OCR reads fresh screenshots where there is none,
        with ``by: ocr``, and in ``auto`` mode also after a short grace (text drawn on a canvas).
        """
        env = ctx.env
        queries = env if isinstance(env, TextQueries) and by in ("auto", "dom") else None
        if by == "dom" and queries is None:
            return f"expect {text!r}: `by: dom` needs an env with a DOM (BrowserEnv)"
        can_ocr = by == "ocr" or ocr_available()
        if queries is None and not can_ocr:
            return f"expect {text!r}: reading a screen without a DOM needs OCR: pip install 'pixelpilot[ocr]'"
        use_ocr = by == "ocr" or queries is None
        want = normalize_text(text)
        obs = ctx.observation
        start = time.monotonic()
        while True:
            if queries is not None and want in normalize_text(await queries.page_text()):
                return None
            if by == "auto" and time.monotonic() - start >= min(DOM_GRACE, timeout):
                use_ocr = True
            if use_ocr and can_ocr:
                try:
                    lines = [line.text for line in await self.ocr.lines(obs)]
                except OcrUnavailable as e:
                    return f"expect {text!r}: {e}"
                if want in normalize_text(" ".join(lines)):  # in a line, or wrapped over several
                    return None
            if time.monotonic() - start >= timeout:
                return f"expected text {text!r} is not on the page"
            await asyncio.sleep(0.1)
            if use_ocr:
                obs = await env.observe()


def _candidate(match: TextMatch) -> dict[str, Any]:
    """What a step records about one match."""
    return {"box": [float(v) for v in match.box], "source": match.source, "role": match.role, "text": match.text}


def _grid_box(box: list[float], ctx: StepContext) -> dict[str, int]:
    """An input-space box as the grid region ``within:`` takes."""
    obs = ctx.observation
    left, top, width, height = box
    x1, y1 = ctx.grid.point_to_grid(left, top, obs.input_width, obs.input_height)
    x2, y2 = ctx.grid.point_to_grid(left + width, top + height, obs.input_width, obs.input_height)
    return {"x1": x1, "y1": y1, "x2": x2, "y2": y2}


def _describe(candidate: dict[str, Any], ctx: StepContext) -> str:
    """One recorded candidate in words, its box on the grid (what ``within:`` takes)."""
    region = ", ".join(f"{k}: {v}" for k, v in _grid_box(candidate["box"], ctx).items())
    role = f" ({candidate['role']})" if candidate["role"] else ""
    return f"{candidate['text']!r}{role} at {{{region}}} by {candidate['source']}"


def _ambiguous(text: str, choice: dict[str, Any], ctx: StepContext) -> str:
    """Why a strict step fails: what matched, with the boxes ``within:`` takes."""
    listed = "; ".join(_describe(c, ctx) for c in choice["candidates"])
    more = choice["matches"] - len(choice["candidates"])
    return (
        f"{text!r} matches {choice['matches']} things and the step is strict: {listed}"
        f"{f' and {more} more' if more else ''}; say which with nth, near, within or role"
    )


def _pick(
    ctx: StepContext, target: Target, found: list[TextMatch], anchors: list[TextMatch], where: str
) -> tuple[TextMatch, dict[str, Any]] | str:
    """The match ``target`` means among ``found`` (one source's matches; ``anchors`` are its matches of
    ``target.near``) and what to record about the choice, or why there is none yet."""
    text = target.text
    obs = ctx.observation
    w, h = obs.input_width, obs.input_height
    matches = found
    if target.within is not None:
        x1, y1, x2, y2 = (ctx.grid.to_pixel(v, n) for v, n in zip(target.within, (w, h, w, h), strict=True))
        matches = [m for m in found if x1 <= m.box.center[0] <= x2 and y1 <= m.box.center[1] <= y2]
    if not matches:
        missing = f"no element with text {text!r} {where}"
        if found:
            region = ", ".join(f"{k}: {v}" for k, v in zip(("x1", "y1", "x2", "y2"), target.within or (), strict=False))
            elsewhere = "; ".join(_describe(_candidate(m), ctx) for m in rank_matches(found))
            return f"{missing} within {{{region}}}; elsewhere: {elsewhere}"
        return missing + (f" with role {target.role!r}" if target.role else "")
    pointer = (
        None if ctx.pointer is None else (ctx.grid.to_pixel(ctx.pointer[0], w), ctx.grid.to_pixel(ctx.pointer[1], h))
    )
    ranked = rank_matches(matches, pointer)
    best = [m for m in ranked if m.exact == ranked[0].exact]  # fuzzy matches count only when no match is exact
    if target.near is not None:
        if not anchors:
            return f"{target.near!r} (near:) is not {where}"
        anchor = rank_matches(anchors, pointer)[0]
        ax, ay = anchor.box.center
        choices = [m for m in best if m.box != anchor.box] or best  # not the anchor itself
        return min(choices, key=lambda m: math.hypot(m.box.center[0] - ax, m.box.center[1] - ay)), {}
    if target.nth is not None:
        # Counted in reading order, which scrolling (to bring the n-th into view) does not change.
        ordered = sorted(matches, key=lambda m: (not m.exact, m.box[1], m.box[0]))
        if target.nth > len(ordered):
            listed = "; ".join(_describe(_candidate(m), ctx) for m in ordered)
            return f"nth: {target.nth}, but {len(ordered)} things match {text!r} {where}: {listed}"
        return ordered[target.nth - 1], {}
    if len(best) > 1:
        candidates = [_candidate(m) for m in best[:MAX_CANDIDATES]]
        return ranked[0], {"ambiguous": True, "matches": len(best), "candidates": candidates}
    return ranked[0], {}
