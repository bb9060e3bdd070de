"""Task-file steps for a desktop's windows and clipboard::

    - window: {focus: Mousepad}                 # a window by its title or app, whole or in part
    - window: {move: Mousepad, to: {x1: 0, y1: 0, x2: 500, y2: 1000}}   # on the grid, frame included
    - window: {close: Mousepad}
    - window: {expect: Mousepad, timeout: 5}    # fails the script when no such window shows
    - clipboard: {write: some text}             # or `clipboard: some text`
    - clipboard: {expect: some text, timeout: 5}   # fails unless the clipboard holds the text

``focus``, ``move``, ``close`` and ``write`` are actions (``window``, ``set_clipboard``), recorded
like every scripted action; the ``expect`` forms check and record nothing, as ``expect: {text: …}``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pydantic import ValidationError

from ..actions import SetClipboard, Window
from ..envs import Clipboard, Env, EnvError, Windows, normalize_text

STEP_KINDS = ("window", "clipboard")
#: The step kind a compiled ``expect`` form becomes (the script plays it with :func:`check`).
CHECK = "desktop_expect"
_OPS = ("focus", "move", "close", "expect")
_BOX_KEYS = ("x1", "y1", "x2", "y2")


def compile_desktop_step(kind: str, value: Any) -> tuple[str, Any]:
    """``(step kind, value)`` for a ``window:`` or ``clipboard:`` step: ``("action", the action's
    dict)`` or ``(CHECK, (what, text, timeout))``; ValueError saying how to write it."""
    if kind == "clipboard":
        return _clipboard(value)
    usage = "window needs one of focus, move, close, expect: `window: {focus: Mousepad}`"
    ops = [op for op in _OPS if isinstance(value, dict) and op in value]
    if len(ops) != 1:
        raise ValueError(usage)
    op = ops[0]
    name = value[op]
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"window {op} needs a window's title or app: `window: {{{op}: Mousepad}}`")
    allowed = {op, "timeout"} if op == "expect" else {op, "to"} if op == "move" else {op}
    if extra := sorted(set(value) - allowed):
        raise ValueError(f"window {op}: unknown key {extra[0]!r}; it takes {', '.join(sorted(allowed))}")
    if op == "expect":
        return CHECK, ("window", name, _timeout(value, "window"))
    data: dict[str, Any] = {"action": "window", "op": op, "window": name}
    if op == "move":
        to = value.get("to")
        if not isinstance(to, dict) or set(to) != set(_BOX_KEYS):
            raise ValueError("window move needs where: `to: {x1: 0, y1: 0, x2: 500, y2: 1000}` on the 0..1000 grid")
        data["box"] = [to[k] for k in _BOX_KEYS]
    try:
        Window.model_validate(data)
    except ValidationError as e:
        raise ValueError(f"window {op}: {e.errors()[0]['msg']}") from None
    return "action", data


def _clipboard(value: Any) -> tuple[str, Any]:
    usage = "clipboard needs `clipboard: {write: text}` or `clipboard: {expect: text}`"
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        value = {"write": value}
    if not isinstance(value, dict) or len({"write", "expect"} & set(value)) != 1:
        raise ValueError(usage)
    op = "write" if "write" in value else "expect"
    text = value[op]
    if not isinstance(text, (str, int, float)) or isinstance(text, bool) or (op == "expect" and not str(text)):
        raise ValueError(usage)
    allowed = {op, "timeout"} if op == "expect" else {op}
    if extra := sorted(set(value) - allowed):
        raise ValueError(f"clipboard {op}: unknown key {extra[0]!r}; it takes {', '.join(sorted(allowed))}")
    if op == "expect":
        return CHECK, ("clipboard", str(text), _timeout(value, "clipboard"))
    try:
        SetClipboard(text=str(text))
    except ValidationError as e:
        raise ValueError(f"clipboard write: {e.errors()[0]['msg']}") from None
    return "action", {"action": "set_clipboard", "text": str(text)}


def _timeout(value: dict[str, Any], kind: str) -> float:
    timeout = value.get("timeout", 5.0)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 <= timeout <= 60:
        raise ValueError(f"{kind} expect: timeout is seconds from 0 to 60, got {timeout!r}")
    return float(timeout)


async def check(env: Env, what: str, text: str, timeout: float) -> str | None:
    """Play a compiled ``expect`` form: None once it holds (asked again until ``timeout``), else why not."""
    try:
        if what == "window":
            return await _window_shows(env, text, timeout)
        return await _clipboard_holds(env, text, timeout)
    except EnvError as e:  # no window manager, no xclip
        return str(e)


async def _window_shows(env: Env, name: str, timeout: float) -> str | None:
    if not isinstance(env, Windows):
        return f"window expect needs an env with windows (DesktopEnv), not {env.label}"
    if await env.wait_for_window(name, timeout) is None:
        titles = ", ".join(repr(w.title) for w in await env.list_windows()) or "none"
        return f"no window called {name!r} showed within {timeout:g} s; open windows: {titles}"
    return None


async def _clipboard_holds(env: Env, text: str, timeout: float) -> str | None:
    if not isinstance(env, Clipboard):
        return f"clipboard expect needs an env with a clipboard (DesktopEnv), not {env.label}"
    deadline = time.monotonic() + timeout
    while normalize_text(text) not in normalize_text(held := await env.read_clipboard()):
        if time.monotonic() >= deadline:
            return f"the clipboard does not hold {text!r}; it holds {held[:200]!r}"
        await asyncio.sleep(0.1)
    return None
