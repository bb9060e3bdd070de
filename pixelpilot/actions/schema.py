"""JSON-schema pieces that xgrammar compiles well, for constrained answers and tool arguments.

Written for xgrammar as used by SGLang: strings expressed with ``pattern`` rather than
``maxLength`` (xgrammar 0.2.x compiles ``maxLength`` into a class that admits raw control
characters). Checked against xgrammar 0.2.8: a pattern applies to the string's value and the
grammar never emits an escape, so string values hold any character but a quote, a backslash or a
control character. The answer formats themselves live in :mod:`pixelpilot.profiles`.
"""

from __future__ import annotations

from typing import Any

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

    For answer fields with long caps (text, url, thought): the cap is checked when the answer is
    validated (the action models carry ``max_length``) and ``max_tokens`` bounds the decoding;
    bounding them in the grammar made the action schema take seconds to compile, or fail to.
    """
    return {"type": "string", "pattern": f"^({PLAIN_CHAR}){'+' if min_chars else '*'}$"}
