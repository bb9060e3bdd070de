"""``json``: pixelpilot's own answer format, for models that know no GUI-agent format of their own.

The answer is one JSON object, ``{"thought": "…", "action": {"action": "click", "x": …, "y": …}}``,
constrained with ``response_format: json_schema`` (what most OpenAI-compatible servers support).
The schema is written for xgrammar as SGLang compiles it: everything inlined, objects closed,
integer bounds for coordinates, strings as ``pattern`` classes without escapes (xgrammar applies a
pattern to the string's value and never emits an escape), keys in a fixed order, and the JSON
written with ``", "`` and ``": "`` (SGLang passes no ``separators``, so that is what its xgrammar
admits; the local backend compiles the schema the same way).

The conversation: a system prompt naming the actions (from the action models' docstrings) and the
grid, then one user turn per step (the task, the step's URL and title, the last action's result,
the screenshot) and the model's answers verbatim. Screenshots leave the history in blocks, as in
every profile (see ``first_shown``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from annotated_types import Le

from ..actions import ACTION_TYPES
from ..actions.models import GRID_MAX
from ..actions.schema import plain_string
from ..serving.client import Sampling
from . import base
from .base import ActionParseError, DecodeContext, Setup
from .conversation import Message

_COORD = {"type": "integer", "minimum": 0, "maximum": GRID_MAX}
_DELTA = {"type": "integer", "minimum": -GRID_MAX, "maximum": GRID_MAX}
_FIELDS: dict[str, dict[str, Any]] = {
    "x": _COORD,
    "y": _COORD,
    "x2": _COORD,
    "y2": _COORD,
    "dx": _DELTA,
    "dy": _DELTA,
    "button": {"type": "string", "enum": ["left", "right", "middle"]},
    "text": plain_string(),
    # the key names the key table reads (its strings take no escapes: no quote, no backslash)
    "keys": {
        "type": "array",
        "items": {"type": "string", "enum": base.key_spellings(exclude='"\\')},
        "minItems": 1,
        "maxItems": 5,
    },
    "url": plain_string(1),
    "name": plain_string(1),
    "status": {"type": "string", "enum": ["success", "failure"]},
    "seconds": {"type": "number", "minimum": 0, "maximum": 60},
}


def _action_schema(name: str) -> dict[str, Any]:
    model = ACTION_TYPES[name]
    props: dict[str, Any] = {"action": {"const": name}}
    required = ["action"]
    for field, info in model.model_fields.items():
        if field == "action":
            continue
        if name == "system_button" and field == "button":
            props[field] = {"type": "string", "enum": ["back", "home", "menu", "enter"]}
        else:
            props[field] = dict(_FIELDS[field])
        if field == "seconds":  # the bound differs per action (a swipe lasts at most 5 s, a wait 60 s)
            for bound in info.metadata:
                if isinstance(bound, Le):
                    props[field]["maximum"] = bound.le
        if info.is_required():
            required.append(field)  # fields with defaults may be left out: fewer tokens to decode
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


def tool_action_schema(tools: Iterable[base.ToolSpec]) -> list[dict[str, Any]]:
    """One ``tool`` action schema per registered tool: its name as a const, its arguments' schema."""
    return [
        {
            "type": "object",
            "properties": {"action": {"const": "tool"}, "name": {"const": t.name}, "arguments": t.parameters},
            "required": ["action", "name", "arguments"],
            "additionalProperties": False,
        }
        for t in tools
    ]


def action_schema(
    kind: str = "browser",
    *,
    actions: Iterable[str] | None = None,
    tools: Iterable[Any] = (),
    thought: bool = True,
) -> dict[str, Any]:
    """The JSON schema of one answer in the ``json`` format for an env kind.

    ``{"thought": "...", "action": {...}}`` with the thought first so the model reasons before it
    commits to an action. ``actions`` narrows the action set; ``tools`` (``ToolSpec`` or
    ``(name, parameters)`` pairs) adds one ``tool`` variant each.
    """
    setup = Setup("json", kind=kind, actions=tuple(actions) if actions is not None else None)
    specs = [base.ToolSpec.of(t) for t in tools]
    variants = [_action_schema(a) for a in setup.allowed if a != "tool"]
    variants += tool_action_schema(specs)
    action = {"anyOf": variants}
    if not thought:
        return action
    return {
        "type": "object",
        "properties": {"thought": plain_string(), "action": action},
        "required": ["thought", "action"],
        "additionalProperties": False,
    }


def _describe(name: str) -> str:
    """``- click(x, y, button): Click at a point; …`` from the action model and its docstring."""
    model = ACTION_TYPES[name]
    args = ", ".join(f for f in model.model_fields if f != "action")
    doc = model.__doc__.strip().splitlines()[0].replace("``", "") if model.__doc__ else ""
    return f"- {name}({args}){': ' + doc if doc else ''}"


_WHERE = {"browser": "a web browser", "desktop": "a desktop computer", "mobile": "a phone"}
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.S)
_PREFIX = re.compile(r"^\s*(?:thought|thinking|reasoning)\s*:\s*", re.I)
#: What a string of this format cannot hold (its schema's strings take no escapes).
_UNPLAIN = re.compile(r'["\\\x00-\x1f]+')


class PixelpilotJson(base.Profile):
    name = "json"
    summary = "pixelpilot's own JSON answer ({thought, action}) under response_format json_schema, for other models"
    image_factor = 32
    keep_images = 3
    drop_block = 10

    def system_prompt(self, setup: Setup) -> str:
        n = setup.grid
        lines = [_describe(a) for a in setup.allowed if a != "tool"]
        if "tool" in setup.allowed:
            for t in setup.tools:
                about = f" {t.description}" if t.description else ""
                lines.append(f"- tool(name={t.name!r}, arguments):{about} arguments follow {json.dumps(t.parameters)}")
        return (
            f"You operate {_WHERE[setup.kind]} to complete the user's task, one action per turn, by looking at "
            f"screenshots.\nCoordinates are integers on a 0-{n} grid: (0,0) is the top-left corner of "
            f"the screenshot and ({n},{n}) the bottom-right, whatever its size in pixels. Scroll "
            f"amounts use the same units: {n} is one screen; dy > 0 scrolls down.\n"
            "Actions:\n" + "\n".join(lines) + "\n"
            'Answer with one JSON object: {"thought": "<one short sentence>", "action": {"action": "<name>", ...}}. '
            "Finish with answer(text) when the task asks for information, else terminate(status)."
        )

    def messages(self, setup: Setup, task: str, history: Sequence[base.PastStep], current: base.Turn) -> list[Message]:
        first = base.first_shown(len(history), setup.keep_images, setup.drop_block)
        out = [Message.text("system", self.system_prompt(setup))]
        intro = f"Task: {task.strip()}"
        for i, step in enumerate(history):
            out.append(self._user(intro, i, step.turn, step.turn.image if i >= first else None))
            out.append(Message.text("assistant", self.history_answer(step.answer)))
            intro = f"Result: error: {step.error.strip()}" if step.error else "Result: ok."
        out.append(self._user(intro, len(history), current, current.image))
        return out

    def _user(self, intro: str, index: int, turn: base.Turn, image: Any) -> Message:
        lines = [intro, *(n.strip() for n in turn.notes if n.strip()), f"Step {index}."]
        if turn.url:
            lines.append(f"URL: {turn.url}")
        if turn.title:
            lines.append(f"Title: {turn.title}")
        if image is None:
            return Message.text("user", "\n".join(lines) + "\n(screenshot no longer shown)")
        return Message("user", ("\n".join(lines), image))

    def constraint(self, setup: Setup, image: tuple[int, int] | None = None) -> dict[str, Any]:
        schema = action_schema(setup.kind, actions=setup.actions, tools=setup.tools if "tool" in setup.allowed else ())
        return {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": f"{setup.kind}_action", "strict": True, "schema": schema},
            }
        }

    def decode(self, text: str, ctx: DecodeContext) -> base.ParsedOutput:
        if not isinstance(text, str) or not text.strip():
            raise ActionParseError("the model returned no text", text or "")
        body = self.answer_part(text)
        fenced = _FENCE.search(body)
        if fenced:
            prose, obj = body[: fenced.start()], base.loads(fenced.group(1), text, "the fenced code block")
        else:
            start, end = body.find("{"), body.rfind("}")
            if start < 0 or end < start:
                raise ActionParseError(f"no JSON object in the output: {base.clip(text)}", text)
            prose, obj = body[:start], base.loads(body[start : end + 1], text, "the JSON object")
        if not isinstance(obj, dict):
            raise ActionParseError(f"expected a JSON object, got {type(obj).__name__}", text)
        thought = obj.get("thought") or ""
        if not isinstance(thought, str):
            raise ActionParseError("'thought' must be a string", text)
        inner = obj.get("action")
        if isinstance(inner, dict):
            action = base.validate_action(inner, text)
        elif isinstance(inner, str) and inner in ACTION_TYPES:
            action = base.validate_action({k: v for k, v in obj.items() if k != "thought"}, text)
        elif inner is None:
            raise ActionParseError("the JSON object has no 'action' field", text)
        else:
            raise ActionParseError(f"unknown action {inner!r}; expected one of {sorted(ACTION_TYPES)}", text)
        prose = _PREFIX.sub("", prose.strip()).strip()
        return base.ParsedOutput(action, "\n".join(p for p in (prose, thought) if p), text, self.name)

    def encode(self, action: Mapping[str, Any], ctx: DecodeContext, description: str) -> str:
        kind = action["action"]
        if kind not in ctx.setup.allowed:
            raise base.EncodeError(f"{kind} is not on offer in this setup")
        model = ACTION_TYPES[kind]
        short: dict[str, Any] = {"action": kind}
        for field, info in model.model_fields.items():
            if field == "action" or field not in action:
                continue
            if not info.is_required() and action[field] == info.default:
                continue  # the schema lets defaults be left out, and a model leaves them out
            short[field] = action[field]
        text = json.dumps(short, ensure_ascii=False)
        if "\\" in text:
            raise base.EncodeError("the json format's strings cannot hold quotes, backslashes or control characters")
        thought = _UNPLAIN.sub(" ", description).strip()
        return json.dumps({"thought": thought, "action": short}, ensure_ascii=False)

    def in_format(self, text: str, ctx: DecodeContext) -> bool:
        """One JSON object as the schema's grammar writes it: ``", "``/``": "``, thought first, no escapes
        (fields left at their defaults may be written out or not)."""
        body = self.answer_part(text)
        try:
            obj = json.loads(body)
            self.decode(text, ctx)
        except (ValueError, ActionParseError):
            return False
        return list(obj) == ["thought", "action"] and "\\" not in body and json.dumps(obj, ensure_ascii=False) == body

    def sampling(self, model: str | None, setup: Setup) -> Sampling | None:
        return None
