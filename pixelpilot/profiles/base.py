"""What a model profile is: the contract with one model family.

A :class:`Profile` owns, for its family: the tool/action definitions and the system prompt, the
layout of a user turn, the history policy, the grammar that constrains the answer, the decoder
(text -> typed action; model output is data, never evaluated) and the encoder (typed action ->
the exact text the model would write). ``ModelPolicy`` asks a model with it; the exports build
training samples with it; ``parse_output`` reads any answer with the profiles' decoders.

What the prompt depends on besides the steps is a :class:`Setup` (env kind, grid, the actions and
tools offered, the history and image options, Thinking or not). ``ModelPolicy`` records it with
every step (``step.extra["prompt"]``) so that an export rebuilds the request byte for byte.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from pydantic import ValidationError

from ..actions import ACTION_TYPES, ACTIONS_BY_ENV, action_from_dict
from ..actions.keys import ALIASES
from ..serving.client import Sampling
from ..serving.images import DEFAULT_MAX_TOKENS, smart_resize
from .conversation import ImageRef, Message


class ActionParseError(ValueError):
    """The model's output could not be turned into a valid action; the message says why."""

    def __init__(self, message: str, raw: str = "") -> None:
        super().__init__(message)
        self.raw = raw


class EncodeError(ValueError):
    """An action the profile's format cannot express (a drag that does not start at the pointer, …)."""


@dataclass(frozen=True)
class ParsedOutput:
    """A decoded answer: the action, the model's stated reasoning, the text, and the profile that read it."""

    action: Any
    thought: str
    raw: str
    format: str


@dataclass(frozen=True)
class ToolSpec:
    """A registered tool as a model is offered it: name, JSON schema of its arguments, description."""

    name: str
    parameters: dict[str, Any]
    description: str = ""

    @classmethod
    def of(cls, tool: Any) -> ToolSpec:
        """From a ToolSpec, a ``(name, parameters)`` or ``(name, parameters, description)`` tuple, a
        registry ``Tool`` (anything with ``name``/``parameters``/``description``), or its JSON dict."""
        if isinstance(tool, ToolSpec):
            return tool
        if isinstance(tool, Mapping):
            return cls(str(tool["name"]), dict(tool.get("parameters") or {}), str(tool.get("description") or ""))
        if isinstance(tool, tuple):
            if len(tool) not in (2, 3):
                raise ValueError(f"a tool tuple is (name, parameters[, description]), got {len(tool)} items")
            return cls(str(tool[0]), dict(tool[1]), str(tool[2]) if len(tool) == 3 else "")
        return cls(str(tool.name), dict(tool.parameters), str(getattr(tool, "description", "") or ""))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "parameters": self.parameters, "description": self.description}


@dataclass(frozen=True)
class Setup:
    """Everything a prompt depends on besides the task and the steps; recorded with each model step.

    ``keep_images``/``drop_block``: the history keeps the screenshots of at least the last
    ``keep_images`` steps; older ones leave in blocks of ``drop_block`` (see each profile).
    ``thinking``: a Thinking checkpoint (its answer starts after ``</think>``).
    """

    profile: str
    kind: str = "browser"
    grid: int = 1000
    actions: tuple[str, ...] | None = None
    tools: tuple[ToolSpec, ...] = ()
    keep_images: int = 4
    drop_block: int = 8
    max_image_tokens: int = DEFAULT_MAX_TOKENS
    thinking: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ACTIONS_BY_ENV:
            raise ValueError(f"unknown env kind {self.kind!r}; expected one of {sorted(ACTIONS_BY_ENV)}")
        if self.keep_images < 1 or self.drop_block < 1:
            raise ValueError("keep_images and drop_block must be at least 1")
        unknown = [a for a in self.actions or () if a not in ACTION_TYPES]
        if unknown:
            raise ValueError(f"unknown actions {unknown}; expected names from {sorted(ACTION_TYPES)}")

    @property
    def allowed(self) -> tuple[str, ...]:
        """The pixelpilot actions on offer, in ``ACTIONS_BY_ENV`` order (``tool`` when tools are given)."""
        base = self.actions if self.actions is not None else ACTIONS_BY_ENV[self.kind]
        out = tuple(a for a in base if a != "tool")
        return out + ("tool",) if self.tools and (self.actions is None or "tool" in self.actions) else out

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "kind": self.kind,
            "grid": self.grid,
            "actions": list(self.actions) if self.actions is not None else None,
            "tools": [t.to_json() for t in self.tools],
            "keep_images": self.keep_images,
            "drop_block": self.drop_block,
            "max_image_tokens": self.max_image_tokens,
            "thinking": self.thinking,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Setup:
        actions = data.get("actions")
        return cls(
            profile=str(data["profile"]),
            kind=str(data.get("kind", "browser")),
            grid=int(data.get("grid", 1000)),
            actions=tuple(actions) if actions is not None else None,
            tools=tuple(ToolSpec.of(t) for t in data.get("tools") or ()),
            keep_images=int(data.get("keep_images", 4)),
            drop_block=int(data.get("drop_block", 8)),
            max_image_tokens=int(data.get("max_image_tokens", DEFAULT_MAX_TOKENS)),
            thinking=bool(data.get("thinking", False)),
        )

    def but(self, **changes: Any) -> Setup:
        return replace(self, **changes)


@dataclass(frozen=True)
class Turn:
    """One screen as the model is shown it: the image, the page's URL and title (browsers), and what
    the loop told the policy before this step (tool results, refusals, nudges).

    ``image`` is None only for a past screen whose pixels the policy no longer has (a history it
    was handed rather than built); a prompt then shows that turn without its screenshot.
    """

    image: ImageRef | None
    url: str | None = None
    title: str | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class PastStep:
    """A step already taken, as a prompt needs it: its screen, the answer the model saw for it (the
    model's own text, or the encoder's for a scripted step) and the error it ended with, if any."""

    turn: Turn
    answer: str
    error: str | None = None


def key_spellings(exclude: str = "") -> list[str]:
    """Every key name a grammar lets a model write: the key table's names and aliases (lowercase, as
    :func:`~pixelpilot.actions.keys.canonical_key` reads them) and the printable ASCII characters
    but those in ``exclude``. Decoders map each through ``canonical_key``."""
    return sorted(set(ALIASES)) + [chr(c) for c in range(0x20, 0x7F) if chr(c) not in exclude]


def first_shown(n_past: int, keep: int, block: int) -> int:
    """The first past step whose screenshot is still shown when ``n_past`` steps were taken.

    At least the last ``keep`` stay; older ones leave ``block`` at a time, so the history (and the
    server's prefix cache) breaks once per block instead of at every step as a sliding window does.
    """
    over = max(0, n_past - keep)
    return (over // block) * block


def scale(value: int, src: int, dst: int) -> int:
    """A coordinate on a 0..src grid as the nearest unit on a 0..dst grid."""
    return value if src == dst else min(max(round(value * dst / src), 0), dst)


def unscale(value: int, grid: int, n: int) -> int:
    """The unit on a model's 0..n screen that a decoder maps back to ``value`` on the 0..grid grid.

    The inverse of ``scale(·, n, grid)`` where there is one (a 999 screen cannot reach every one
    of 1001 grid values: then the nearest unit).
    """
    near = scale(value, grid, n)
    for m in (near, near - 1, near + 1):
        if 0 <= m <= n and scale(m, n, grid) == value:
            return m
    return near


def validate_action(data: dict[str, Any], raw: str) -> Any:
    """A typed action from a dict, or :class:`ActionParseError` naming the problem."""
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


def loads(text: str, raw: str, where: str) -> Any:
    """JSON, or :class:`ActionParseError` saying where and why it is not."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ActionParseError(f"{where} is not valid JSON ({e.msg} at char {e.pos}): {clip(text)}", raw) from None


def clip(text: str, n: int = 120) -> str:
    text = text.strip().replace("\n", "\\n")
    return text if len(text) <= n else text[:n] + "…"


def strip_think(text: str) -> tuple[str, str]:
    """``(reasoning, answer)``: what a Thinking checkpoint wrote inside ``<think>…</think>`` and after it.

    A lone ``</think>`` counts too (the opening tag was in the prompt, or a server took it off).
    """
    if "</think>" not in text:
        return "", text
    before, after = text.rsplit("</think>", 1)
    return before.split("<think>")[-1].strip("\n"), after.lstrip("\n")


#: ``describe``'s sentence for the actions whose sentence only fills in their own fields.
_PHRASES = {
    "type": "Type {text!r}.",
    "wait": "Wait for the screen to change.",
    "navigate": "Open {url}.",
    "back": "Go back to the previous page.",
    "system_button": "Press the {button} button.",
    "open_app": "Open {name}.",
    "tool": "Call the {name} tool.",
    "window": "Window {op}: {window!r}.",
    "set_clipboard": "Copy {text!r} to the clipboard.",
    "answer": "Answer the question.",
}


def describe(action: Mapping[str, Any], target: str | None = None) -> str:
    """A short imperative for an action, for a scripted step's answer (``Click 'Sign in'.``)."""
    kind = action["action"]
    what = f" {target!r}" if target else ""
    if kind == "click":
        button = action.get("button", "left")
        return f"{'Click' if button == 'left' else button.capitalize() + '-click'}{what or ' the element'}."
    if kind in ("double_click", "triple_click", "long_press"):
        return f"{kind.replace('_', '-').capitalize()}{what or ' the element'}."
    if kind == "move":
        return f"Hover over{what or ' the element'}."
    if kind in ("drag", "swipe"):
        return f"{kind.capitalize()}{' ' + what.strip() if what else ''} to the target point."
    if kind == "scroll":
        dy, dx = action.get("dy", 0), action.get("dx", 0)
        way = "down" if dy > 0 else "up" if dy < 0 else "right" if dx > 0 else "left"
        return f"Scroll {way}."
    if kind == "key":
        return f"Press {'+'.join(action['keys'])}."
    if kind in _PHRASES:
        return _PHRASES[kind].format_map(action)
    if kind == "terminate":
        return "The task is done." if action.get("status", "success") == "success" else "The task cannot be done."
    return f"{kind}."


@dataclass(frozen=True)
class DecodeContext:
    """What decoding an answer may need: the setup, the pointer (a drag starts there) and the
    size of the image the model saw (for profiles whose coordinates are its pixels)."""

    setup: Setup
    pointer: tuple[int, int] | None = None
    image: tuple[int, int] | None = None


class Profile(ABC):
    """One model family's contract (see the module docstring). Subclasses are stateless."""

    #: The name ``--profile`` takes.
    name: ClassVar[str]
    #: One line for ``--help`` and the docs.
    summary: ClassVar[str]
    #: The image side multiple of the family's vision encoder (patch × merge).
    image_factor: ClassVar[int] = 32
    #: History defaults (see :class:`Setup`).
    keep_images: ClassVar[int] = 4
    drop_block: ClassVar[int] = 8

    def setup(self, kind: str, **options: Any) -> Setup:
        """A :class:`Setup` for this profile with its own history defaults where ``options`` give none."""
        options = {k: v for k, v in options.items() if v is not None}
        options.setdefault("keep_images", self.keep_images)
        options.setdefault("drop_block", self.drop_block)
        tools = tuple(ToolSpec.of(t) for t in options.pop("tools", ()))
        setup = Setup(profile=self.name, kind=kind, tools=tools, **options)
        self.check(setup)
        return setup

    def check(self, setup: Setup) -> None:  # noqa: B027 - nothing to check by default
        """Raise ValueError when the profile cannot serve this setup (an action or tool it cannot offer)."""

    def image_size(self, width: int, height: int, setup: Setup) -> tuple[int, int]:
        """The size a screenshot of ``width``×``height`` is sent at."""
        return smart_resize(width, height, max_tokens=setup.max_image_tokens, factor=self.image_factor)

    @abstractmethod
    def messages(self, setup: Setup, task: str, history: Sequence[PastStep], current: Turn) -> list[Message]:
        """The conversation for one step: system prompt, history turns, the current screen."""

    @abstractmethod
    def constraint(self, setup: Setup, image: tuple[int, int] | None = None) -> dict[str, Any]:
        """The request fields that constrain the answer (``ebnf`` or ``response_format``)."""

    @abstractmethod
    def decode(self, text: str, ctx: DecodeContext) -> ParsedOutput:
        """The answer as a typed action on the setup's grid; :class:`ActionParseError` if it is none."""

    @abstractmethod
    def encode(self, action: Mapping[str, Any], ctx: DecodeContext, description: str) -> str:
        """The exact text the model writes for ``action`` (:class:`EncodeError` when it has no form).

        ``description`` is the short text the format puts before the action (the Action/Thought line).
        """

    @abstractmethod
    def sampling(self, model: str | None, setup: Setup) -> Sampling | None:
        """The sampling the family's model card recommends (None: the server's defaults)."""

    def point_space(self, setup: Setup, image: tuple[int, int]) -> tuple[int, int]:
        """The ranges of a ``point_2d``/``bbox_2d`` in this family's grounding answers (the grid by default)."""
        return setup.grid, setup.grid

    def in_format(self, text: str, ctx: DecodeContext) -> bool:
        """Whether ``text`` is written exactly as the format (and its grammar) has it, not just readable."""
        try:
            parsed = self.decode(text, ctx)
            return self.encode(parsed.action.model_dump(mode="json"), ctx, parsed.thought) == self.answer_part(text)
        except (ActionParseError, EncodeError):
            return False

    def answer_part(self, text: str) -> str:
        """The part of a raw answer the grammar constrains (after a Thinking checkpoint's reasoning)."""
        return strip_think(text)[1]

    def history_answer(self, raw: str) -> str:
        """An earlier answer as it appears in the history: without its reasoning, as Qwen's chat
        templates render earlier assistant turns of Thinking checkpoints."""
        return strip_think(raw)[1]
