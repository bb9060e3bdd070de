"""Finding things on a screen without a DOM: OCR (RapidOCR) and model grounding.

Boxes come back in the observation's *input* space (what actions are grounded in), not in
screenshot pixels: on a HiDPI screen a 2560×1600 screenshot of a 1280×800 viewport gives boxes
halved. OCR models load once per process (seconds) and results are cached per screenshot.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Protocol

from ..actions import Observation
from ..envs import Box, TextMatch, normalize_text, rank_matches


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


def match_text(lines: list[TextLine], text: str) -> list[TextMatch]:
    """Every OCR line that reads ``text`` (``exact``) or contains it, in reading order, as matches
    with boxes in screenshot pixels; for a line that only contains it, the box is the part of the
    line it takes (its width estimated from the characters' share)."""
    want = normalize_text(text)
    matches: list[TextMatch] = []
    for ln in lines if want else []:
        line = normalize_text(ln.text)
        if want not in line:
            continue
        left, top, width, height = ln.box
        if line != want:
            per_char = width / max(len(line), 1)
            left, width = left + line.index(want) * per_char, len(want) * per_char
        matches.append(TextMatch(Box(left, top, width, height), ln.text, exact=line == want, source="ocr"))
    return matches


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

    async def find(self, obs: Observation, text: str) -> list[TextMatch]:
        """Every line on the observation's screen that reads or contains ``text`` (:func:`match_text`),
        with boxes in the observation's input space."""
        return [replace(m, box=to_input_space(m.box, obs)) for m in match_text(await self.lines(obs), text)]

    async def locate(self, obs: Observation, text: str) -> Box | None:
        """The box of the best match (:func:`~pixelpilot.envs.rank_matches`), in input space."""
        ranked = rank_matches(await self.find(obs, text))
        return ranked[0].box if ranked else None


def warm_up_ocr() -> None:
    """Load the OCR models now (a few seconds), rather than on the first OCR click."""
    _engine()
