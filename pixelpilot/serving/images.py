"""Screenshots sized the way Qwen3-VL sees them.

Qwen3-VL cuts an image into 16×16 patches and merges 2×2 of them into one token, so both sides
are rounded to multiples of 32 and one image token covers a 32×32 block. ``smart_resize`` is the
rule of the model's own image processor (Qwen2-VL's ``smart_resize`` with factor 32): round each
side to the nearest multiple, then scale the whole image down (or up) into the pixel budget,
keeping the aspect ratio. Resizing on the client to the exact size the server would pick means
the server does no second resize, and the token count of every request is known in advance.

The resize is bicubic with antialiasing, the resample of Qwen's own pipeline (``qwen-vl-utils``
uses Pillow's) and of the image processor in transformers, so the model sees what it was trained
on. A shrink (a screen larger than the budget: the common, costly case) runs in libvips'
``reduce`` with its cubic kernel, about a quarter of Pillow's time (7-8 against 28 ms for 1080p
on the bench machine); its pixels are Pillow's to rounding (on a page of text, a mean difference
of 0.01-0.02 of 255 and over 99.7% of them within 1: ``tests/test_model_image.py``). An
enlargement (a small page under the 64-token floor) stays with Pillow: libvips places the samples
differently when it enlarges. The PNG is written by ``pixelpilot._png`` (lossless, unfiltered
rows, ISA-L deflate).
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any

from ..actions import Observation

#: One image token covers FACTOR×FACTOR pixels (patch 16 × spatial merge 2).
FACTOR = 32
#: The default cap: about 1,280 tokens per image, the top of the model card's suggested range.
DEFAULT_MAX_TOKENS = 1280
DEFAULT_MIN_TOKENS = 64


def smart_resize(
    width: int,
    height: int,
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    min_tokens: int = DEFAULT_MIN_TOKENS,
    factor: int = FACTOR,
) -> tuple[int, int]:
    """The (width, height) Qwen3-VL resizes an image to under a token budget.

    Both sides become multiples of ``factor``; ``width*height`` lands within
    ``[min_tokens, max_tokens] * factor**2``. 1920×1080 → 1504×832 (1,222 tokens) by default.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}×{height}")
    if max(width, height) / min(width, height) > 200:
        raise ValueError(f"aspect ratio of {width}×{height} is over 200, which Qwen3-VL rejects")
    if not 0 < min_tokens <= max_tokens:
        raise ValueError(f"need 0 < min_tokens <= max_tokens, got {min_tokens}, {max_tokens}")
    min_pixels, max_pixels = min_tokens * factor * factor, max_tokens * factor * factor
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return w_bar, h_bar


def image_tokens(
    width: int, height: int, *, max_tokens: int = DEFAULT_MAX_TOKENS, min_tokens: int = DEFAULT_MIN_TOKENS
) -> int:
    """How many tokens Qwen3-VL spends on an image of this size under the budget."""
    w, h = smart_resize(width, height, max_tokens=max_tokens, min_tokens=min_tokens)
    return (w // FACTOR) * (h // FACTOR)


@dataclass(frozen=True)
class ModelImage:
    """A screenshot as sent to the model: PNG bytes at the model's size (sides multiples of ``factor``)."""

    png: bytes
    width: int
    height: int
    factor: int = FACTOR

    @property
    def tokens(self) -> int:
        return (self.width // self.factor) * (self.height // self.factor)

    def data_url(self) -> str:
        """The PNG as a ``data:`` URL (encoded once: a history sends one image in many requests)."""
        return self._data_url

    @cached_property
    def _data_url(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def prepare_image(
    source: bytes | Observation,
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    min_tokens: int = DEFAULT_MIN_TOKENS,
    factor: int = FACTOR,
    size: tuple[int, int] | None = None,
) -> ModelImage:
    """Resize a screenshot (PNG bytes, or an observation) to the model's size for it; a PNG that
    already fits is sent as it is.

    ``factor`` is the vision encoder's side multiple (32 for Qwen3-VL, 28 for Qwen2.5-VL models);
    ``size`` gives the target size directly (a profile computed it). An observation that carries
    its raw pixels (a desktop grab) is resized from them, without decoding its PNG. Blocking
    (15-20 ms for a 1080p frame on two shared cores), and the GIL is let go meanwhile: run it in a
    thread.
    """
    from PIL import Image

    if isinstance(source, Observation):
        img, have = None, (source.width, source.height)
    else:
        img = Image.open(io.BytesIO(source))
        have = img.size
    w, h = size or smart_resize(*have, max_tokens=max_tokens, min_tokens=min_tokens, factor=factor)
    if (w, h) == have:
        return ModelImage(source.png if isinstance(source, Observation) else source, w, h, factor)
    return ModelImage(resize_png(source.pixels() if isinstance(source, Observation) else img, (w, h)), w, h, factor)


def resize_png(img: Any, size: tuple[int, int], *, compress_level: int = 1) -> bytes:
    """A PIL image as PNG bytes at ``size``: RGB, :func:`resize_bicubic`'s pixels, ``pixelpilot._png``
    (the one resize and encode the request and the exports share)."""
    from PIL import Image

    from .._png import encode_png, png_from_rows

    rgb = img if img.mode == "RGB" else img.convert("RGB")
    shrunk = _vips_shrink(rgb, size)
    if shrunk is None:
        return encode_png(rgb.resize(size, Image.Resampling.BICUBIC), level=compress_level)
    # libvips writes the rows as PNG lays them out, each after its filter byte (a zero column in
    # front of the row's bytes): one copy of the pixels, where a PIL image in between costs three.
    width, height = size
    rows = shrunk.bandunfold().embed(1, 0, width * 3 + 1, height).write_to_memory()
    return png_from_rows(rows, width, height, "RGB", level=compress_level)


def resize_bicubic(img: Any, size: tuple[int, int]) -> Any:
    """An RGB PIL image resized to ``size`` with an antialiased bicubic: libvips' ``reduce`` when
    neither side grows, else Pillow's (see the module docstring)."""
    from PIL import Image

    shrunk = _vips_shrink(img, size)
    if shrunk is None:
        return img.resize(size, Image.Resampling.BICUBIC)
    return Image.frombuffer("RGB", size, shrunk.write_to_memory(), "raw", "RGB", 0, 1)


def _vips_shrink(img: Any, size: tuple[int, int]) -> Any:
    """The libvips image (computed when read) of RGB ``img`` shrunk to ``size``; None when a side grows."""
    (w, h), (tw, th) = img.size, size
    if tw > w or th > h:
        return None
    vips = _vips()
    shrunk = vips.Image.new_from_memory(img.tobytes(), w, h, 3, "uchar").reduce(w / tw, h / th, kernel="cubic")
    if (shrunk.width, shrunk.height) != (tw, th):  # libvips rounds the size itself; never seen to differ
        return None
    return shrunk


@cache
def _vips() -> Any:
    import pyvips

    pyvips.cache_set_max(0)  # each image is new: libvips' operation cache would only hold on to memory
    return pyvips
