"""Model text -> a typed action. Model output is data: it is parsed, never evaluated.

Accepted forms, in the order they are tried:

- ``<think>…</think>`` anywhere in front: kept as the thought (also a lone ``</think>``, which is
  what a server's reasoning parser leaves behind);
- Qwen's ``<tool_call>{"name": "computer_use" | "mobile_use", "arguments": {…}}</tool_call>``,
  optionally after a ``Thought:`` line;
- JSON in a fenced code block;
- plain JSON: ``{"thought": …, "action": {…}}`` (the structured-output form), a bare action
  ``{"action": "click", "x": …}``, or Qwen's arguments object ``{"action": "left_click", …}``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from .models import ACTION_TYPES, GRID_MAX, action_from_dict


class ActionParseError(ValueError):
    """The model's output could not be turned into a valid action; the message says why."""

    def __init__(self, message: str, raw: str = "") -> None:
        super().__init__(message)
        self.raw = raw


@dataclass(frozen=True)
class ParsedOutput:
    """A parsed model answer: the action, the model's stated reasoning, and the text it came from."""

    action: Any
    thought: str
    raw: str
    format: str  # "json" | "tool_call"


_THINK = re.compile(r"<think>(.*?)</think>", re.S)
_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.S)
_THOUGHT_PREFIX = re.compile(r"^\s*(?:thought|thinking|reasoning)\s*:\s*", re.I)
_ACTION_LINE = re.compile(r"^\s*action\s*:.*$", re.I | re.M)


def parse_output(text: str, *, pointer: tuple[int, int] | None = None) -> ParsedOutput:
    """Parse one model answer into an action.

    ``pointer`` is the last pointer position on the grid; Qwen's ``left_click_drag`` names only
    the end point and starts wherever the pointer is.

    Raises ``ActionParseError`` naming what was wrong.
    """
    if not isinstance(text, str) or not text.strip():
        raise ActionParseError("the model returned no text", text or "")
    raw = text
    thoughts = [m.strip() for m in _THINK.findall(text)]
    body = _THINK.sub("", text)
    if "</think>" in body:  # opening tag stripped upstream
        before, body = body.rsplit("</think>", 1)
        thoughts.append(before.strip())

    calls = _TOOL_CALL.findall(body)
    if calls:
        prose = body[: body.find("<tool_call>")]
        thoughts.append(_clean_prose(prose))
        obj = _loads(calls[0], raw, "the <tool_call> block")
        action = _from_qwen_call(obj, raw, pointer)
        return ParsedOutput(action, _join(thoughts), raw, "tool_call")

    fenced = _FENCE.search(body)
    if fenced:
        thoughts.append(_clean_prose(body[: fenced.start()]))
        obj = _loads(fenced.group(1), raw, "the fenced code block")
    else:
        start, end = body.find("{"), body.rfind("}")
        if start < 0 or end < start:
            raise ActionParseError(f"no JSON object or <tool_call> block in the output: {_clip(raw)}", raw)
        thoughts.append(_clean_prose(body[:start]))
        obj = _loads(body[start : end + 1], raw, "the JSON object")
    action, thought = _from_object(obj, raw, pointer)
    if thought:
        thoughts.append(thought)
    return ParsedOutput(action, _join(thoughts), raw, "json")


def _from_object(obj: Any, raw: str, pointer: tuple[int, int] | None) -> tuple[Any, str]:
    if not isinstance(obj, dict):
        raise ActionParseError(f"expected a JSON object, got {type(obj).__name__}", raw)
    if "name" in obj and "arguments" in obj:
        return _from_qwen_call(obj, raw, pointer), ""
    thought = obj.get("thought") or ""
    if not isinstance(thought, str):
        raise ActionParseError("'thought' must be a string", raw)
    inner = obj.get("action")
    if isinstance(inner, dict):
        return _validate(inner, raw), thought
    if isinstance(inner, str):
        if inner in ACTION_TYPES:
            return _validate({k: v for k, v in obj.items() if k != "thought"}, raw), thought
        if inner in _QWEN:
            return _from_qwen_args(obj, raw, pointer), thought
        raise ActionParseError(f"unknown action {inner!r}; expected one of {sorted(ACTION_TYPES)}", raw)
    raise ActionParseError("the JSON object has no 'action' field", raw)


def _validate(data: dict[str, Any], raw: str) -> Any:
    kind = data.get("action")
    if kind not in ACTION_TYPES:
        raise ActionParseError(f"unknown action {kind!r}; expected one of {sorted(ACTION_TYPES)}", raw)
    try:
        return action_from_dict(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'][1:]) or 'action'}: {err['msg']}" for err in e.errors()
        )
        raise ActionParseError(f"invalid {kind} action: {problems}", raw) from None


# --- Qwen's computer_use / mobile_use function calls -------------------------------------------

_QWEN = {
    "left_click",
    "right_click",
    "middle_click",
    "double_click",
    "triple_click",
    "mouse_move",
    "left_click_drag",
    "scroll",
    "hscroll",
    "key",
    "type",
    "wait",
    "terminate",
    "answer",
    "click",
    "long_press",
    "swipe",
    "system_button",
    "open",
}


def _from_qwen_call(obj: Any, raw: str, pointer: tuple[int, int] | None) -> Any:
    if not isinstance(obj, dict) or not isinstance(obj.get("arguments"), dict):
        raise ActionParseError("a tool call needs an 'arguments' object", raw)
    name = obj.get("name")
    if name not in ("computer_use", "mobile_use"):
        # Any other function name is a call of one of our registered tools.
        if not isinstance(name, str) or not name:
            raise ActionParseError("a tool call needs a 'name'", raw)
        return _validate({"action": "tool", "name": name, "arguments": obj["arguments"]}, raw)
    return _from_qwen_args(obj["arguments"], raw, pointer)


def _point(args: dict[str, Any], key: str, raw: str) -> tuple[Any, Any]:
    value = args.get(key)
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ActionParseError(f"'{key}' must be [x, y] on the 0..{GRID_MAX} grid, got {value!r}", raw)
    return value[0], value[1]


def _from_qwen_args(args: dict[str, Any], raw: str, pointer: tuple[int, int] | None) -> Any:
    act = args.get("action")
    if act not in _QWEN:
        raise ActionParseError(f"unknown computer_use/mobile_use action {act!r}", raw)
    out: dict[str, Any]
    if act in (
        "left_click",
        "click",
        "right_click",
        "middle_click",
        "double_click",
        "triple_click",
        "mouse_move",
        "long_press",
    ):
        x, y = _point(args, "coordinate", raw)
        kind = {"left_click": "click", "right_click": "click", "middle_click": "click", "mouse_move": "move"}.get(
            act, act
        )
        out = {"action": kind, "x": x, "y": y}
        if act in ("right_click", "middle_click"):
            out["button"] = act.split("_")[0]
        if act == "long_press" and "time" in args:
            out["seconds"] = args["time"]
    elif act == "left_click_drag":
        x2, y2 = _point(args, "coordinate", raw)
        if "start_coordinate" in args:
            x, y = _point(args, "start_coordinate", raw)
        elif pointer is not None:
            x, y = pointer
        else:
            raise ActionParseError("left_click_drag starts at the pointer, but no pointer position is known yet", raw)
        out = {"action": "drag", "x": x, "y": y, "x2": x2, "y2": y2}
    elif act == "swipe":
        x, y = _point(args, "coordinate", raw)
        x2, y2 = _point(args, "coordinate2", raw)
        out = {"action": "swipe", "x": x, "y": y, "x2": x2, "y2": y2}
    elif act in ("scroll", "hscroll"):
        # Qwen declares the screen as a 1000x1000 grid, so its "pixels" are grid units; positive
        # scrolls up (or right, for hscroll).
        pixels = args.get("pixels", 0)
        if not isinstance(pixels, (int, float)):
            raise ActionParseError(f"'pixels' must be a number, got {pixels!r}", raw)
        x, y = _point(args, "coordinate", raw) if "coordinate" in args else (500, 500)
        out = {"action": "scroll", "x": x, "y": y, "dx": 0, "dy": 0}
        if act == "scroll":
            out["dy"] = -round(pixels)
        else:
            out["dx"] = round(pixels)
    elif act == "key":
        keys = args.get("keys", args.get("text"))
        if isinstance(keys, str):
            keys = [k for k in re.split(r"\s*\+\s*", keys) if k]
        out = {"action": "key", "keys": keys}
    elif act in ("type", "answer"):
        out = {"action": act, "text": args.get("text")}
    elif act == "wait":
        out = {"action": "wait", "seconds": args.get("time", 1.0)}
    elif act == "terminate":
        out = {"action": "terminate", "status": args.get("status", "success")}
    elif act == "system_button":
        button = args.get("button")
        out = {"action": "system_button", "button": button.lower() if isinstance(button, str) else button}
    else:  # open
        out = {"action": "open_app", "name": args.get("text", args.get("name"))}
    return _validate(out, raw)


# --- helpers ------------------------------------------------------------------------------------


def _loads(text: str, raw: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ActionParseError(f"{where} is not valid JSON ({e.msg} at char {e.pos}): {_clip(text)}", raw) from None


def _clean_prose(text: str) -> str:
    text = _ACTION_LINE.sub("", text)
    return _THOUGHT_PREFIX.sub("", text.strip()).strip()


def _join(parts: list[str]) -> str:
    return "\n".join(p for p in parts if p)


def _clip(text: str, n: int = 120) -> str:
    text = text.strip().replace("\n", "\\n")
    return text if len(text) <= n else text[:n] + "…"
