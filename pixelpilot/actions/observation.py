"""What an environment shows and what executing an action did: plain data shared by every part."""

from __future__ import annotations

import hashlib
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from PIL.Image import Image

InputSpace = Literal["css", "screen", "device"]


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk, without decoding the image."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG image")
    w, h = struct.unpack(">II", data[16:24])
    return w, h


class _LazyBytes:
    """A dataclass field holding bytes, or a zero-argument callable that makes them on first read.

    Lets an environment hand over a screenshot without paying for the PNG encode unless someone
    reads ``png`` (the desktop grabs raw pixels in a few ms; encoding 1920×1080 takes tens).
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self._slot = "_" + name

    def __get__(self, obj: Any, owner: type | None = None) -> bytes:
        if obj is None:
            raise AttributeError  # no class-level default: the field stays required
        value = obj.__dict__[self._slot]
        if callable(value):
            value = obj.__dict__[self._slot] = value()
        return bytes(value)

    def __set__(self, obj: Any, value: bytes | Callable[[], bytes]) -> None:
        obj.__dict__[self._slot] = value


@dataclass(kw_only=True)
class Observation:
    """One look at the environment.

    ``png`` is the screenshot as encoded PNG bytes (what is stored and what the model is sent,
    after resizing); ``width``/``height`` its pixel size. An env may pass a zero-argument callable
    as ``png``: it is called once, on first read. An env that holds the raw pixels passes ``raw``,
    a zero-argument callable returning them as a Pillow RGB image: :meth:`pixels` then needs no
    PNG decode (a 1080p desktop frame goes to the model without a PNG round trip).
    ``input_width``/``input_height`` is the space actions are executed in (CSS pixels in a
    browser), which differs from the screenshot's size on HiDPI screens.
    """

    png: _LazyBytes = _LazyBytes()
    width: int
    height: int
    input_width: int
    input_height: int
    input_space: InputSpace = "css"
    url: str | None = None
    title: str | None = None
    app: str | None = None
    timestamp: float = field(default_factory=time.time)
    #: Things that happened since the last observation (dialogs dismissed, tabs opened, …).
    events: list[str] = field(default_factory=list)
    #: Text the environment wants the policy to read (a tool's result, for instance).
    text: str | None = None
    #: The raw pixels as a Pillow RGB image, made on each call (see the class docstring); not data.
    raw: Callable[[], Image] | None = field(default=None, repr=False, compare=False)

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.png).hexdigest()

    @cached_property
    def image(self) -> Image:
        """The screenshot as a Pillow image (made on first use, then kept)."""
        return self.pixels()

    def pixels(self) -> Image:
        """The screenshot as a Pillow image, not kept: from ``raw`` when the env gave it, else
        decoded from ``png``."""
        if self.raw is not None:
            return self.raw()
        import io

        from PIL import Image

        img = Image.open(io.BytesIO(self.png))
        img.load()
        return img

    def meta(self) -> dict[str, Any]:
        """Everything but the pixels, as JSON-ready data (the fields in their order, lists copied)."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("png", "raw")}
        return {k: list(v) if isinstance(v, list) else v for k, v in values.items()}


@dataclass
class Outcome:
    """The result of executing one action."""

    ok: bool = True
    error: str | None = None
    #: The action as executed, in input-space pixels.
    pixel_action: dict[str, Any] | None = None
    #: Extra facts (a tool's output, the page a click opened, …).
    info: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "error": self.error, "info": self.info}
