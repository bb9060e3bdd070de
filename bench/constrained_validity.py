"""Constrained answers from a tiny random Qwen3-VL, in each model profile's own format.

Builds the tiny checkpoint, serves it with the local backend (a real HTTP server process on
127.0.0.1), and sends N requests per profile (default 1,000) across the three env kinds, each with
its own random screenshot and seed, constrained as ``ModelPolicy`` constrains them (the profile's
``ebnf`` grammar, or ``response_format: json_schema`` for ``json``) with the profile's sampling. A
random model is the worst case for format errors: only the grammar keeps it valid. For each
profile it prints:

- the share of answers that decode into an action on offer for the env kind;
- the share written exactly in the profile's format (for qwen3-vl: the official ``Action:`` line,
  then one ``<tool_call>`` with ``", "``/``": "`` separators, keys in the official order);
- output tokens per click: the median over the tiny model's clicks (its lines and numbers are
  one token long, so this is a floor), and for a click a trained model writes (a one-sentence
  line or thought, three-digit coordinates): all its tokens, and the tokens the model chooses —
  the others the grammar forces (it allows exactly one token there), counted with xgrammar.

    PYTHONPATH=. python bench/constrained_validity.py [N] [--profiles qwen3-vl,json] [--model DIR] [--device cuda]
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from pixelpilot.actions import ACTIONS_BY_ENV
from pixelpilot.profiles import ActionParseError, DecodeContext, ImageRef, Turn, get_profile, to_openai
from pixelpilot.serving.client import ModelClient, Sampling, wait_until_ready
from pixelpilot.serving.images import prepare_image
from pixelpilot.serving.tiny import build_tiny_model, build_tokenizer

ROOT = Path(__file__).resolve().parents[1]
#: A click as a trained model writes it in each format.
TYPICAL_CLICK = {"action": "click", "x": 447, "y": 81, "button": "left"}
TYPICAL_LINE = "Click the search box."


def screen(seed: int) -> bytes:
    rnd = random.Random(seed)
    img = Image.new("RGB", (640, 400), tuple(rnd.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(img)
    for _ in range(8):
        x, y = rnd.randrange(580), rnd.randrange(370)
        draw.rectangle([x, y, x + 60, y + 30], fill=tuple(rnd.randrange(256) for _ in range(3)))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def chosen_tokens(constraint: dict[str, Any], text: str) -> tuple[int, int]:
    """(all tokens, tokens the model chooses) of ``text`` under ``constraint``. Where the grammar
    allows one continuation only (xgrammar's jump-forward string: ``{"name": "computer_use", …``),
    the text is forced; the chosen tokens are those of the free spans, each tokenized on its own."""
    import xgrammar as xgr

    from pixelpilot.serving.local import compile_constraint

    tok = build_tokenizer()
    compiler = xgr.GrammarCompiler(xgr.TokenizerInfo.from_huggingface(tok, vocab_size=151936, stop_token_ids=[151645]))
    matcher = xgr.GrammarMatcher(compile_constraint(compiler, constraint))
    free, spans, i = "", [], 0
    while i < len(text):
        forced = matcher.find_jump_forward_string()
        if forced and text.startswith(forced, i):
            spans.append(free)
            free = ""
            assert matcher.accept_string(forced)
            i += len(forced)
        else:
            assert matcher.accept_string(text[i]), (text, i)
            free += text[i]
            i += 1
    spans.append(free)
    chosen = sum(len(tok.encode(s, add_special_tokens=False)) for s in spans if s)
    return len(tok.encode(text, add_special_tokens=False)), chosen


async def run(url: str, n: int, profile_name: str) -> dict[str, Any]:
    profile = get_profile(profile_name)
    kinds = sorted(ACTIONS_BY_ENV)
    decodable = in_format = 0
    click_tokens: list[int] = []
    bad: list[str] = []
    t0 = time.perf_counter()
    async with ModelClient(url, timeout=300) as client:
        for i in range(n):
            kind = kinds[i % len(kinds)]
            setup = profile.setup(kind)
            image = prepare_image(screen(i), max_tokens=64, factor=profile.image_factor)
            size = (image.width, image.height)
            turn = Turn(ImageRef("screen", image.width, image.height))
            messages = profile.messages(setup, f"Task {i}: do what the screen asks.", [], turn)
            body = to_openai(messages, lambda _ref, image=image: image.data_url())
            sampling = profile.sampling("tiny", setup) or Sampling()
            answer = await client.complete(
                body,
                max_tokens=256,
                sampling=Sampling(**{**vars(sampling), "temperature": 1.0, "seed": i}),
                extra=profile.constraint(setup, size),
            )
            ctx = DecodeContext(setup, (500, 500), size)
            try:
                action = profile.decode(answer.text, ctx).action
                ok = action.action in setup.allowed
            except ActionParseError:
                ok = False
            decodable += ok
            in_format += profile.in_format(answer.text, ctx)
            if not ok:
                bad.append(answer.text[:100])
            elif action.action == "click":
                click_tokens.append(answer.usage.completion_tokens)
    setup = profile.setup("browser")
    ctx = DecodeContext(setup, (500, 500), (1288, 812))
    typical = profile.encode(TYPICAL_CLICK, ctx, TYPICAL_LINE)
    total, chosen = chosen_tokens(profile.constraint(setup, (1288, 812)), typical)
    return {
        "profile": profile_name,
        "n": n,
        "decodable": decodable,
        "in_format": in_format,
        "seconds_per_request": (time.perf_counter() - t0) / n,
        "tiny_click_tokens": statistics.median(click_tokens) if click_tokens else float("nan"),
        "typical": typical,
        "typical_tokens": total,
        "typical_chosen": chosen,
        "bad": bad[:3],
    }


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", nargs="?", type=int, default=1000, help="requests per profile")
    ap.add_argument("--profiles", default="qwen3-vl,json,ui-tars", help="comma-separated profile names")
    ap.add_argument("--model", type=Path, help="a tiny checkpoint built before (default: build one now)")
    ap.add_argument("--device", help="where the server runs the model (default: CUDA if there is one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or build_tiny_model(Path(tmp) / "tiny")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd = [sys.executable, "-m", "pixelpilot.cli", "serve", "--model", str(model), "--port", str(port)]
        cmd += ["--threads", "1"] + (["--device", args.device] if args.device else [])
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, env=env)
        url = f"http://127.0.0.1:{port}/v1"
        try:
            asyncio.run(wait_until_ready(url, timeout=300, process=proc))
            for name in args.profiles.split(","):
                r = asyncio.run(run(url, args.n, name))
                print(
                    f"{r['profile']:<9} decodable {r['decodable']}/{r['n']} = {r['decodable'] / r['n']:.3f}; "
                    f"in the official format {r['in_format'] / r['n']:.3f}; {r['seconds_per_request']:.2f} s/request"
                )
                print(
                    f"          output tokens per click: tiny model median {r['tiny_click_tokens']:.0f}; a trained "
                    f"model's click {r['typical_tokens']} tokens, {r['typical_chosen']} chosen "
                    f"(the rest forced by the grammar): {r['typical']!r}"
                )
                for text in r["bad"]:
                    print("          not decodable:", text)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)


if __name__ == "__main__":
    main()
