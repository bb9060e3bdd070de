"""From a capture to the bytes a model is sent: time and size per codec, and what OCR reads in them.

    .venv/bin/python bench/image_pipeline.py [--rounds 15] [--no-ocr]

Two captures: a 1280×800 browser screenshot of a text-heavy page (real headless Chromium; Qwen3-VL
takes it at its own size, 1,000 tokens) and a 1920×1080 desktop frame (the busy picture of
``bench/desktop_observe.py`` as the raw BGRX pixels an mss grab gives; Qwen3-VL takes it resized to
1504×832 under the default 1,280-token cap). For each codec the figure is capture → model-ready
bytes: decoding what the env handed over when it is a PNG, the bicubic resize the exports share,
and the encode; the base64 of the data URL is timed on its own.

Desktop baselines, run in the same process: ``before`` is the path before issue 20 (the full-size
PNG encoded by Pillow, decoded again, Pillow's resize, Pillow's PNG); ``pillow`` is Pillow's resize
and PNG straight from the raw pixels; ``0.5.0`` is Pillow's bicubic and ``pixelpilot._png``. The
default is ``prepare_image``: libvips' cubic reduce (Pillow's pixels to rounding, see
``pixelpilot/serving/images.py``) and ``pixelpilot._png`` (unfiltered rows, ISA-L deflate). These
four are timed interleaved. ``where the time goes`` splits the default into its parts. The
recorded full-size PNG is timed on its own (lossless either way).

The browser capture itself is timed too: Playwright's ``page.screenshot()`` (what observe() used
before issue 20) against ``observe()`` with and without ``fast_png`` (Chromium's
``optimizeForSpeed``: the same pixels in more bytes).

OCR: the model-ready image of each lossy codec is read with pixelpilot's OCR locator (rapidocr)
and compared with what it reads in the lossless image: ``ocr`` is the share of the lossless
image's lines read identically.

Target (issue 20): ≤ 15 ms at 1080p for the default.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from _stats import best_median
from desktop_observe import _busy_picture
from PIL import Image

from pixelpilot._png import encode_png
from pixelpilot.actions import Observation
from pixelpilot.serving.images import prepare_image, resize_bicubic, smart_resize

TEXT_PAGE = (
    "<body style='margin: 16px; font: 13px sans-serif; columns: 3'>"
    + "".join(
        f"<p><b>Item {i}:</b> invoice #{1000 + i * 7} due 2026-{1 + i % 12:02d}-{1 + i % 28:02d}, "
        f"total ${i * 13.37:.2f} — status {'paid' if i % 3 else 'open'}</p>"
        for i in range(90)
    )
    + "</body>"
)


def codecs() -> dict[str, Callable[[Image.Image], bytes]]:
    def pillow(fmt: str, **opts: Any) -> Callable[[Image.Image], bytes]:
        def run(img: Image.Image) -> bytes:
            buf = io.BytesIO()
            img.save(buf, format=fmt, **opts)
            return buf.getvalue()

        return run

    out = {
        "png isal level 1 (ours)": lambda img: encode_png(img, level=1),
        "png isal level 0": lambda img: encode_png(img, level=0),
        "png isal level 3": lambda img: encode_png(img, level=3),
        "png level 1 (Pillow)": pillow("PNG", compress_level=1),
        "png level 0 (Pillow)": pillow("PNG", compress_level=0),
        "jpeg q90 (Pillow)": pillow("JPEG", quality=90),
        "webp lossless m0": pillow("WEBP", lossless=True, method=0),
        "webp q90 m0": pillow("WEBP", quality=90, method=0),
    }
    try:
        import numpy as np
        import simplejpeg

        out["jpeg q90 (simplejpeg)"] = lambda img: simplejpeg.encode_jpeg(
            np.asarray(img), quality=90, colorspace="RGB", colorsubsampling="420", fastdct=True
        )
    except ImportError:
        pass
    return out


def lossy(codec: str) -> bool:
    return not codec.startswith("png") and "lossless" not in codec


def time_it(fn: Callable[[], Any], rounds: int) -> tuple[float, Any]:
    """Best-of-rounds median in ms over ``rounds`` runs split into 3 rounds, and the last result."""
    (ms, result), *_ = interleaved([fn], rounds)
    return ms, result


def interleaved(fns: list[Callable[[], Any]], rounds: int) -> list[tuple[float, Any]]:
    """:func:`time_it` for several functions at once, their runs interleaved (the same load for each)."""
    per = max(1, rounds // 3)
    groups: list[list[list[float]]] = [[[] for _ in range(3)] for _ in fns]
    results: list[Any] = [None] * len(fns)
    for r in range(3):
        for _ in range(per):
            for i, fn in enumerate(fns):
                t = time.perf_counter()
                results[i] = fn()
                groups[i][r].append((time.perf_counter() - t) * 1000)
    return [(best_median(g), result) for g, result in zip(groups, results, strict=True)]


async def browser_capture(rounds: int) -> tuple[bytes, list[tuple[str, float, int, None]]]:
    """The text-heavy page's screenshot, and the capture itself timed three ways (rounds interleaved)."""
    from pixelpilot.actions import Task
    from pixelpilot.envs.browser import BrowserEnv

    env = BrowserEnv(viewport=(1280, 800))
    try:
        await env.reset(Task(instruction="bench", url="about:blank"))
        await env.page.set_content(TEXT_PAGE)
        ways = {
            "page.screenshot() + title": lambda: _playwright(env),
            "observe(), fast_png=False": lambda: _observe(env, fast=False),
            "observe() (default)": lambda: _observe(env, fast=True),
        }
        times: dict[str, list[list[float]]] = {name: [[], [], []] for name in ways}
        sizes: dict[str, int] = {}
        for i in range(max(3, rounds)):
            for name, take in ways.items():
                t = time.perf_counter()
                png = await take()
                times[name][i % 3].append((time.perf_counter() - t) * 1000)
                sizes[name] = len(png)
        rows = [(name, best_median(times[name]), sizes[name], None) for name in ways]
        return await _observe(env, fast=True), rows
    finally:
        await env.aclose()


async def _playwright(env: Any) -> bytes:
    png, _ = await asyncio.gather(env.page.screenshot(type="png", scale="css"), env.page.title())
    return png


async def _observe(env: Any, *, fast: bool) -> bytes:
    env.fast_png = fast
    return (await env.observe()).png


def ocr_lines(data: bytes) -> list[str]:
    from pixelpilot.agent.locators import read_text

    return [line.text for line in read_text(data)]


def report(title: str, rows: list[tuple[str, float, int, list[str] | None]], reference: list[str] | None) -> None:
    print(title)
    for name, ms, size, lines in rows:
        ocr = ""
        if lines is not None and reference:
            same = sum((Counter(reference) & Counter(lines)).values())
            ocr = f"   ocr {same / len(reference):5.0%} of {len(reference)} lines"
        print(f"  {name:24s} {ms:7.1f} ms  {size / 1000:8.1f} kB{ocr}")


def main(rounds: int, ocr: bool) -> None:
    from pixelpilot.envs.desktop import _pixels, _png_encoder

    cs = codecs()
    # --- browser: the capture, then Chromium's PNG taken at the model's size ----------------------
    png, captures = asyncio.run(browser_capture(rounds))
    report("browser 1280×800 capture of a text-heavy page (lossless PNG every way):", captures, None)
    page = Image.open(io.BytesIO(png))
    page.load()
    rows: list[tuple[str, float, int, list[str] | None]] = []
    ms, ready = time_it(lambda: prepare_image(png), rounds)
    reference = ocr_lines(ready.png) if ocr else None
    rows.append(("default: as captured", ms, len(ready.png), reference))
    for name, encode in cs.items():
        ms, data = time_it(lambda encode=encode: encode(Image.open(io.BytesIO(png)).convert("RGB")), rounds)
        rows.append((name, ms, len(data), ocr_lines(data) if ocr and lossy(name) else None))
    report(
        f"browser {page.width}×{page.height} PNG from Chromium → model ({page.width}×{page.height}):",
        rows,
        reference,
    )

    # --- desktop: raw pixels from the grab, resized to the model's size ---------------------------
    size = (1920, 1080)
    bgrx = _busy_picture(size).convert("RGBX").tobytes("raw", "BGRX")
    shot = type("Shot", (), {"size": size, "bgra": bgrx})()
    target = smart_resize(*size)
    pil_png = cs["png level 1 (Pillow)"]

    def decoded() -> Image.Image:
        return Image.frombuffer("RGB", size, bgrx, "raw", "BGRX", 0, 1)

    def resized() -> Image.Image:
        return resize_bicubic(decoded(), target)

    def pillow_resized() -> Image.Image:
        return decoded().resize(target, Image.Resampling.BICUBIC)

    def observation() -> Observation:
        return Observation(
            png=_png_encoder(shot, 1),
            raw=_pixels(shot),
            width=size[0],
            height=size[1],
            input_width=size[0],
            input_height=size[1],
        )

    def before() -> bytes:  # the full-size PNG by Pillow, decoded again, Pillow's resize and PNG
        full = Image.open(io.BytesIO(pil_png(decoded())))
        return pil_png(full.convert("RGB").resize(target, Image.Resampling.BICUBIC))

    (ms_before, old), (ms_pillow, plain), (ms_050, v050), (ms_default, ready) = interleaved(
        [
            before,
            lambda: pil_png(pillow_resized()),
            lambda: encode_png(pillow_resized()),
            lambda: prepare_image(observation(), size=target),
        ],
        rounds,
    )
    reference = ocr_lines(ready.png) if ocr else None
    rows = [
        ("before: png, decode, png", ms_before, len(old), None),
        ("pillow: raw → resize, png", ms_pillow, len(plain), None),
        ("0.5.0: Pillow resize, ours", ms_050, len(v050), None),
        ("default: prepare_image", ms_default, len(ready.png), reference),
    ]
    for name, encode in cs.items():
        ms, data = time_it(lambda encode=encode: encode(resized()), rounds)
        rows.append((name, ms, len(data), ocr_lines(data) if ocr and lossy(name) else None))
    report(f"desktop {size[0]}×{size[1]} raw BGRX grab → model ({target[0]}×{target[1]}):", rows, reference)
    print(f"  default / before: {ms_default / ms_before:.2f}; default / 0.5.0: {ms_default / ms_050:.2f}")

    small = resized()
    parts = [
        ("BGRX → RGB", lambda: decoded()),
        ("resize: Pillow bicubic", pillow_resized),
        ("resize: libvips reduce (ours)", resized),
        ("encode: Pillow png level 1", lambda: pil_png(small)),
        ("encode: ours, level 1", lambda: encode_png(small)),
        ("base64 of the data URL", lambda: base64.b64encode(ready.png)),
        ("recorded 1080p png: Pillow", lambda: pil_png(decoded())),
        ("recorded 1080p png: ours", lambda: _png_encoder(shot, 1)()),
    ]
    print("where the time goes (desktop):")
    for name, fn in parts:
        ms, data = time_it(fn, rounds)
        extra = f"  {len(data) / 1000:8.1f} kB" if isinstance(data, bytes) else ""
        print(f"  {name:28s} {ms:7.1f} ms{extra}")
    load = os.getloadavg()
    print(
        f"load average {load[0]:.2f} on {os.cpu_count()} CPUs; best of 3 rounds' medians. "
        "Target: default ≤ 15 ms at 1080p"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--no-ocr", action="store_true")
    args = parser.parse_args()
    main(args.rounds, not args.no_ocr)
