"""The share of schema-valid answers over many constrained requests to a tiny random Qwen3-VL.

Builds the tiny checkpoint, serves it with the local backend (a real HTTP server process on
127.0.0.1), and sends N requests (default 200) across the three env kinds, each with its own
random screenshot and seed, asking for ``response_format: json_schema``. An answer counts as
valid when it is one JSON object ``{"thought", "action"}`` whose action parses and belongs to
the kind. A random model is the worst case for format errors: only the grammar keeps it valid.

    python bench/constrained_validity.py [N] [--model DIR] [--device cuda]
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw

from pixelpilot.actions import ACTIONS_BY_ENV, ActionParseError, parse_output
from pixelpilot.agent.model_policy import ModelPolicy
from pixelpilot.serving.client import ModelClient, Sampling, wait_until_ready
from pixelpilot.serving.images import prepare_image
from pixelpilot.serving.tiny import build_tiny_model

ROOT = Path(__file__).resolve().parents[1]


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


def valid(text: str, kind: str) -> bool:
    try:
        obj = json.loads(text)
        return list(obj) == ["thought", "action"] and parse_output(text).action.action in ACTIONS_BY_ENV[kind]
    except (json.JSONDecodeError, ActionParseError, TypeError):
        return False


async def run(url: str, n: int) -> None:
    kinds = sorted(ACTIONS_BY_ENV)
    fmt = ModelPolicy(url).response_format
    ok, tokens, t0 = 0, [], time.perf_counter()
    bad: list[str] = []
    async with ModelClient(url, timeout=300) as client:
        for i in range(n):
            kind = kinds[i % len(kinds)]
            image = prepare_image(screen(i), max_tokens=64)
            messages = [
                {"role": "system", "content": f"You operate a {kind}."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": f"Task {i}."},
                        {"type": "image_url", "image_url": {"url": image.data_url()}},
                    ],
                },
            ]
            answer = await client.complete(
                messages, response_format=fmt(kind), max_tokens=256, sampling=Sampling(temperature=1.0, seed=i)
            )
            tokens.append(answer.usage.completion_tokens)
            if valid(answer.text, kind):
                ok += 1
            else:
                bad.append(answer.text[:100])
    elapsed = time.perf_counter() - t0
    print(
        f"schema-valid answers: {ok}/{n} = {ok / n:.3f}  ({elapsed / n:.2f} s per request, "
        f"median {sorted(tokens)[len(tokens) // 2]} output tokens)"
    )
    for text in bad[:5]:
        print("  invalid:", text)


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", nargs="?", type=int, default=200, help="requests to send")
    ap.add_argument("--model", type=Path, help="a tiny checkpoint built before (default: build one now)")
    ap.add_argument("--device", help="where the server runs the model (default: CUDA if there is one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or build_tiny_model(Path(tmp) / "tiny")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd = [
            sys.executable,
            "-m",
            "pixelpilot.cli",
            "serve",
            "--model",
            str(model),
            "--port",
            str(port),
            "--threads",
            "1",
        ]
        proc = subprocess.Popen(
            cmd + (["--device", args.device] if args.device else []), cwd=ROOT, start_new_session=True
        )
        url = f"http://127.0.0.1:{port}/v1"
        try:
            asyncio.run(wait_until_ready(url, timeout=300, process=proc))
            asyncio.run(run(url, args.n))
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)


if __name__ == "__main__":
    main()
