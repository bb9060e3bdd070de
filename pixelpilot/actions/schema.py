"""JSON schemas for structured (grammar-constrained) model output.

The schema is written for xgrammar as used by SGLang: everything inlined (no ``$ref``),
``additionalProperties: false``, integer bounds for coordinates, and strings expressed with
``pattern`` rather than ``maxLength`` (xgrammar 0.2.x compiles ``maxLength`` into a class that
admits raw control characters). Checked against xgrammar 0.2.8 (tests/test_schema_grammar.py):
a pattern applies to the string's value and the grammar never emits an escape, so string values
hold any character but a quote, a backslash or a control character; fields with defaults are
optional, so a click costs ``{"thought":"…","action":{"action":"click","x":…,"y":…}}``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from annotated_types import Le

from .models import ACTION_TYPES, ACTIONS_BY_ENV, GRID_MAX

#: A character of a JSON string's value that needs no escape: xgrammar applies a ``pattern`` to the
#: string's value and never emits an escape sequence, so quotes, backslashes and control characters
#: are left out rather than half-allowed.
PLAIN_CHAR = r'[^"\\\x00-\x1f]'
#: Key names: printable ASCII but the quote and the backslash (no space: the key is called "space").
KEY_CHAR = r"[!#-\[\]-~]"


#: The longest ``{lo,hi}`` bound put in a grammar. xgrammar 0.2.8 compiles ``{lo,hi}`` into an
#: automaton that grows with ``hi``, and its GrammarCompiler (with a real tokenizer) fails a check
#: above about 128 (``per_rule_fsm_hashes``), though ``Grammar.from_json_schema`` alone passes.
GRAMMAR_BOUND_MAX = 128


def bounded_string(max_chars: int, min_chars: int = 0, *, char: str = PLAIN_CHAR) -> dict[str, Any]:
    """A JSON-schema string of ``min_chars``..``max_chars`` characters of class ``char``, as a ``pattern``.

    A cap above ``GRAMMAR_BOUND_MAX`` is left out of the grammar (``{lo,}``): the caller's own
    validation checks it when the answer arrives, and ``max_tokens`` bounds decoding.
    """
    hi = str(max_chars) if max_chars <= GRAMMAR_BOUND_MAX else ""
    return {"type": "string", "pattern": f"^({char}){{{min_chars},{hi}}}$"}


def plain_string(min_chars: int = 0) -> dict[str, Any]:
    """A JSON-schema string of plain characters without an upper bound in the grammar.

    For the action fields with long caps (text, url, thought): the cap is checked when the answer
    is validated (the action models carry ``max_length``) and ``max_tokens`` bounds the decoding;
    bounding them in the grammar made the action schema take seconds to compile, or fail to.
    """
    return {"type": "string", "pattern": f"^({PLAIN_CHAR}){'+' if min_chars else '*'}$"}


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
    "keys": {"type": "array", "items": bounded_string(32, 1, char=KEY_CHAR), "minItems": 1, "maxItems": 5},
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


def tool_action_schema(tools: Iterable[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """One ``tool`` action schema per registered tool: its name as a const, its arguments' schema."""
    out = []
    for name, params in tools:
        out.append(
            {
                "type": "object",
                "properties": {"action": {"const": "tool"}, "name": {"const": name}, "arguments": params},
                "required": ["action", "name", "arguments"],
                "additionalProperties": False,
            }
        )
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
        "properties": {"thought": plain_string(), "action": action},
        "required": ["thought", "action"],
        "additionalProperties": False,
    }
