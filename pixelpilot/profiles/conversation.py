"""A conversation as a model sees it, neutral of where it goes: messages of text and image references.

A profile builds one (system prompt, history turns, the current screen); it is then rendered to an
OpenAI chat request (images as data URLs) by ``ModelPolicy``, or to a training sample by the
exports. One builder for both is what makes a training sample the request the model will get.

The export renderers follow each consumer's documented rules:

- ``qwen``: Qwen's fine-tuning loader (QwenLM/Qwen3-VL ``qwen-vl-finetune/qwenvl/data/
  data_processor.py``, ``_build_messages``): ``from: human`` turns become user turns whose text is
  split on ``<image>`` with each text segment ``.strip()``-ped; every other ``from`` becomes an
  assistant turn. It has no system turn: the system prompt goes in a top-level ``system`` field,
  which that loader reads once two lines are added (see docs/models.md).
- ``llamafactory``: LLaMA-Factory's sharegpt format (``conversations`` of ``human``/``gpt`` turns
  that alternate, a ``system`` column, ``images`` in ``<image>`` order).
- ``hf``: TRL's vision layout (``messages`` whose content parts are ``{"type": "image"}`` and
  ``{"type": "text"}``, plus an ``images`` column, in order).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

#: The image placeholder of the Qwen and LLaMA-Factory formats.
IMAGE_TOKEN = "<image>"

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ImageRef:
    """A screenshot as the model is shown it: its key (``screenshots/<key>.png``) and its size after resizing."""

    key: str
    width: int
    height: int


Part = str | ImageRef


@dataclass(frozen=True)
class Message:
    """One turn: a role and its parts, text and images, in order."""

    role: Role
    parts: tuple[Part, ...]

    @classmethod
    def text(cls, role: Role, text: str) -> Message:
        return cls(role, (text,))

    @property
    def images(self) -> list[ImageRef]:
        return [p for p in self.parts if isinstance(p, ImageRef)]

    @property
    def plain(self) -> str:
        """The text parts joined (images left out)."""
        return "".join(p for p in self.parts if isinstance(p, str))


class SampleError(ValueError):
    """A conversation that a training format cannot carry exactly; the message says why."""


def images_of(messages: Sequence[Message]) -> list[ImageRef]:
    """Every image of the conversation, in order."""
    return [img for m in messages for img in m.images]


# --- the request ------------------------------------------------------------------------------


def to_openai(messages: Sequence[Message], data_url: Callable[[ImageRef], str]) -> list[dict[str, Any]]:
    """OpenAI chat messages: a text-only turn as a string, others as content parts in order."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if not m.images:
            out.append({"role": m.role, "content": m.plain})
            continue
        content: list[dict[str, Any]] = []
        for p in m.parts:
            if isinstance(p, ImageRef):
                content.append({"type": "image_url", "image_url": {"url": data_url(p)}})
            else:
                content.append({"type": "text", "text": p})
        out.append({"role": m.role, "content": content})
    return out


# --- training formats ---------------------------------------------------------------------------


def _placeholder_text(m: Message, *, strip: bool) -> str:
    """A user turn as text with ``<image>`` where each image goes."""
    out = []
    for p in m.parts:
        if isinstance(p, ImageRef):
            out.append(IMAGE_TOKEN)
            continue
        if IMAGE_TOKEN in p:
            raise SampleError(f"the text holds a literal {IMAGE_TOKEN}, which the format reads as an image")
        if strip and p != p.strip():
            raise SampleError("a text part starts or ends with whitespace, which Qwen's loader strips")
        out.append(p)
    return "".join(out)


def _split_system(messages: Sequence[Message]) -> tuple[str | None, list[Message]]:
    if messages and messages[0].role == "system":
        return messages[0].plain, list(messages[1:])
    if any(m.role == "system" for m in messages):
        raise SampleError("a system turn after the first cannot be carried")
    return None, list(messages)


def to_qwen(messages: Sequence[Message], target: str, image_path: Callable[[ImageRef], str]) -> dict[str, Any]:
    """A Qwen fine-tuning row: ``image``, ``conversations`` (the last ``gpt`` turn is ``target``), ``system``."""
    system, turns = _split_system(messages)
    convs = []
    for m in turns:
        if m.role == "user":
            convs.append({"from": "human", "value": _placeholder_text(m, strip=True)})
        else:
            convs.append({"from": "gpt", "value": m.plain})
    convs.append({"from": "gpt", "value": target})
    row: dict[str, Any] = {"image": [image_path(i) for i in images_of(turns)], "conversations": convs}
    if system is not None:
        row["system"] = system
    return row


def to_sharegpt(messages: Sequence[Message], target: str, image_path: Callable[[ImageRef], str]) -> dict[str, Any]:
    """A LLaMA-Factory sharegpt row: ``conversations`` (human/gpt, alternating), ``system``, ``images``."""
    system, turns = _split_system(messages)
    convs = []
    for i, m in enumerate([*turns, Message.text("assistant", target)]):
        want = "user" if i % 2 == 0 else "assistant"
        if m.role != want:
            raise SampleError("LLaMA-Factory's sharegpt format needs user and assistant turns that alternate")
        if m.role == "user":
            convs.append({"from": "human", "value": _placeholder_text(m, strip=False)})
        else:
            convs.append({"from": "gpt", "value": m.plain})
    row: dict[str, Any] = {"conversations": convs, "images": [image_path(i) for i in images_of(turns)]}
    if system is not None:
        row["system"] = system
    return row


def to_trl(messages: Sequence[Message], target: str) -> list[dict[str, Any]]:
    """TRL's vision ``messages``: every turn as content parts, ``{"type": "image"}`` where an image goes."""
    out = []
    for m in [*messages, Message.text("assistant", target)]:
        parts = [
            {"type": "image", "text": None} if isinstance(p, ImageRef) else {"type": "text", "text": p} for p in m.parts
        ]
        out.append({"role": m.role, "content": parts})
    return out
