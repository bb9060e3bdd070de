"""JSON schemas for structured (grammar-constrained) model output.

The schema is written for xgrammar as used by SGLang: everything inlined (no ``$ref``),
``additionalProperties: false``, integer bounds for coordinates, and bounded strings expressed
with ``pattern`` rather than ``maxLength`` (xgrammar 0.2.x compiles ``maxLength`` into a class that
admits raw control characters and no escapes). The pattern is written over the JSON text of the
string, so it admits the standard escapes and never a bare quote or control character.
"""

from __future__ import annotations

from typing import Any, Iterable

from .models import ACTION_TYPES, ACTIONS_BY_ENV, GRID_MAX, MAX_TEXT


def bounded_string(max_chars: int, min_chars: int = 0) -> dict[str, Any]:
    """A JSON-schema string of at most ``max_chars`` characters, as a ``pattern``."""
    return {
        "type": "string",
        "pattern": r'^([^"\\\x00-\x1f]|\\["\\/bfnrt]){%d,%d}$' % (min_chars, max_chars),
    }


THOUGHT_MAX = 600

_COORD = {"type": "integer", "minimum": 0, "maximum": GRID_MAX}
_DELTA = {"type": "integer", "minimum": -GRID_MAX, "maximum": GRID_MAX}

_FIELDS: dict[str, dict[str, Any]] = {
    "x": _COORD, "y": _COORD, "x2": _COORD, "y2": _COORD,
    "dx": _DELTA, "dy": _DELTA,
    "button": {"type": "string", "enum": ["left", "right", "middle"]},
    "text": bounded_string(MAX_TEXT),
    "keys": {"type": "array", "items": bounded_string(32, 1), "minItems": 1, "maxItems": 5},
    "url": bounded_string(MAX_TEXT, 1),
    "name": bounded_string(200, 1),
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
        required.append(field)  # every field required: a fixed shape is cheaper to decode
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


def tool_action_schema(tools: Iterable[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """One ``tool`` action schema per registered tool: its name as a const, its arguments' schema."""
    out = []
    for name, params in tools:
        out.append({
            "type": "object",
            "properties": {"action": {"const": "tool"}, "name": {"const": name}, "arguments": params},
            "required": ["action", "name", "arguments"],
            "additionalProperties": False,
        })
    return out


def action_schema(
    kind: str = "browser",
    *,
    actions: Iterable[str] | None = None,
    tools: Iterable[tuple[str, dict[str, Any]]] = (),
    thought: bool = True,
) -> dict[str, Any]:
    """The JSON schema of one model answer for an environment kind.

    ``{"thought": "...", "action": {...}}`` with the thought first so the model reasons before it
    commits to an action. ``actions`` narrows the action set; ``tools`` adds one ``tool`` variant per
    ``(name, parameters_schema)`` pair.
    """
    if actions is None:
        if kind not in ACTIONS_BY_ENV:
            raise ValueError(f"unknown env kind {kind!r}; expected one of {sorted(ACTIONS_BY_ENV)}")
        actions = ACTIONS_BY_ENV[kind]
    variants = [_action_schema(a) for a in actions if a != "tool"]
    variants += tool_action_schema(tools)
    action = {"anyOf": variants}
    if not thought:
        return action
    return {
        "type": "object",
        "properties": {"thought": bounded_string(THOUGHT_MAX), "action": action},
        "required": ["thought", "action"],
        "additionalProperties": False,
    }
