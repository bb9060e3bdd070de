"""``ui-tars``: UI-TARS-1.5's Thought/Action text format, the second model family behind the same seam.

Sources: bytedance/UI-TARS (``README_v1.md`` and ``data/test_messages_single_image.json`` for the
1.x prompts, ``codes/ui_tars/action_parser.py`` for how an answer is read and executed,
``README_coordinates.md`` for coordinates). The answer is ``Thought: …`` then ``Action: <call>``,
where the call is Python-call syntax with literal keyword arguments; it is read with ``ast.parse``
on literals only, never evaluated. Coordinates are pixels of the image the model was sent (UI-TARS-1.5
is built on Qwen2.5-VL: 28-px patches, absolute coordinates), mapped to and from the episode's grid.

The prompt follows the official layout: a system turn, a user turn with the prompt and the task,
then per step the screenshot and the model's answer; old screenshots leave in blocks (the official
agent keeps the last 5).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..actions.keys import canonical_key
from ..serving.client import Sampling
from . import base
from .base import ActionParseError, DecodeContext, EncodeError, Setup, clip
from .conversation import Message
from .grammar import Grammar, choice, integer, literal

#: The official agents scroll 5 wheel notches per call (``pyautogui.scroll(±5)``); 50 grid units each,
#: as in the qwen3-vl profile.
SCROLL = 250
#: How far a phone ``scroll`` moves the finger, in grid units (the content follows it).
SWIPE = 300

_BOX = "start_box='<|box_start|>(x1,y1)<|box_end|>'"
_COMPUTER_SPACE = (
    ("click", ("click",), f"click({_BOX})"),
    ("left_double", ("double_click",), f"left_double({_BOX})"),
    ("right_single", ("click",), f"right_single({_BOX})"),
    ("drag", ("drag",), f"drag({_BOX}, end_box='<|box_start|>(x3,y3)<|box_end|>')"),
    ("hotkey", ("key",), "hotkey(key='')"),
    ("type", ("type",), "type(content='') #If you want to submit your input, use \"\\n\" at the end of `content`."),
    ("scroll", ("scroll",), f"scroll({_BOX}, direction='down or up or right or left')"),
    ("wait", ("wait",), "wait() #Sleep for 5s and take a screenshot to check for any changes."),
    (
        "finished",
        ("answer", "terminate"),
        "finished(content='xxx') # Use escape characters \\', \\\", and \\n in content part to ensure we can "
        "parse the content in normal python string format.",
    ),
    (
        "call_user",
        ("terminate",),
        "call_user() # Submit the task and call the user when the task is unsolvable, or when you need the user's help.",
    ),
)
_MOBILE_SPACE = (
    ("click", ("click",), f"click({_BOX})"),
    ("long_press", ("long_press",), f"long_press({_BOX})"),
    ("type", ("type",), "type(content='') #If you want to submit your input, use \"\\n\" at the end of `content`."),
    ("scroll", ("swipe",), f"scroll({_BOX}, direction='down or up or right or left')"),
    ("open_app", ("open_app",), "open_app(app_name='')"),
    ("drag", ("swipe",), f"drag({_BOX}, end_box='<|box_start|>(x3,y3)<|box_end|>')"),
    ("press_home", ("system_button",), "press_home()"),
    ("press_back", ("system_button",), "press_back()"),
    _COMPUTER_SPACE[-2],
    _COMPUTER_SPACE[-1],
)
PROMPT = (
    "You are a GUI agent. You are given a task and your action history, with screenshots. You need to perform "
    "the next action to complete the task.\n\n## Output Format\n```\nThought: ...\nAction: ...\n```\n\n"
    "## Action Space\n\n{space}\n\n## Note\n- Use English in `Thought` part.\n"
    "- Write a small plan and finally summarize your next action (with its target element) in one sentence "
    "in `Thought` part.\n\n## User Instruction\n{task}"
)
_ANSWER = re.compile(r"^\s*(?:Thought:\s*(?P<thought>.*?)\s*)?Action:\s*(?P<call>.+?)\s*$", re.S)
_POINT = re.compile(
    r"^\s*(?:<\|box_start\|>)?\(\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*\)(?:<\|box_end\|>)?\s*$"
)


class UITars(base.Profile):
    name = "ui-tars"
    summary = "UI-TARS-1.5: Thought/Action text with Python-call actions, coordinates in the sent image's pixels"
    image_factor = 28
    keep_images = 5
    drop_block = 8

    def space(self, setup: Setup) -> tuple[tuple[str, tuple[str, ...], str], ...]:
        full = _MOBILE_SPACE if setup.kind == "mobile" else _COMPUTER_SPACE
        return tuple(entry for entry in full if set(entry[1]) & set(setup.allowed))

    def check(self, setup: Setup) -> None:
        if setup.tools and "tool" in setup.allowed:
            raise ValueError("the ui-tars profile has no tool calls; leave tools out")
        if setup.actions is not None:
            offered = {a for _, acts, _ in self.space(setup) for a in acts}
            missing = [a for a in setup.actions if a not in offered]
            if missing:
                raise ValueError(f"the ui-tars profile cannot offer {missing} in a {setup.kind} env")

    def messages(self, setup: Setup, task: str, history: Sequence[base.PastStep], current: base.Turn) -> list[Message]:
        prompt = PROMPT.format(space="\n".join(line for _, _, line in self.space(setup)), task=task.strip())
        out = [Message.text("system", "You are a helpful assistant."), Message.text("user", prompt)]
        first = base.first_shown(len(history), setup.keep_images, setup.drop_block)
        error: str | None = None
        for i, step in enumerate(history):
            user = self._user(step.turn, i >= first, error)
            if user is not None:
                out.append(user)
            out.append(Message.text("assistant", self.history_answer(step.answer)))
            error = step.error
        out.append(self._user(current, True, error) or Message.text("user", "(no screenshot)"))
        return out

    def _user(self, turn: base.Turn, show: bool, error: str | None) -> Message | None:
        lines = [f"The previous action failed: {error.strip()}"] if error else []
        lines += [n.strip() for n in turn.notes if n.strip()]
        parts: list[Any] = [turn.image] if show and turn.image is not None else []
        if lines:
            parts.append("\n".join(lines))
        return Message("user", tuple(parts)) if parts else None

    # --- grammar -------------------------------------------------------------------------------

    def constraint(self, setup: Setup, image: tuple[int, int] | None = None) -> dict[str, Any]:
        if image is None:
            raise ValueError("the ui-tars grammar needs the size of the image the model is sent")
        return {"ebnf": self.grammar(setup, image)}

    def grammar(self, setup: Setup, image: tuple[int, int]) -> str:
        w, h = image
        g = Grammar()
        head = '"\\n\\n" ' if setup.thinking else ""
        g.add("root", f'{head}"Thought: " line "\\nAction: " call')
        g.add("line", "[^<\\n]+")  # one line, and no tag (no <tool_call>, no </think>) inside it
        g.add("box", f'"\'(" {g.add("px", integer(0, w - 1))} "," {g.add("py", integer(0, h - 1))} ")\'"')
        # Quotes, backslashes and line breaks escaped, as the prompt asks (and as the encoder writes them).
        g.add("content", '"\'" ([^\'\\"\\\\\\n] | "\\\\" [\'\\"\\\\n])* "\'"')
        key = g.add("key_name", choice(literal(k) for k in base.key_spellings(exclude=" '\\")))  # space separates keys
        calls = {
            "click": '"click(start_box=" box ")"',
            "left_double": '"left_double(start_box=" box ")"',
            "right_single": '"right_single(start_box=" box ")"',
            "long_press": '"long_press(start_box=" box ")"',
            "drag": '"drag(start_box=" box ", end_box=" box ")"',
            "hotkey": f'"hotkey(key=\'" {key} (" " {key}){{0,2}} "\')"',
            "type": '"type(content=" content ")"',
            "scroll": '"scroll(start_box=" box ", direction=\'" ("down" | "up" | "right" | "left") "\')"',
            "wait": '"wait()"',
            "finished": '"finished(content=" content ")"',
            "call_user": '"call_user()"',
            "open_app": '"open_app(app_name=" content ")"',
            "press_home": '"press_home()"',
            "press_back": '"press_back()"',
        }
        g.add("call", " | ".join(calls[name] for name, _, _ in self.space(setup)))
        return g.text()

    # --- decoding ------------------------------------------------------------------------------

    def decode(self, text: str, ctx: DecodeContext) -> base.ParsedOutput:
        if not isinstance(text, str) or not text.strip():
            raise ActionParseError("the model returned no text", text or "")
        m = _ANSWER.match(base.strip_think(text)[1])
        if m is None:
            raise ActionParseError(f"no 'Action: …' line in the output: {clip(text)}", text)
        name, kwargs = _read_call(m.group("call"), text)
        action = self._action(name, kwargs, text, ctx)
        return base.ParsedOutput(action, (m.group("thought") or "").strip(), text, self.name)

    def _action(self, name: str, kw: dict[str, str], raw: str, ctx: DecodeContext) -> Any:
        setup = ctx.setup
        grid = setup.grid
        mobile = setup.kind == "mobile"

        def point(key: str) -> tuple[int, int]:
            if ctx.image is None:
                raise ActionParseError("ui-tars coordinates are pixels of the sent image, whose size is unknown", raw)
            found = _POINT.match(kw.get(key, ""))
            if found is None:
                raise ActionParseError(f"{key} must be '(x,y)', got {kw.get(key)!r}", raw)
            w, h = ctx.image
            x, y = float(found.group(1)), float(found.group(2))
            return min(max(round(x * grid / w), 0), grid), min(max(round(y * grid / h), 0), grid)

        out: dict[str, Any]
        if name in ("click", "left_single", "left_double", "right_single", "long_press"):
            x, y = point("start_box")
            kinds = {"left_double": "double_click", "long_press": "long_press"}
            out = {"action": kinds.get(name, "click"), "x": x, "y": y}
            if name == "right_single":
                out["button"] = "right"
        elif name in ("drag", "select"):
            x, y = point("start_box")
            x2, y2 = point("end_box")
            out = {"action": "swipe" if mobile else "drag", "x": x, "y": y, "x2": x2, "y2": y2}
        elif name == "scroll":
            x, y = point("start_box")
            way = kw.get("direction", "").strip().lower()
            if way not in ("down", "up", "right", "left"):
                raise ActionParseError(f"scroll direction must be down, up, right or left, got {way!r}", raw)
            if mobile:  # the finger moves against the direction, so that content from there comes into view
                d = SWIPE * grid // 1000
                dx, dy = {"down": (0, -d), "up": (0, d), "right": (-d, 0), "left": (d, 0)}[way]
                out = {
                    "action": "swipe",
                    "x": x,
                    "y": y,
                    "x2": min(max(x + dx, 0), grid),
                    "y2": min(max(y + dy, 0), grid),
                }
            else:
                d = SCROLL * grid // 1000
                dx, dy = {"down": (0, d), "up": (0, -d), "right": (d, 0), "left": (-d, 0)}[way]
                out = {"action": "scroll", "x": x, "y": y, "dx": dx, "dy": dy}
        elif name == "hotkey":
            try:
                out = {"action": "key", "keys": [canonical_key(k) for k in kw.get("key", "").split()]}
            except ValueError as e:
                raise ActionParseError(str(e), raw) from None
        elif name == "type":
            out = {"action": "type", "text": kw.get("content", "")}
        elif name == "wait":
            out = {"action": "wait", "seconds": 5.0}
        elif name == "finished":
            content = kw.get("content", "")
            out = {"action": "answer", "text": content} if content else {"action": "terminate", "status": "success"}
        elif name == "call_user":
            out = {"action": "terminate", "status": "failure"}
        elif name == "open_app":
            out = {"action": "open_app", "name": kw.get("app_name")}
        elif name in ("press_home", "press_back"):
            out = {"action": "system_button", "button": name.removeprefix("press_")}
        else:
            raise ActionParseError(f"unknown ui-tars action {name!r}", raw)
        return base.validate_action(out, raw)

    # --- encoding ------------------------------------------------------------------------------

    def encode(self, action: Mapping[str, Any], ctx: DecodeContext, description: str) -> str:
        # the grammar's line has no "<"
        thought = " ".join(description.replace("<", "").split()) or base.describe(action)
        return f"Thought: {thought}\nAction: {self.call_of(action, ctx)}"

    def call_of(self, a: Mapping[str, Any], ctx: DecodeContext) -> str:
        setup = ctx.setup
        grid = setup.grid
        mobile = setup.kind == "mobile"
        if ctx.image is None:
            raise EncodeError("ui-tars coordinates are pixels of the sent image, whose size is unknown")
        w, h = ctx.image

        def box(x: int, y: int) -> str:
            return f"'({min(round(x * w / grid), w - 1)},{min(round(y * h / grid), h - 1)})'"

        kind = a["action"]
        if kind == "click" and a.get("button", "left") in ("left", "right"):
            name = "right_single" if a.get("button") == "right" else "click"
            return f"{name}(start_box={box(a['x'], a['y'])})"
        if kind == "double_click" and not mobile:
            return f"left_double(start_box={box(a['x'], a['y'])})"
        if kind == "long_press" and mobile and a.get("seconds", 1.0) == 1.0:
            return f"long_press(start_box={box(a['x'], a['y'])})"
        if (kind == "drag" and not mobile) or (kind == "swipe" and mobile):
            return f"drag(start_box={box(a['x'], a['y'])}, end_box={box(a['x2'], a['y2'])})"
        if kind == "scroll" and not mobile:
            d = SCROLL * grid // 1000
            ways = {(0, d): "down", (0, -d): "up", (d, 0): "right", (-d, 0): "left"}
            way = ways.get((a.get("dx", 0), a.get("dy", 0)))
            if way is None:
                raise EncodeError(f"a ui-tars scroll moves {d} grid units along one axis")
            return f"scroll(start_box={box(a['x'], a['y'])}, direction='{way}')"
        if kind == "key" and not mobile and len(a["keys"]) <= 3 and not set("".join(a["keys"])) & set(" '\\"):
            return f"hotkey(key='{' '.join(a['keys'])}')"
        if kind == "type":
            return f"type(content={_quote(a['text'])})"
        if kind == "wait" and not mobile and a.get("seconds") == 5.0:
            return "wait()"
        if kind == "answer":
            return f"finished(content={_quote(a['text'])})"
        if kind == "terminate":
            return "finished(content='')" if a.get("status", "success") == "success" else "call_user()"
        if kind == "open_app" and mobile:
            return f"open_app(app_name={_quote(a['name'])})"
        if kind == "system_button" and mobile and a["button"] in ("home", "back"):
            return f"press_{a['button']}()"
        raise EncodeError(f"{kind} has no ui-tars form in a {setup.kind} env (or not with these values)")

    def sampling(self, model: str | None, setup: Setup) -> Sampling | None:
        return None

    def point_space(self, setup: Setup, image: tuple[int, int]) -> tuple[int, int]:
        return image  # absolute pixels of the image the model was sent


def _quote(text: str) -> str:
    """A single-quoted literal with the escapes the UI-TARS prompt asks for (``\\'``, ``\\"``, ``\\n``)."""
    body = text.replace("\\", "\\\\").replace("'", "\\'").replace('"', '\\"').replace("\n", "\\n")
    if any(ord(c) < 0x20 for c in body):
        raise EncodeError("ui-tars text cannot hold control characters other than newlines")
    return f"'{body}'"


def _read_call(source: str, raw: str) -> tuple[str, dict[str, str]]:
    """``name(key='value', …)`` read with ``ast.parse`` (literals only; nothing is evaluated)."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as e:
        raise ActionParseError(f"the action is not a call: {e.msg}: {clip(source)}", raw) from None
    call = tree.body
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name) or call.args:
        raise ActionParseError(f"the action must be name(key='value', …): {clip(source)}", raw)
    kwargs: dict[str, str] = {}
    for kw in call.keywords:
        if kw.arg is None or not isinstance(kw.value, ast.Constant) or not isinstance(kw.value.value, str):
            raise ActionParseError(f"every argument must be key='text': {clip(source)}", raw)
        kwargs[kw.arg] = kw.value.value
    return call.func.id, kwargs
