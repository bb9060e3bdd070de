"""Finding things on a screen without a DOM: OCR (RapidOCR) and model grounding.

Boxes come back in the observation's *input* space (what actions are grounded in), not in
screenshot pixels: on a HiDPI screen a 2560×1600 screenshot of a 1280×800 viewport gives boxes
halved. OCR models load once per process (seconds) and results are cached per screenshot.
"""

from __future__ import annotations

import asyncio
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from ..actions import Observation
from ..envs import Box


class OcrUnavailable(RuntimeError):
    """RapidOCR is not installed."""


class Locator(Protocol):
    """Finds ``text`` (or a description) on an observation's screen; ``None`` when it is not there."""

    async def locate(self, obs: Observation, text: str) -> Box | None: ...


@dataclass(frozen=True)
class TextLine:
    """One line of text OCR found: what it reads, its box in screenshot pixels and the confidence."""

    text: str
    box: tuple[float, float, float, float]
    score: float


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def ocr_available() -> bool:
    """Whether RapidOCR is installed (the ``ocr`` extra)."""
    import importlib.util

    return importlib.util.find_spec("rapidocr") is not None and importlib.util.find_spec("onnxruntime") is not None


@lru_cache(maxsize=1)
def _engine() -> Any:
    try:
        from rapidocr import RapidOCR
    except ImportError as e:  # pragma: no cover - depends on the install
        raise OcrUnavailable("OCR needs RapidOCR: pip install 'pixelpilot[ocr]'") from e
    # Screens are upright: skip the text-angle classifier (a third model) and its time.
    return RapidOCR(params={"Global.log_level": "warning", "Global.use_cls": False})


_engine_lock = threading.Lock()  # one OCR at a time: onnxruntime already uses every core


def read_text(png: bytes) -> list[TextLine]:
    """Every line of text in a PNG, with its box in the PNG's pixels (blocking; seconds on CPU)."""
    import io

    import numpy as np
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    with _engine_lock:
        out = _engine()(img)
    lines = []
    for quad, text, score in zip(
        out.boxes if out.boxes is not None else [], out.txts or (), out.scores or (), strict=False
    ):
        xs, ys = [float(p[0]) for p in quad], [float(p[1]) for p in quad]
        lines.append(TextLine(text, (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)), float(score)))
    return lines


def match_text(lines: list[TextLine], text: str) -> tuple[float, float, float, float] | None:
    """The box of ``text`` among OCR lines (screenshot pixels): an exact line wins, else the part of
    the shortest line that contains it (its width estimated from the characters' share)."""
    want = _norm(text)
    if not want:
        return None
    exact = [ln for ln in lines if _norm(ln.text) == want]
    if exact:
        return max(exact, key=lambda ln: ln.score).box
    containing = [ln for ln in lines if want in _norm(ln.text)]
    if not containing:
        return None
    ln = min(containing, key=lambda ln: len(ln.text))
    line = _norm(ln.text)
    start = line.index(want)
    left, top, width, height = ln.box
    per_char = width / max(len(line), 1)
    return (left + start * per_char, top, len(want) * per_char, height)


def to_input_space(box: tuple[float, float, float, float], obs: Observation) -> Box:
    """A box in screenshot pixels → the observation's input space (HiDPI: device → CSS pixels)."""
    sx, sy = obs.input_width / obs.width, obs.input_height / obs.height
    left, top, width, height = box
    return Box(left * sx, top * sy, width * sx, height * sy)


class OcrLocator:
    """Finds visible text by OCR: for canvases, desktop apps and phones, where there is no DOM.

    The last few screenshots' OCR results are kept, so asking again about the same screen is free.
    """

    def __init__(self, cache_size: int = 4) -> None:
        self._cache: dict[str, list[TextLine]] = {}
        self._cache_size = cache_size

    async def lines(self, obs: Observation) -> list[TextLine]:
        """Every line of text on the observation's screen (screenshot pixels)."""
        key = obs.sha256
        if key not in self._cache:
            lines = await asyncio.to_thread(read_text, obs.png)
            self._cache[key] = lines
            while len(self._cache) > self._cache_size:
                self._cache.pop(next(iter(self._cache)))
        return self._cache[key]

    async def locate(self, obs: Observation, text: str) -> Box | None:
        box = match_text(await self.lines(obs), text)
        return None if box is None else to_input_space(box, obs)


def warm_up_ocr() -> None:
    """Load the OCR models now (a few seconds), rather than on the first OCR click."""
    _engine()
