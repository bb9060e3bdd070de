"""Secrets never reach disk: every string an episode records passes through one Redactor.

The writer redacts each Step, ``task.json`` and ``episode.json`` as they are written, so whatever
path a secret took (a typed action, the model's raw output, a locator's target, a failure message,
the URL a form submitted it to) it lands as ``${NAME}``.

A secret is found in the forms it takes on the way: as it is; percent-encoded (a URL, a form body,
``+`` for a space, ``%26`` for ``&``, JavaScript's ``escape()``, twice over); JSON-, JavaScript- or
Python-escaped (``\\"``, ``\\u00e9``, ``\\x41``, escaped again inside another string); HTML-escaped
(named, decimal and hex character references, ``&amp;amp;``); any mix of these; and base64 (standard
or URL-safe, at any offset inside a longer encoded value). Each string is decoded into views that keep
track of which characters of the original each decoded character came from; a secret found in a view
masks those characters of the original.

Not covered: screenshots, which are pixels (type secrets into password fields, which the page masks),
and transformations that are not encodings (hashes, a secret cut in two, upper-cased, spelled out).
"""

from __future__ import annotations

import base64
import html.entities
import re
from functools import lru_cache
from typing import Any

#: One encoded unit of any family. Percent: ``%XX`` and JavaScript's ``%uXXXX``; backslash escapes of
#: JSON, JavaScript and Python; HTML character references (``;`` optional, as browsers read them);
#: a form's ``+``.
_UNIT = re.compile(
    r"%u[0-9a-fA-F]{4}|%[0-9a-fA-F]{2}"
    r"|\\(?:u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|U[0-9a-fA-F]{8}|[nrtbf\"'\\/])"
    r"|&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});?"
    r"|\+"
)
_FAMILIES = {"%": "url", "\\": "escape", "&": "html", "+": "form"}
_SHORT = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}
#: Decoding rounds: enough for an encoding of an encoding of an encoding (a URL in a JSON in a URL).
_ROUNDS = 3
#: Base64 of a secret is only looked for when this many characters of it are fixed by the secret alone.
_MIN_BASE64 = 8

#: A view of a string: decoded characters, each with the span of the original it came from.
_View = list[tuple[str, int, int]]


def _decode(view: _View, families: frozenset[str]) -> _View:
    """One round of decoding ``view`` for the given families (``url``, ``form``, ``escape``, ``html``)."""
    text = "".join(c for c, _, _ in view)
    out: _View = []
    pos = 0
    pending: list[tuple[int, int, int]] = []  # percent-encoded bytes waiting to form a UTF-8 character

    def flush() -> None:
        out.extend(_utf8(pending))
        pending.clear()

    for m in _UNIT.finditer(text):
        unit = m.group()
        if _FAMILIES[unit[0]] not in families:
            continue
        if m.start() > pos:
            flush()
            out.extend(view[pos : m.start()])
        span = (view[m.start()][1], view[m.end() - 1][2])
        pos = m.end()
        if unit[0] == "%" and unit[1] not in "uU":
            pending.append((int(unit[1:], 16), *span))
            continue
        flush()
        decoded = _unit(unit)
        if decoded is None:  # not a character reference after all: the characters stay as they are
            out.extend(view[m.start() : m.end()])
        else:
            out.append((decoded, *span))
    flush()
    out.extend(view[pos:])
    return _join_surrogates(out)


def _unit(unit: str) -> str | None:
    """The character one encoded unit stands for (None: an ``&name`` that names nothing)."""
    head = unit[:2]
    if head in ("%u", "%U", "\\u", "\\x", "\\U"):
        return chr(int(unit[2:], 16))
    if unit[0] == "\\":
        return _SHORT.get(unit[1], unit[1])
    if unit == "+":
        return " "
    body = unit[1:]
    if body.startswith("#"):
        n = int(body[2:].rstrip(";"), 16) if body[1] in "xX" else int(body[1:].rstrip(";"))
        return chr(n) if n <= 0x10FFFF else None
    return html.entities.html5.get(body) or html.entities.html5.get(body.rstrip(";"))


def _utf8(units: list[tuple[int, int, int]]) -> _View:
    """Percent-encoded bytes as characters: UTF-8 where they form it, else one Latin-1 character each."""
    out: _View = []
    i = 0
    while i < len(units):
        first = units[i][0]
        n = 1 if first < 0x80 else 2 if first >> 5 == 6 else 3 if first >> 4 == 14 else 4 if first >> 3 == 30 else 1
        chunk = units[i : i + n]
        try:
            char = bytes(b for b, _, _ in chunk).decode("utf-8") if len(chunk) == n else None
        except UnicodeDecodeError:
            char = None
        if char is None:
            chunk, char = units[i : i + 1], chr(first)
        out.append((char, chunk[0][1], chunk[-1][2]))
        i += len(chunk)
    return out


def _join_surrogates(view: _View) -> _View:
    """``\\ud83d\\ude00`` decodes to two surrogates: make them the one character they encode."""
    if not any("\ud800" <= c <= "\udfff" for c, _, _ in view):
        return view
    out: _View = []
    for c, start, end in view:
        if out and "\udc00" <= c <= "\udfff" and "\ud800" <= out[-1][0] <= "\udbff":
            high, first, _ = out.pop()
            out.append((chr(0x10000 + ((ord(high) - 0xD800) << 10) + (ord(c) - 0xDC00)), first, end))
        else:
            out.append((c, start, end))
    return out


_ALL = frozenset(_FAMILIES.values())


def _views(text: str, secret: str) -> list[_View]:
    """Decoded views of ``text``, each round of each recipe one view. All families are decoded
    together, round after round (encodings nested in each other); a secret that holds a family's
    own sign (``%``, ``\\``, ``&``, ``+``) is also looked for where every family but that one is
    decoded, since decoding it would change the secret itself."""
    raw: _View = [(c, i, i + 1) for i, c in enumerate(text)]
    recipes = [_ALL] + [_ALL - {family} for sign, family in _FAMILIES.items() if sign in secret]
    views = []
    for families in recipes:
        view = raw
        for _ in range(_ROUNDS):
            decoded = _decode(view, families)
            if decoded == view:  # nothing left to decode
                break
            view = decoded
            views.append(view)
    return views


@lru_cache(maxsize=256)
def base64_forms(secret: str) -> tuple[str, ...]:
    """The parts of the base64 of ``secret`` that every value containing it shares, whatever bytes
    come before it (three alignments), in the standard and the URL-safe alphabet."""
    data = secret.encode()
    forms: set[str] = set()
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + data).decode()
        # Characters whose six bits all come from the secret (not from what comes before or after).
        start, end = -(-8 * pad // 6), 8 * (pad + len(data)) // 6
        core = encoded[start:end]
        if len(core) >= _MIN_BASE64:
            forms.update((core, core.replace("+", "-").replace("/", "_")))
    return tuple(sorted(forms, key=len, reverse=True))


def secret_spans(text: str, secret: str) -> list[tuple[int, int]]:
    """Where ``secret`` occurs in ``text`` as it is or in any encoding above: spans of ``text``."""
    spans = [(m.start(), m.end()) for m in re.finditer(re.escape(secret), text)]
    for form in base64_forms(secret):
        spans += [(m.start(), m.end()) for m in re.finditer(re.escape(form), text)]
    if any(c in text for c in _FAMILIES):
        n = len(secret)
        for view in _views(text, secret):
            decoded = "".join(c for c, _, _ in view)
            for m in re.finditer(re.escape(secret), decoded):
                spans.append((view[m.start()][1], view[m.start() + n - 1][2]))
    return spans


class Redactor:
    """Replaces secret values by placeholders in JSON-like data (strings, dicts, lists; tuples become
    lists), in every encoding the module docstring lists.

    ``parent`` is consulted too (at call time), so secrets added to a recorder-wide redactor
    after an episode started are still masked in it.
    """

    def __init__(self, secrets: dict[str, str] | None = None, *, parent: Redactor | None = None) -> None:
        self._secrets: dict[str, str] = {}  # value -> placeholder
        self.parent = parent
        for name, value in (secrets or {}).items():
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        """Mask ``value`` as ``${name}`` from now on (empty values are ignored: they match everywhere)."""
        if value:
            self._secrets[value] = f"${{{name}}}"

    def _pairs(self) -> list[tuple[str, str]]:
        pairs = dict(self.parent._pairs()) if self.parent else {}
        pairs.update(self._secrets)
        # Longest first: where two secrets overlap, the longer one names the mask.
        return sorted(pairs.items(), key=lambda kv: -len(kv[0]))

    def __bool__(self) -> bool:
        return bool(self._secrets) or bool(self.parent)

    def redact(self, value: Any) -> Any:
        """``value`` with every secret replaced (recursively; other types pass through)."""
        pairs = self._pairs()
        return _apply(value, pairs) if pairs else value


def _mask(text: str, pairs: list[tuple[str, str]]) -> str:
    found: list[tuple[int, int, int]] = []  # start, end, which secret
    for rank, (secret, _) in enumerate(pairs):
        found += [(start, end, rank) for start, end in secret_spans(text, secret)]
    if not found:
        return text
    # Overlapping finds merge into one mask, named by the longest secret among them.
    found.sort()
    merged: list[list[int]] = []
    for start, end, rank in found:
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
            merged[-1][2] = min(merged[-1][2], rank)
        else:
            merged.append([start, end, rank])
    out, pos = [], 0
    for start, end, rank in merged:
        out += [text[pos:start], pairs[rank][1]]
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _apply(value: Any, pairs: list[tuple[str, str]]) -> Any:
    if isinstance(value, str):
        return _mask(value, pairs)
    if isinstance(value, dict):
        return {_apply(k, pairs): _apply(v, pairs) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_apply(v, pairs) for v in value]
    return value
