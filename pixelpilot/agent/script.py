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
    - answer: done                     # end with an answer

A step may also be a plain action (``{action: drag, x: …, y: …, x2: …, y2: …}``). Text targets are
resolved through the page's DOM to the element's box and recorded as coordinate clicks that
keep the target text, so a scripted run is also training data.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ..actions import (
    ACTION_TYPES, Back, Click, DoubleClick, Key, Navigate, Scroll, Terminate, TripleClick, Type, Wait,
    action_from_dict,
)
from ..actions import Answer as AnswerAction
from .policy import Decision, StepContext

STEP_KINDS = ("goto", "click", "double_click", "triple_click", "type", "press", "scroll", "wait",
              "back", "expect", "answer", "action")

_CLICKS = {"click": Click, "double_click": DoubleClick, "triple_click": TripleClick}


class ScriptError(ValueError):
    """A script step is malformed; the message says which and how to fix it."""


@dataclass
class Target:
    """Where a pointer step goes: visible text, or a grid point."""

    text: str | None = None
    x: int | None = None
    y: int | None = None


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
            return Target(text=value["text"])
        if isinstance(value.get("x"), int) and isinstance(value.get("y"), int):
            for k in ("x", "y"):
                if not 0 <= value[k] <= 1000:
                    raise ScriptError(f"{kind}: {k}={value[k]} is off the 0..1000 grid")
            return Target(x=value["x"], y=value["y"])
    raise ScriptError(f"{kind} needs visible text (`{kind}: Sign in`) or a grid point (`{kind}: {{x: 500, y: 300}}`)")


def compile_step(raw: Any) -> ScriptStep:
    """Check one script step and turn it into a ScriptStep; raises ScriptError saying what is wrong."""
    if not isinstance(raw, dict):
        raise ScriptError(f"a step must be a mapping like `click: Sign in`, got {raw!r}")
    if "action" in raw:
        try:
            action_from_dict(raw)
        except ValidationError as e:
            err = e.errors()[0]
            raise ScriptError(f"invalid {raw.get('action')} action: {'.'.join(map(str, err['loc'][1:]))} {err['msg']}") from None
        return ScriptStep("action", raw, source=raw)
    if len(raw) != 1:
        raise ScriptError(f"a step has exactly one key (one of {', '.join(STEP_KINDS)}), got {sorted(raw)}")
    kind, value = next(iter(raw.items()))
    if kind not in STEP_KINDS:
        hint = f"; as a raw action write `action: {kind}`" if kind in ACTION_TYPES else ""
        raise ScriptError(f"unknown step {kind!r}; expected one of {', '.join(STEP_KINDS)}{hint}")
    if kind in _CLICKS:
        return ScriptStep(kind, value.get("button", "left") if isinstance(value, dict) else "left",
                          _target(value, kind), raw)
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
    if kind == "expect":
        text = value.get("text") if isinstance(value, dict) else value
        if not isinstance(text, str) or not text:
            raise ScriptError("expect needs text: `expect: {text: Welcome}`")
        timeout = value.get("timeout", 5.0) if isinstance(value, dict) else 5.0
        return ScriptStep(kind, (text, float(timeout)), source=raw)
    # answer
    return ScriptStep(kind, str(value), source=raw)


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


class ScriptPolicy:
    """Plays a script back. Steps come from the constructor or from ``task.steps``."""

    def __init__(self, steps: list[dict[str, Any]] | None = None, *, locate_timeout: float = 5.0,
                 max_scrolls: int = 6) -> None:
        self._given = [compile_step(s) for s in steps] if steps is not None else None
        self.locate_timeout = locate_timeout
        self.max_scrolls = max_scrolls
        self._steps: list[ScriptStep] = []
        self._cursor = 0
        self._pending: list[Decision] = []  # the rest of a step that takes two actions
        self._scrolls = 0

    async def decide(self, ctx: StepContext) -> Decision:
        if ctx.index == 0:
            self._steps = self._given if self._given is not None else [compile_step(s) for s in ctx.task.steps or []]
            self._cursor, self._pending, self._scrolls = 0, [], 0
        if self._pending:
            return self._pending.pop(0)
        while self._cursor < len(self._steps):
            step = self._steps[self._cursor]
            raw = json.dumps(step.source)
            if step.kind == "expect":
                text, timeout = step.value
                if not await self._wait_for_text(ctx, text, timeout):
                    msg = f"expected text {text!r} is not on the page"
                    return Decision(Terminate(status="failure"), thought=msg, raw=raw, message=msg)
                self._cursor += 1
                continue
            result = await self._step_actions(ctx, step)
            if isinstance(result, Decision):
                return result  # a scroll towards the target, or a failure
            self._cursor += 1
            self._scrolls = 0
            first, *self._pending = [Decision(a, raw=raw, extra=e) for a, e in result]
            return first
        return Decision(Terminate(status="success"), thought="the script is done", raw=None)

    async def _step_actions(self, ctx: StepContext, step: ScriptStep) -> "list[tuple[Any, dict[str, Any]]] | Decision":
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
            "goto": lambda: Navigate(url=v), "press": lambda: Key(keys=v), "scroll": lambda: Scroll(**v),
            "wait": lambda: Wait(seconds=v), "back": lambda: Back(), "answer": lambda: AnswerAction(text=v),
            "action": lambda: action_from_dict(v),
        }
        return [(simple[k](), {})]

    async def _resolve(self, ctx: StepContext, target: Target | None, step: ScriptStep):
        """A grid point for the target, or a Decision (scroll it into view / fail)."""
        assert target is not None
        if target.text is None:
            return (target.x, target.y), {}
        locate = getattr(ctx.env, "locate_text", None)
        if locate is None:
            msg = f"{step.kind} by text needs an env with a text locator (BrowserEnv); give x and y instead"
            return Decision(Terminate(status="failure"), thought=msg, raw=json.dumps(step.source), message=msg)
        obs = ctx.observation
        deadline = time.monotonic() + self.locate_timeout
        while (box := await locate(target.text)) is None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        if box is None:
            msg = f"no element with text {target.text!r} on the page"
            return Decision(Terminate(status="failure"), thought=msg, raw=json.dumps(step.source), message=msg)
        cx, cy = box.center
        w, h = obs.input_width, obs.input_height
        if not (0 <= cx < w and 0 <= cy < h) and self._scrolls < self.max_scrolls:
            # Off screen: scroll it towards the middle first, so the screenshot shows what is clicked.
            self._scrolls += 1
            dy = max(-1000, min(1000, round((cy - h / 2) * 1000 / h)))
            dx = max(-1000, min(1000, round((cx - w / 2) * 1000 / w))) if not 0 <= cx < w else 0
            return Decision(Scroll(dx=dx, dy=dy), thought=f"scroll {target.text!r} into view",
                            raw=json.dumps(step.source), extra={"target": {"text": target.text}})
        x, y = ctx.grid.point_to_grid(cx, cy, w, h)
        return (x, y), {"target": {"text": target.text, "box": list(box)}}

    async def _wait_for_text(self, ctx: StepContext, text: str, timeout: float) -> bool:
        page_text = getattr(ctx.env, "page_text", None)
        if page_text is None:
            raise ScriptError("expect needs an env that can read its text (BrowserEnv)")
        deadline = time.monotonic() + timeout
        want = _norm(text)
        while True:
            if want in _norm(await page_text()):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.1)
