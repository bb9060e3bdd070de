"""``qwen3-vl``: Qwen3-VL's own computer-use format (Instruct and Thinking checkpoints).

Sources (read them for the facts this module carries over):

- QwenLM/Qwen3-VL ``cookbooks/utils/agent_function_call.py``: the ``computer_use`` and
  ``mobile_use`` tools (actions, parameters, which action requires which parameter, the
  instructions in their descriptions); ``cookbooks/mobile_agent.ipynb``: the mobile system prompt,
  its "999x999" screen and its ``answer`` action, coordinates mapped back with ``x/999*W``.
- xlang-ai/OSWorld ``mm_agents/qwen3vl_agent.py``: the response format (one ``Action:`` line, then
  exactly one ``<tool_call>``), the user turn (the screenshot first, then the instruction with the
  earlier steps as "Step i: <Action line>"), the history (the last 4 screenshot turns with the
  model's answers), and ``pyautogui.scroll(pixels)``: ``pixels`` are wheel notches.
- Qwen3-VL's chat template: the ``# Tools`` block, and for Thinking checkpoints the reasoning
  dropped from earlier assistant turns.
- The Qwen3-VL README ("Generation Hyperparameters"): the sampling sent with each request.

Browsers and desktops get ``computer_use`` on its declared 1000x1000 screen, phones ``mobile_use``
on 999x999; coordinates are mapped to and from the episode's grid. pixelpilot actions with no
official counterpart come as extra functions in ``<tools>``, written like the official ones:
``browser`` (navigate, back) and ``desktop`` (open), and each registered tool. Every difference
from the official format is listed, with its reason, in docs/models.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..actions.keys import canonical_key
from ..serving.client import Sampling
from . import base
from .base import ActionParseError, DecodeContext, EncodeError, Setup, strip_think, validate_action
from .conversation import Message
from .grammar import JSON_STRING_RULES, Grammar, SchemaGrammar, choice, integer, json_call, literal, number

#: Grid units per wheel notch. The official agents execute ``pixels`` as ``pyautogui.scroll(pixels)``,
#: which turns the wheel that many notches; a notch moves a page about 50 px (three lines; Chromium's
#: is 53), so one notch is taken as 1/20 of a screen. ``MAX_NOTCHES`` keeps a scroll within one screen.
NOTCH = 50
MAX_NOTCHES = 20


@dataclass(frozen=True)
class Act:
    """One action of a function: its official name, its line in the ``action`` description, and the
    pixelpilot action it stands for where that has another name."""

    name: str
    line: str
    pixelpilot: str = ""

    @property
    def action(self) -> str:
        """The pixelpilot action it stands for."""
        return self.pixelpilot or self.name


@dataclass(frozen=True)
class Function:
    """One function of the ``<tools>`` block, as Qwen-Agent's BaseTool declares it."""

    name: str
    description: str
    #: The actions, in enum order.
    actions: tuple[Act, ...]
    #: parameter -> (JSON type, description); the ``action`` parameter comes first, then these in order.
    params: tuple[tuple[str, str, str], ...]
    #: official action -> the parameters it writes, in parameter order (optional ones end with ``?``).
    writes: Mapping[str, tuple[str, ...]]
    #: The declared screen resolution (coordinates are on 0..resolution).
    resolution: int = 1000

    def offered(self, allowed: Sequence[str]) -> tuple[Act, ...]:
        return tuple(a for a in self.actions if a.action in allowed)

    def schema(self, allowed: Sequence[str]) -> dict[str, Any]:
        """The function as it appears in ``<tools>`` (only the actions on offer)."""
        acts = self.offered(allowed)
        used = {p.rstrip("?") for a in acts for p in self.writes[a.name]}
        props: dict[str, Any] = {
            "action": {
                "description": "The action to perform. The available actions are:\n"
                + "\n".join(f"* `{a.name}`: {a.line}" for a in acts),
                "enum": [a.name for a in acts],
                "type": "string",
            }
        }
        for name, kind, desc in self.params:
            if name in used:
                props[name] = {"description": desc, "type": kind}
                if name == "status":
                    props[name]["enum"] = ["success", "failure"]
                if name == "button":
                    props[name]["enum"] = ["Back", "Home", "Menu", "Enter"]
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": {"properties": props, "required": ["action"], "type": "object"},
            },
        }


def _required_by(actions: Sequence[str]) -> str:
    names = [f"`action={a}`" for a in actions]
    if len(names) == 1:
        return f"Required only by {names[0]}."
    return f"Required only by {', '.join(names[:-1])}{',' if len(names) > 2 else ''} and {names[-1]}."


_COORD = "(x, y): The x (pixels from the left edge) and y (pixels from the top edge) coordinates to move the mouse to."

# The per-action lines are the official enum descriptions; the tool descriptions carry every
# instruction of the official ones, in pixelpilot's words and adapted to each environment.
_COMPUTER_ACTIONS = (
    Act(
        "key",
        "Performs key down presses on the arguments passed in order, then performs key releases in reverse order.",
    ),
    Act("type", "Type a string of text on the keyboard."),
    Act("mouse_move", "Move the cursor to a specified (x, y) pixel coordinate on the screen.", "move"),
    Act("left_click", "Click the left mouse button at a specified (x, y) pixel coordinate on the screen.", "click"),
    Act("left_click_drag", "Click and drag the cursor to a specified (x, y) pixel coordinate on the screen.", "drag"),
    Act("right_click", "Click the right mouse button at a specified (x, y) pixel coordinate on the screen.", "click"),
    Act("middle_click", "Click the middle mouse button at a specified (x, y) pixel coordinate on the screen.", "click"),
    Act("double_click", "Double-click the left mouse button at a specified (x, y) pixel coordinate on the screen."),
    Act("triple_click", "Triple-click the left mouse button at a specified (x, y) pixel coordinate on the screen."),
    Act("scroll", "Performs a scroll of the mouse scroll wheel."),
    Act("hscroll", "Performs a horizontal scroll of the mouse scroll wheel.", "scroll"),
    Act("wait", "Wait specified seconds for the change to happen."),
    Act("terminate", "Terminate the current task and report its completion status."),
    Act("answer", "Answer a question."),
)
_POINT = ("coordinate",)
_COMPUTER_WRITES: dict[str, tuple[str, ...]] = {
    "key": ("keys",),
    "type": ("text",),
    **dict.fromkeys(
        ("mouse_move", "left_click", "left_click_drag", "right_click", "middle_click", "double_click", "triple_click"),
        _POINT,
    ),
    "scroll": ("coordinate?", "pixels"),
    "hscroll": ("coordinate?", "pixels"),
    "wait": ("time",),
    "terminate": ("status",),
    "answer": ("text",),
}
_COMPUTER_PARAMS = (
    ("keys", "array", _required_by(["key"])),
    ("text", "string", _required_by(["type", "answer"])),
    ("coordinate", "array", _COORD),
    (
        "pixels",
        "number",
        "The amount of scrolling to perform. Positive values scroll up, negative values scroll down. "
        + _required_by(["scroll", "hscroll"]),
    ),
    ("time", "number", "The seconds to wait. " + _required_by(["wait"])),
    ("status", "string", "The status of the task. " + _required_by(["terminate"])),
)

_SCREEN = "* The screen's resolution is {n}x{n}."
_COMPUTER_TAIL = (
    "* Programs and pages can take a while to open or to react: when an action seems to have no effect yet, "
    "wait and look at the next screenshot before acting again (a program you clicked may still be starting).\n"
    "{screen}\n"
    "* Before you move the pointer to an element such as an icon, find the element's position on the latest screenshot.\n"
    "* If clicking a program or a link did not work even after waiting, move the pointer so that its tip lies "
    "squarely on the element and try again.\n"
    "* Click buttons, links, icons and other elements with the pointer's tip at their centre, never on their edges "
    "unless you are asked to."
)
_COMPUTER_HEAD = {
    "desktop": (
        "Use a mouse and keyboard to interact with a computer, and take screenshots.\n"
        "* The screen shows a desktop. There is no terminal and no applications menu: start a program with "
        "the `desktop` function's `open` action."
    ),
    "browser": (
        "Use a mouse and keyboard to interact with a web page, and take screenshots.\n"
        "* The screen shows one page of a web browser that has no address bar, tabs or back button: open "
        "a URL or go back with the `browser` function."
    ),
}

_MOBILE_ACTIONS = (
    Act(
        "key",
        "Press a key of the device, named as adb's `keyevent` names keys without their prefix "
        '(for example "volume_up", "volume_down", "power", "camera", "enter").',
    ),
    Act("click", "Click the point on the screen with coordinate (x, y)."),
    Act("long_press", "Press the point on the screen with coordinate (x, y) for specified seconds."),
    Act("swipe", "Swipe from the starting point with coordinate (x, y) to the end point with coordinates2 (x2, y2)."),
    Act("type", "Input the specified text into the activated input box."),
    Act("answer", "Output the answer."),
    Act("system_button", "Press the system button."),
    Act("open", "Open an app on the device.", "open_app"),
    Act("wait", "Wait specified seconds for the change to happen."),
    Act("terminate", "Terminate the current task and report its completion status."),
)
_MOBILE_WRITES: dict[str, tuple[str, ...]] = {
    "key": ("text",),
    "click": _POINT,
    "long_press": ("coordinate", "time"),
    "swipe": ("coordinate", "coordinate2"),
    "type": ("text",),
    "answer": ("text",),
    "system_button": ("button",),
    "open": ("text",),
    "wait": ("time",),
    "terminate": ("status",),
}
_MOBILE_PARAMS = (
    ("coordinate", "array", _COORD + " " + _required_by(["click", "long_press", "swipe"])),
    ("coordinate2", "array", _COORD + " " + _required_by(["swipe"])),
    ("text", "string", _required_by(["key", "type", "answer", "open"])),
    ("time", "number", "The seconds to wait. " + _required_by(["long_press", "wait"])),
    (
        "button",
        "string",
        "Back returns to the previous screen, Home to the home screen, Menu opens the app's background menu, "
        "and Enter presses the enter key. " + _required_by(["system_button"]),
    ),
    ("status", "string", "The status of the task. " + _required_by(["terminate"])),
)
_MOBILE_DESCRIPTION = (
    "Use a touchscreen to interact with a mobile device, and take screenshots.\n"
    "* The screen is a phone's touchscreen: click, type, swipe and the like.\n"
    "* Apps can take a while to start or to react: when an action seems to have no effect yet, wait and look "
    "at the next screenshot before acting again.\n"
    "{screen}\n"
    "* Touch buttons, links, icons and other elements at their centre, never on their edges unless you are asked to."
)

COMPUTER_USE = {
    kind: Function(
        "computer_use",
        _COMPUTER_HEAD[kind] + "\n" + _COMPUTER_TAIL.format(screen=_SCREEN.format(n=1000)),
        _COMPUTER_ACTIONS,
        _COMPUTER_PARAMS,
        _COMPUTER_WRITES,
        1000,
    )
    for kind in ("browser", "desktop")
}
MOBILE_USE = Function(
    "mobile_use",
    _MOBILE_DESCRIPTION.format(screen=_SCREEN.format(n=999)),
    _MOBILE_ACTIONS,
    _MOBILE_PARAMS,
    _MOBILE_WRITES,
    999,
)
BROWSER = Function(
    "browser",
    "Browser navigation that the page itself does not offer (pixelpilot's browser shows no address bar or back button).",
    (
        Act("navigate", "Open a URL; a relative URL resolves against the current page."),
        Act("back", "Go back to the previous page in the browser's history."),
    ),
    (("url", "string", _required_by(["navigate"])),),
    {"navigate": ("url",), "back": ()},
)
DESKTOP = Function(
    "desktop",
    "Programs that the screen itself does not offer a way to start (pixelpilot's desktop has no menu or icons).",
    (Act("open", "Open a program by its name.", "open_app"),),
    (("text", "string", _required_by(["open"])),),
    {"open": ("text",)},
)

#: Function names of this profile's own tools (any other name is a registered tool).
_OWN = {"computer_use", "mobile_use", "browser", "desktop"}

SYSTEM_TOOLS_HEAD = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
)
SYSTEM_TOOLS_TAIL = (
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n'
    "</tool_call>"
)
RESPONSE_FORMAT = (
    "# Response format\n\nResponse format for every step:\n"
    "1) Action: a short imperative describing what to do in the UI.\n"
    '2) A single <tool_call>...</tool_call> block containing only the JSON: {"name": <function-name>, '
    '"arguments": <args-json-object>}.\n\n'
    "Rules:\n- Output exactly in the order: Action, <tool_call>.\n- Be brief: one sentence for Action.\n"
    "- Do not output anything else outside those parts.\n- If finishing, use action=terminate in the tool call."
)
INSTRUCTION = (
    "Please generate the next move according to the UI screenshot, instruction and previous actions.\n\n"
    "Instruction: {task}\n\nPrevious actions:\n{previous}"
)

#: Qwen3-VL README, "Generation Hyperparameters".
INSTRUCT_SAMPLING = Sampling(temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1.0, presence_penalty=1.5)
THINKING_SAMPLING = Sampling(temperature=0.6, top_p=0.95, top_k=20, repetition_penalty=1.0, presence_penalty=0.0)

#: The official response format: an Action line, then exactly one tool call and nothing else.
_OFFICIAL = re.compile(r"Action: [^\n<]+\n<tool_call>\n(\{[^\n]*\})\n</tool_call>", re.S)
_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)
_ACTION_LINE = re.compile(r"^\s*Action\s*:\s*(.*?)\s*$", re.I | re.M)
_THOUGHT_LINE = re.compile(r"^\s*(?:Thought|Thinking|Reasoning)\s*:\s*", re.I)


class Qwen3VL(base.Profile):
    name = "qwen3-vl"
    summary = (
        "Qwen3-VL (Instruct and Thinking): computer_use / mobile_use tool calls, as its cookbooks and OSWorld agent"
    )
    image_factor = 32
    keep_images = 4
    drop_block = 8

    def __init__(self) -> None:
        self._grammars: dict[str, str] = {}

    # --- the tools ------------------------------------------------------------------------------

    def functions(self, setup: Setup) -> list[Function]:
        """The profile's own functions for the setup's env kind, with at least one action on offer."""
        allowed = setup.allowed
        main = MOBILE_USE if setup.kind == "mobile" else COMPUTER_USE[setup.kind]
        extra = {"browser": [BROWSER], "desktop": [DESKTOP], "mobile": []}[setup.kind]
        return [f for f in (main, *extra) if f.offered(allowed)]

    def check(self, setup: Setup) -> None:
        offered = {a.action for f in self.functions(setup) for a in f.offered(setup.allowed)}
        missing = [a for a in setup.allowed if a not in offered and a != "tool"]
        if missing:
            raise ValueError(f"the {self.name} profile cannot offer {missing} in a {setup.kind} env")
        if "tool" in setup.allowed:
            clash = [t.name for t in setup.tools if t.name in _OWN]
            if clash:
                raise ValueError(f"tool names {clash} clash with the {self.name} profile's own functions")

    def system_prompt(self, setup: Setup) -> str:
        """The ``# Tools`` block with every function, then the response format."""
        allowed = setup.allowed
        functions = [f.schema(allowed) for f in self.functions(setup)]
        if "tool" in allowed:
            functions += [
                {
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
                }
                for t in setup.tools
            ]
        tools = "\n".join(json.dumps(f, ensure_ascii=False) for f in functions)
        return SYSTEM_TOOLS_HEAD + tools + SYSTEM_TOOLS_TAIL + "\n\n" + RESPONSE_FORMAT

    # --- the conversation --------------------------------------------------------------------

    def messages(self, setup: Setup, task: str, history: Sequence[base.PastStep], current: base.Turn) -> list[Message]:
        first = base.first_shown(len(history), setup.keep_images, setup.drop_block)
        previous = [f"Step {i + 1}: {self.summary_of(h.answer)}" for i, h in enumerate(history[:first])]
        intro = INSTRUCTION.format(task=task.strip(), previous="\n".join(previous) or "None")
        out = [Message.text("system", self.system_prompt(setup))]
        error = history[first - 1].error if first > 0 else None
        shown = history[first:]
        for i, step in enumerate(shown):
            out.append(self._user(setup, step.turn, intro if i == 0 else None, error))
            out.append(Message.text("assistant", self.history_answer(step.answer)))
            error = step.error
        out.append(self._user(setup, current, None if shown else intro, error))
        return out

    def _user(self, setup: Setup, turn: base.Turn, intro: str | None, error: str | None) -> Message:
        """The screenshot, then (the instruction,) the page's URL, the last action's error, the notes."""
        sections = [intro] if intro else []
        if setup.kind == "browser" and turn.url:
            sections.append(f"Current URL: {turn.url}")
        if error:
            sections.append(f"The previous action failed: {error.strip()}")
        sections += [n.strip() for n in turn.notes if n.strip()]
        parts: list[Any] = [turn.image] if turn.image is not None else []
        if sections:
            parts.append("\n\n".join(sections))
        return Message("user", tuple(parts) or ("(no screenshot)",))

    def summary_of(self, answer: str) -> str:
        """An earlier answer's ``Action:`` line, for "Previous actions" (as the OSWorld agent lists them)."""
        found = _ACTION_LINE.search(strip_think(answer)[1])
        if found and found.group(1):
            return found.group(1)
        return base.clip(strip_think(answer)[1], 200)

    # --- the grammar ---------------------------------------------------------------------------

    def constraint(self, setup: Setup, image: tuple[int, int] | None = None) -> dict[str, Any]:
        return {"ebnf": self.grammar(setup)}

    def grammar(self, setup: Setup) -> str:
        """The EBNF of one answer: ``Action: <line>``, then one ``<tool_call>`` with a valid call."""
        key = json.dumps(setup.to_json(), sort_keys=True)
        if key not in self._grammars:
            self._grammars[key] = self._build_grammar(setup)
        return self._grammars[key]

    def _build_grammar(self, setup: Setup) -> str:
        g = Grammar()
        head = '"\\n\\n" ' if setup.thinking else ""  # a Thinking checkpoint writes a blank line after </think>
        g.add("root", f'{head}"Action: " line "\\n<tool_call>\\n" call "\\n</tool_call>"')
        g.add("line", "[^<\\n]+")  # one line, and no tag (no <tool_call>, no </think>) inside it
        g.include(JSON_STRING_RULES)
        calls = []
        for f in self.functions(setup):
            args = [self._args(g, f, a.name) for a in f.offered(setup.allowed)]
            calls.append(json_call(f.name, g.add(f"args_{f.name}", " | ".join(args))))
        if "tool" in setup.allowed:
            for i, t in enumerate(setup.tools):
                calls.append(json_call(t.name, SchemaGrammar(g, f"tool{i}").value(t.parameters)))
        g.add("call", " | ".join(calls))
        return g.text()

    def _args(self, g: Grammar, f: Function, action: str) -> str:
        """The arguments object of one action: ``"action"`` first, its parameters in order."""
        parts = [literal('{"action": ' + json.dumps(action))]
        for p in f.writes[action]:
            name = p.rstrip("?")
            member = f"{literal(', ' + json.dumps(name) + ': ')} {self._value(g, f, action, name)}"
            parts.append(f"({member})?" if p.endswith("?") else member)
        return "(" + " ".join(parts) + ' "}")'

    def _value(self, g: Grammar, f: Function, action: str, param: str) -> str:
        if param in ("coordinate", "coordinate2"):
            c = g.add(f"coord{f.resolution}", integer(0, f.resolution))
            return g.add(f"point{f.resolution}", f'"[" {c} ", " {c} "]"')
        if param == "keys":
            key = g.add("key_name", choice(literal(json.dumps(k)) for k in base.key_spellings()))
            return g.add("keys", f'"[" {key} (", " {key}){{0,4}} "]"')
        if param == "text" and action == "key":  # mobile_use names its key in `text`; "+" joins a combination
            name = g.add("phone_key", choice(literal(json.dumps(k)[1:-1]) for k in base.key_spellings("+")))
            return g.add("phone_keys", f'"\\"" {name} ("+" {name}){{0,4}} "\\""')
        if param in ("text", "url"):
            return "json_string"
        if param == "pixels":
            return g.add("notches", integer(-MAX_NOTCHES, MAX_NOTCHES))
        if param == "time":
            return g.add(f"seconds_{action}", number(0, 10 if action == "long_press" else 60))
        if param == "status":
            return '("\\"success\\"" | "\\"failure\\"")'
        if param == "button":
            return choice(literal(json.dumps(b)) for b in ("Back", "Home", "Menu", "Enter"))
        raise AssertionError(param)

    # --- decoding ------------------------------------------------------------------------------

    def decode(self, text: str, ctx: DecodeContext) -> base.ParsedOutput:
        if not isinstance(text, str) or not text.strip():
            raise ActionParseError("the model returned no text", text or "")
        _, body = strip_think(text)
        found = _CALL.search(body)
        if found is None:
            start, end = body.find("{"), body.rfind("}")
            if start < 0 or end < start:
                raise ActionParseError(f"no <tool_call> block in the output: {base.clip(text)}", text)
            call = base.loads(body[start : end + 1], text, "the JSON object")
            prose = body[:start]
        else:
            call = base.loads(found.group(1), text, "the <tool_call> block")
            prose = body[: found.start()]
        line = _ACTION_LINE.search(prose)
        thought = line.group(1) if line else _THOUGHT_LINE.sub("", prose.strip()).strip()
        action = self.call_action(call, text, ctx)
        return base.ParsedOutput(action, thought, text, self.name)

    def call_action(self, call: Any, raw: str, ctx: DecodeContext) -> Any:
        """A ``{"name", "arguments"}`` call (or a bare arguments object) as a typed action on the grid."""
        if not isinstance(call, dict):
            raise ActionParseError(f"a tool call must be a JSON object, got {type(call).__name__}", raw)
        if "arguments" not in call and isinstance(call.get("action"), str):
            call = {"name": "mobile_use" if ctx.setup.kind == "mobile" else "computer_use", "arguments": call}
        name, args = call.get("name"), call.get("arguments")
        if not isinstance(name, str) or not name:
            raise ActionParseError("a tool call needs a 'name'", raw)
        if not isinstance(args, dict):
            raise ActionParseError("a tool call needs an 'arguments' object", raw)
        if name not in _OWN:
            return validate_action({"action": "tool", "name": name, "arguments": args}, raw)
        act = args.get("action")
        grid = ctx.setup.grid

        def point(key: str, n: int) -> tuple[int, int]:
            value = args.get(key)
            if (
                not isinstance(value, (list, tuple))
                or len(value) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            ):
                raise ActionParseError(f"'{key}' must be [x, y] on the 0..{n} screen, got {value!r}", raw)
            if not all(0 <= v <= n for v in value):
                raise ActionParseError(f"'{key}' {value!r} is off the {n}x{n} screen", raw)
            return base.scale(round(value[0]), n, grid), base.scale(round(value[1]), n, grid)

        if name == "browser":
            if act == "navigate":
                return validate_action({"action": "navigate", "url": args.get("url")}, raw)
            if act == "back":
                return validate_action({"action": "back"}, raw)
            raise ActionParseError(f"unknown browser action {act!r}; expected navigate or back", raw)
        if name == "desktop":
            if act == "open":
                return validate_action({"action": "open_app", "name": args.get("text")}, raw)
            raise ActionParseError(f"unknown desktop action {act!r}; expected open", raw)
        n = 999 if name == "mobile_use" else 1000
        out: dict[str, Any]
        if act in ("left_click", "right_click", "middle_click", "click"):
            x, y = point("coordinate", n)
            out = {"action": "click", "x": x, "y": y}
            if act in ("right_click", "middle_click"):
                out["button"] = act.split("_")[0]
        elif act in ("double_click", "triple_click", "mouse_move"):
            x, y = point("coordinate", n)
            out = {"action": "move" if act == "mouse_move" else act, "x": x, "y": y}
        elif act == "left_click_drag":
            x2, y2 = point("coordinate", n)
            if ctx.pointer is None:
                raise ActionParseError(
                    "left_click_drag starts at the pointer, and no pointer position is known yet: move it first", raw
                )
            out = {"action": "drag", "x": ctx.pointer[0], "y": ctx.pointer[1], "x2": x2, "y2": y2}
        elif act in ("scroll", "hscroll"):
            pixels = args.get("pixels")
            if not isinstance(pixels, (int, float)) or isinstance(pixels, bool):
                raise ActionParseError(f"'pixels' must be a number, got {pixels!r}", raw)
            if "coordinate" in args:
                x, y = point("coordinate", n)
            else:  # the official agents scroll wherever the pointer is
                x, y = ctx.pointer or (grid // 2, grid // 2)
            amount = round(pixels * NOTCH * grid / 1000)
            out = {"action": "scroll", "x": x, "y": y, "dx": 0, "dy": 0}
            out["dy" if act == "scroll" else "dx"] = -amount if act == "scroll" else amount
        elif act == "long_press":
            x, y = point("coordinate", n)
            out = {"action": "long_press", "x": x, "y": y}
            if "time" in args:
                out["seconds"] = args["time"]
        elif act == "swipe":
            x, y = point("coordinate", n)
            x2, y2 = point("coordinate2", n)
            out = {"action": "swipe", "x": x, "y": y, "x2": x2, "y2": y2}
        elif act == "key":
            keys = args.get("keys", args.get("text"))
            if isinstance(keys, str):  # mobile_use's key takes its key in `text`; "ctrl+c" style too
                keys = [k for k in re.split(r"\s*\+\s*", keys) if k]
            if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                raise ActionParseError(f"'keys' must be a list of key names, got {keys!r}", raw)
            try:
                out = {"action": "key", "keys": [canonical_key(k) for k in keys]}
            except ValueError as e:
                raise ActionParseError(str(e), raw) from None
        elif act in ("type", "answer"):
            out = {"action": act, "text": args.get("text")}
        elif act == "wait":
            out = {"action": "wait", "seconds": args.get("time", 1.0)}
        elif act == "terminate":
            out = {"action": "terminate", "status": args.get("status", "success")}
        elif act == "system_button":
            button = args.get("button")
            out = {"action": "system_button", "button": button.lower() if isinstance(button, str) else button}
        elif act == "open":
            out = {"action": "open_app", "name": args.get("text")}
        else:
            raise ActionParseError(f"unknown {name} action {act!r}", raw)
        return validate_action(out, raw)

    # --- encoding ------------------------------------------------------------------------------

    def encode(self, action: Mapping[str, Any], ctx: DecodeContext, description: str) -> str:
        line = " ".join(description.replace("<", "").split()) or base.describe(action)  # the grammar's line has no "<"
        call = json.dumps(self.call_of(action, ctx), ensure_ascii=False)
        return f"Action: {line}\n<tool_call>\n{call}\n</tool_call>"

    def call_of(self, a: Mapping[str, Any], ctx: DecodeContext) -> dict[str, Any]:
        """The ``{"name", "arguments"}`` call for an action on the grid (the decoder's inverse)."""
        setup = ctx.setup
        kind = a["action"]
        mobile = setup.kind == "mobile"
        n = 999 if mobile else 1000
        fn = "mobile_use" if mobile else "computer_use"

        def pt(x: int, y: int) -> list[int]:
            return [base.unscale(x, setup.grid, n), base.unscale(y, setup.grid, n)]

        args: dict[str, Any]
        if kind == "tool":
            return {"name": a["name"], "arguments": a.get("arguments", {})}
        if kind in ("navigate", "back"):
            if setup.kind != "browser":
                raise EncodeError(f"{kind} exists only in a browser")
            args = {"action": "navigate", "url": a["url"]} if kind == "navigate" else {"action": "back"}
            return {"name": "browser", "arguments": args}
        if kind == "open_app" and not mobile:
            return {"name": "desktop", "arguments": {"action": "open", "text": a["name"]}}
        if kind == "click":
            button = a.get("button", "left")
            if mobile and button != "left":
                raise EncodeError("a touchscreen has no right or middle click")
            args = {"action": "click" if mobile else f"{button}_click", "coordinate": pt(a["x"], a["y"])}
        elif kind in ("double_click", "triple_click", "move") and not mobile:
            args = {"action": "mouse_move" if kind == "move" else kind, "coordinate": pt(a["x"], a["y"])}
        elif kind == "drag" and not mobile:
            if ctx.pointer != (a["x"], a["y"]):
                raise EncodeError("left_click_drag starts at the pointer; this drag starts elsewhere")
            args = {"action": "left_click_drag", "coordinate": pt(a["x2"], a["y2"])}
        elif kind == "scroll" and not mobile:
            dx, dy = a.get("dx", 0), a.get("dy", 0)
            if bool(dx) == bool(dy):
                raise EncodeError("one call scrolls along one axis, by a non-zero amount")
            amount = (dx or -dy) * 1000 / (NOTCH * setup.grid)
            if amount != round(amount) or not 0 < abs(amount) <= MAX_NOTCHES:
                raise EncodeError(f"a scroll of {dx or dy} grid units is not a whole number of wheel notches")
            args = {"action": "hscroll" if dx else "scroll", "coordinate": pt(a["x"], a["y"]), "pixels": int(amount)}
        elif kind == "long_press" and mobile:
            args = {"action": "long_press", "coordinate": pt(a["x"], a["y"]), "time": _number(a["seconds"])}
        elif kind == "swipe" and mobile:
            args = {"action": "swipe", "coordinate": pt(a["x"], a["y"]), "coordinate2": pt(a["x2"], a["y2"])}
        elif kind in ("type", "answer"):
            args = {"action": kind, "text": a["text"]}
        elif kind == "key":
            keys = list(a["keys"])
            args = {"action": "key", "text": "+".join(keys)} if mobile else {"action": "key", "keys": keys}
        elif kind == "wait":
            args = {"action": "wait", "time": _number(a["seconds"])}
        elif kind == "terminate":
            args = {"action": "terminate", "status": a["status"]}
        elif kind == "system_button" and mobile:
            args = {"action": "system_button", "button": a["button"].capitalize()}
        elif kind == "open_app":
            args = {"action": "open", "text": a["name"]}
        else:
            raise EncodeError(f"{kind} has no {fn} form in a {setup.kind} env")
        return {"name": fn, "arguments": args}

    def in_format(self, text: str, ctx: DecodeContext) -> bool:
        """The official response format exactly: one ``Action:`` line, then one ``<tool_call>`` whose JSON
        is written with ``", "``/``": "``, ``name`` before ``arguments`` and ``action`` first in them."""
        found = _OFFICIAL.fullmatch(self.answer_part(text))
        if found is None:
            return False
        body = found.group(1)
        try:
            call = json.loads(body)
            self.decode(text, ctx)
        except (ValueError, ActionParseError):
            return False
        written = body in (json.dumps(call, ensure_ascii=False), json.dumps(call))
        return written and list(call) == ["name", "arguments"] and next(iter(call["arguments"]), None) == "action"

    def sampling(self, model: str | None, setup: Setup) -> Sampling:
        return THINKING_SAMPLING if setup.thinking else INSTRUCT_SAMPLING

    def point_space(self, setup: Setup, image: tuple[int, int]) -> tuple[int, int]:
        return 1000, 1000  # Qwen3-VL grounds on a relative 0..1000 scale


def _number(value: float) -> int | float:
    """A number as a model writes it: ``1`` rather than ``1.0``."""
    return int(value) if float(value).is_integer() else float(value)
