"""Model profiles: each model family's contract (prompt, grammar, decoder, encoder), one module each.

- ``qwen3-vl`` (:mod:`.qwen3_vl`): Qwen3-VL's computer_use / mobile_use tool calls; the default.
- ``json`` (:mod:`.pixelpilot_json`): pixelpilot's own JSON answer, for other models.
- ``ui-tars`` (:mod:`.ui_tars`): UI-TARS-1.5's Thought/Action text.

``parse_output`` reads an answer in any of these formats (it tries the profiles' decoders).
"""

from __future__ import annotations

import re

from .base import (
    ActionParseError,
    DecodeContext,
    EncodeError,
    ParsedOutput,
    PastStep,
    Profile,
    Setup,
    ToolSpec,
    Turn,
    describe,
    first_shown,
    strip_think,
)
from .conversation import ImageRef, Message, SampleError, to_openai, to_qwen, to_sharegpt, to_trl
from .pixelpilot_json import PixelpilotJson, action_schema
from .qwen3_vl import Qwen3VL
from .ui_tars import UITars

PROFILES: dict[str, Profile] = {p.name: p for p in (Qwen3VL(), PixelpilotJson(), UITars())}
DEFAULT_PROFILE = "qwen3-vl"


def get_profile(name: str | Profile) -> Profile:
    """The profile called ``name`` (a Profile passes through); ValueError naming the known ones."""
    if isinstance(name, Profile):
        return name
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; the profiles are: {', '.join(PROFILES)}") from None


_UI_TARS_CALL = re.compile(r"Action:\s*[a-z_]+\(", re.I)


def parse_output(
    text: str,
    *,
    pointer: tuple[int, int] | None = None,
    kind: str = "browser",
    grid: int = 1000,
    image: tuple[int, int] | None = None,
) -> ParsedOutput:
    """Read one model answer in any profile's format into a typed action (lenient; nothing is evaluated).

    Qwen ``<tool_call>`` answers go to the ``qwen3-vl`` decoder, ``Action: name(…)`` text to
    ``ui-tars`` (its coordinates need ``image``, the size the model was sent), anything else to
    ``json``. ``pointer`` is where a drag starts. Raises :class:`ActionParseError` naming what was wrong.
    """
    if not isinstance(text, str) or not text.strip():
        raise ActionParseError("the model returned no text", text if isinstance(text, str) else "")
    body = strip_think(text)[1]
    if "<tool_call>" in body or '"arguments"' in body:
        order = ["qwen3-vl", "json"]
    elif _UI_TARS_CALL.search(body):
        order = ["ui-tars", "json", "qwen3-vl"]
    else:
        order = ["json", "qwen3-vl"]
    first: ActionParseError | None = None
    for name in order:
        profile = PROFILES[name]
        ctx = DecodeContext(Setup(profile=name, kind=kind, grid=grid), pointer, image)
        try:
            return profile.decode(text, ctx)
        except ActionParseError as e:
            first = first or e
    assert first is not None
    raise first


__all__ = [
    "DEFAULT_PROFILE",
    "PROFILES",
    "ActionParseError",
    "DecodeContext",
    "EncodeError",
    "ImageRef",
    "Message",
    "ParsedOutput",
    "PastStep",
    "PixelpilotJson",
    "Profile",
    "Qwen3VL",
    "SampleError",
    "Setup",
    "ToolSpec",
    "Turn",
    "UITars",
    "action_schema",
    "describe",
    "first_shown",
    "get_profile",
    "parse_output",
    "to_openai",
    "to_qwen",
    "to_sharegpt",
    "to_trl",
]
