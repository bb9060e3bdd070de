"""EBNF pieces for constrained decoding, in the dialect xgrammar compiles (SGLang's ``ebnf`` field).

A profile writes the grammar of its whole answer with these helpers: literals, bounded integers,
JSON strings, and JSON values of a JSON schema with the keys in the schema's order and the
separators Qwen's training data uses (``", "`` and ``": "``, what ``json.dumps`` writes by default).

Nothing here needs xgrammar: a grammar is a string, built on the client and compiled by the server
(SGLang, or pixelpilot's local backend), so both compile the same text.

Strings are plain JSON strings (any character, standard escapes); length limits are left to the
answer's validation and ``max_tokens``: a bounded repetition such as ``{1,120}`` makes xgrammar's
compiler take seconds (measured here: 5 s for one 120-character line).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: A JSON string exactly as ``json.dumps`` may write one: plain characters, or an escape.
JSON_STRING_RULES = {
    "json_string": '"\\"" json_char* "\\""',
    "json_char": '[^"\\\\\\x00-\\x1f] | "\\\\" ["\\\\/bfnrt] | "\\\\u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F]',
}
#: Any JSON value, written with ``", "`` / ``": "`` (for schemas that leave a value open).
JSON_VALUE_RULES = {
    **JSON_STRING_RULES,
    "json_value": 'json_string | json_number | "true" | "false" | "null" | json_array | json_object',
    "json_number": '"-"? ("0" | [1-9] [0-9]*) ("." [0-9]+)? ([eE] [+\\-]? [0-9]+)?',
    "json_array": '"[" (json_value (", " json_value)*)? "]"',
    "json_object": '"{" (json_string ": " json_value (", " json_string ": " json_value)*)? "}"',
}


class GrammarError(ValueError):
    """A JSON schema (a tool's arguments) uses something the grammar builder cannot express."""


def literal(text: str) -> str:
    """``text`` as an EBNF string literal."""
    out = []
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def choice(options: Iterable[str]) -> str:
    """Alternatives, parenthesized: ``(a | b | c)``."""
    items = list(options)
    if not items:
        raise GrammarError("an alternative needs at least one option")
    return items[0] if len(items) == 1 else "(" + " | ".join(items) + ")"


def _digits_range(lo: str, hi: str) -> list[str]:
    """Sequences of digit classes matching every number from ``lo`` to ``hi`` (same length)."""
    if not lo:
        return [""]
    if lo == hi:
        return [literal(lo)]
    if lo[0] == hi[0]:
        return [f"{literal(lo[0])} {rest}".strip() for rest in _digits_range(lo[1:], hi[1:])]
    n = len(lo) - 1
    out: list[str] = []
    # lo[0] followed by lo[1:]..99..9, the full middle first digits, hi[0] followed by 00..0..hi[1:]
    if lo[1:] == "0" * n:
        start = int(lo[0])
    else:
        out += [f"{literal(lo[0])} {rest}".strip() for rest in _digits_range(lo[1:], "9" * n)]
        start = int(lo[0]) + 1
    end = int(hi[0]) if hi[1:] == "9" * n else int(hi[0]) - 1
    if start <= end:
        head = literal(str(start)) if start == end else f"[{start}-{end}]"
        out.append(" ".join([head] + ["[0-9]"] * n))
    if hi[1:] != "9" * n:
        out += [f"{literal(hi[0])} {rest}".strip() for rest in _digits_range("0" * n, hi[1:])]
    return out


def _natural_range(lo: int, hi: int) -> list[str]:
    """Alternatives for the integers ``lo..hi`` (``0 <= lo <= hi``), written without leading zeros."""
    out: list[str] = []
    for width in range(len(str(lo)), len(str(hi)) + 1):
        a = max(lo, 10 ** (width - 1) if width > 1 else 0)
        b = min(hi, 10**width - 1)
        if a <= b:
            out += _digits_range(str(a), str(b))
    return out


def integer(lo: int | None = None, hi: int | None = None) -> str:
    """An integer in ``lo..hi`` (either end may be open), as JSON writes it."""
    if lo is None or hi is None:
        if lo is not None and lo >= 0:
            return '("0" | [1-9] [0-9]*)'
        return '("-"? ("0" | [1-9] [0-9]*))'
    if lo > hi:
        raise GrammarError(f"empty integer range {lo}..{hi}")
    options: list[str] = []
    if lo < 0:  # the negative part, as magnitudes max(1, -hi)..-lo after a minus sign
        options += [f'"-" {alt}' for alt in _natural_range(max(1, -hi), -lo)]
    if hi >= 0:
        options += _natural_range(max(lo, 0), hi)
    return choice(f"({o})" if " " in o else o for o in options)


def number(lo: float | None = None, hi: float | None = None) -> str:
    """A JSON number: an integer part within the bounds' integer range, an optional fraction.

    The fraction may carry a value a little past ``hi`` (``60.5`` for ``hi=60``); the answer's
    validation catches that.
    """
    whole = integer(None if lo is None else int(lo // 1), None if hi is None else int(hi // 1))
    return f'{whole} ("." [0-9]+)?'


@dataclass
class Grammar:
    """An EBNF grammar under construction: named rules, ``root`` first."""

    rules: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, body: str) -> str:
        """Add (or confirm) a rule; returns its name for use in other rules."""
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise GrammarError(f"bad rule name {name!r}")
        if self.rules.get(name, body) != body:
            raise GrammarError(f"rule {name!r} defined twice differently")
        self.rules[name] = body
        return name

    def include(self, rules: dict[str, str]) -> None:
        for name, body in rules.items():
            self.add(name, body)

    def text(self) -> str:
        if "root" not in self.rules:
            raise GrammarError("a grammar needs a root rule")
        order = ["root"] + [n for n in self.rules if n != "root"]
        return "\n".join(f"{n} ::= {self.rules[n]}" for n in order) + "\n"


class SchemaGrammar:
    """JSON values of a JSON schema as EBNF, keys in the schema's order, ``", "`` and ``": "`` between.

    Covers what tool schemas use (objects, arrays, strings with enum/const, integers and numbers
    with bounds, booleans, null, anyOf/oneOf, a list of types); a value the schema leaves open is
    any JSON value. String patterns and length bounds are not put in the grammar (see the module's
    docstring): the tool validates its arguments when it is called.
    """

    def __init__(self, grammar: Grammar, prefix: str) -> None:
        self.g = grammar
        self.prefix = prefix
        self._n = 0

    def _rule(self, body: str) -> str:
        self._n += 1
        return self.g.add(f"{self.prefix}_{self._n}", body)

    def value(self, schema: Any) -> str:
        """A rule (or inline expression) for one value of ``schema``."""
        if schema is True or schema == {}:
            self.g.include(JSON_VALUE_RULES)
            return "json_value"
        if not isinstance(schema, dict):
            raise GrammarError(f"a schema must be an object, got {schema!r}")
        if "$ref" in schema:
            raise GrammarError("schema references ($ref) must be inlined first")
        if "const" in schema:
            return literal(json.dumps(schema["const"], ensure_ascii=False))
        if "enum" in schema:
            return choice(literal(json.dumps(v, ensure_ascii=False)) for v in schema["enum"])
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return choice(
                    self.value({**{k: v for k, v in schema.items() if k != key}, **sub}) for sub in schema[key]
                )
        kind = schema.get("type")
        if isinstance(kind, list):
            return choice(self.value({**schema, "type": t}) for t in kind)
        if kind == "object" or (kind is None and "properties" in schema):
            return self._object(schema)
        if kind == "array":
            return self._array(schema)
        if kind == "string":
            self.g.include(JSON_STRING_RULES)
            return "json_string"
        if kind == "integer":
            return integer(
                _bound(schema, "minimum", "exclusiveMinimum", 1), _bound(schema, "maximum", "exclusiveMaximum", -1)
            )
        if kind == "number":
            return number(schema.get("minimum"), schema.get("maximum"))
        if kind == "boolean":
            return '("true" | "false")'
        if kind == "null":
            return '"null"'
        if kind is None:
            self.g.include(JSON_VALUE_RULES)
            return "json_value"
        raise GrammarError(f"unsupported schema type {kind!r}")

    def _object(self, schema: dict[str, Any]) -> str:
        props: dict[str, Any] = schema.get("properties") or {}
        if not props:
            if schema.get("additionalProperties") is False:
                return '"{}"'
            self.g.include(JSON_VALUE_RULES)
            return "json_object"
        required = set(schema.get("required") or ())
        names = list(props)
        # tail(i, started): the members from i on; ``started`` says whether one was written (a comma is due).
        memo: dict[tuple[int, bool], str] = {}

        def tail(i: int, started: bool) -> str:
            if i == len(names):
                return '""'
            if (i, started) in memo:
                return memo[(i, started)]
            name = names[i]
            member = f"{literal((', ' if started else '') + json.dumps(name, ensure_ascii=False) + ': ')} {self.value(props[name])}"
            rest = tail(i + 1, True)
            body = f"{member} {rest}" if rest != '""' else member
            if name not in required:
                skip = tail(i + 1, started)
                body = f"({body}) | {skip}"
            memo[(i, started)] = self._rule(body)
            return memo[(i, started)]

        return self._rule(f'"{{" {tail(0, False)} "}}"')

    def _array(self, schema: dict[str, Any]) -> str:
        item = self.value(schema.get("items", True))
        lo = int(schema.get("minItems", 0))
        hi = schema.get("maxItems")
        if hi is not None and int(hi) <= 8:
            counts = range(lo, int(hi) + 1)
            options = ['"[]"' if n == 0 else '"[" ' + ' ", " '.join([item] * n) + ' "]"' for n in counts]
            return self._rule(" | ".join(options))
        head = ' ", " '.join([item] * lo)
        if lo == 0:
            return self._rule(f'"[" ({item} (", " {item})*)? "]"')
        return self._rule(f'"[" {head} (", " {item})* "]"')


def _bound(schema: dict[str, Any], inclusive: str, exclusive: str, step: int) -> int | None:
    """An integer bound from ``minimum``/``exclusiveMinimum`` (step 1) or the maximum pair (step -1)."""
    if inclusive in schema:
        value = float(schema[inclusive])
        return math.ceil(value) if step > 0 else math.floor(value)
    if exclusive in schema:
        value = float(schema[exclusive])
        return math.floor(value) + 1 if step > 0 else math.ceil(value) - 1
    return None


def json_call(name: str, arguments_rule: str) -> str:
    """``{"name": NAME, "arguments": ARGS}`` as Qwen writes a function call."""
    return f'{literal("{" + json.dumps("name") + ": " + json.dumps(name) + ", " + json.dumps("arguments") + ": ")} {arguments_rule} "}}"'


def enum_member(key: str, values: Sequence[str]) -> str:
    """``"key": "<one of values>"`` as a fragment."""
    return f"{literal(json.dumps(key) + ': ')} {choice(literal(json.dumps(v, ensure_ascii=False)) for v in values)}"
