"""The SGLang launcher and the requests pixelpilot sends, checked against SGLang itself.

SGLang needs a CUDA GPU to serve, but its argument parser (``sglang.srt.server_args``) and its
request model (``ChatCompletionRequest`` in ``sglang/srt/entrypoints/openai/protocol.py``) import
without one: the session installs the sglang wheel with ``--no-deps`` (plus only what those two
modules import) into a folder of its own, and a subprocess checks ``pixelpilot serve --backend
sglang --dry-run``'s command and every profile's request body with them. A real server runs only
with CUDA and sglang installed.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from conftest import pip_target
from typer.testing import CliRunner

from pixelpilot.cli import app as cli
from pixelpilot.serving.sglang import SGLangConfig

ROOT = Path(__file__).resolve().parent.parent
SGLANG = "sglang==0.5.23"
#: What sglang.srt.server_args and .entrypoints.openai.protocol import beyond pixelpilot's own extras
#: (found by importing them with the wheel installed alone).
SGLANG_IMPORTS = (
    "orjson",
    "psutil",
    "pybase64",
    "msgspec",
    "pyzmq",
    "ipython",
    "traitlets",
    "aiohttp",
    "multidict",
    "yarl",
    "propcache",
    "aiohappyeyeballs",
    "aiosignal",
    "frozenlist",
    "openai",
    "sniffio",
)


def test_serve_sglang_dry_run_prints_the_launch_command() -> None:
    result = CliRunner().invoke(
        cli,
        [
            "serve",
            "--backend",
            "sglang",
            "--model",
            "Qwen/Qwen3-VL-8B-Instruct",
            "--tp",
            "2",
            "--port",
            "31000",
            "--dry-run",
        ],
    )
    assert result.exit_code == 0, result.output
    argv = shlex.split(result.output.strip())
    assert argv[1:3] == ["-m", "sglang.launch_server"]
    opts = " ".join(argv[3:])
    for expected in [
        "--model-path Qwen/Qwen3-VL-8B-Instruct",
        "--port 31000",
        "--tp 2",
        "--enable-cache-report",
        "--constrained-json-disable-any-whitespace",
        "--tool-call-parser qwen",
        "--grammar-backend xgrammar",
        "--context-length 32768",
    ]:
        assert expected in opts, expected
    assert "--reasoning-parser" not in opts  # an Instruct checkpoint


@pytest.fixture(scope="session")
def sglang_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A folder holding the sglang wheel and the few packages its parser and request model import."""
    return pip_target(tmp_path_factory, "sglang", SGLANG, *SGLANG_IMPORTS, timeout=600)


#: Runs with the sglang folder on the path: parses the launch argv with SGLang's own parser and
#: validates each request body with its own request model; prints what they made of them.
CHECK = r"""
import json, sys
from sglang.srt.constrained.json_schema_validation import validate_xgrammar_json_schema
from sglang.srt.entrypoints.openai.protocol import ChatCompletionRequest
from sglang.srt.server_args import prepare_server_args

data = json.load(sys.stdin)
args = prepare_server_args(data["argv"])
out = {"args": {k: getattr(args, k) for k in data["fields"]}, "bodies": []}
for body in data["bodies"]:
    req = ChatCompletionRequest.model_validate(body)
    fmt = req.response_format.model_dump(by_alias=True, exclude_none=True) if req.response_format else None
    if fmt and fmt["type"] == "json_schema":
        validate_xgrammar_json_schema(fmt["json_schema"]["schema"])
    out["bodies"].append({
        "unknown": sorted(set(body) - set(ChatCompletionRequest.model_fields)),
        "ebnf": req.ebnf,
        "response_format": fmt,
        "sampling": {k: getattr(req, k) for k in ("temperature", "top_p", "top_k", "presence_penalty", "repetition_penalty")},
        "max_completion_tokens": req.max_completion_tokens,
        "parts": [[p.type for p in m.content] if isinstance(m.content, list) else "text" for m in req.messages],
    })
print(json.dumps(out))
"""


def _screen() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (1280, 800), (200, 220, 240)).save(buf, "PNG")
    return buf.getvalue()


async def _request_body(profile: str, model: str) -> dict:
    """The body ModelPolicy sends for one step, caught on its way out."""
    from pixelpilot.actions import Observation, Task
    from pixelpilot.agent.model_policy import ModelPolicy
    from pixelpilot.agent.policy import StepContext
    from pixelpilot.serving.client import ModelClient

    sent: list[dict] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(500, json={"error": {"message": "caught"}})

    client = ModelClient("http://sglang.invalid/v1", model=model, max_retries=0, transport=httpx.MockTransport(answer))
    policy = ModelPolicy(
        client,
        profile=profile,
        tools=[
            (
                "calculator",
                {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
            )
        ]
        if profile != "ui-tars"
        else (),
    )
    png = _screen()
    obs = Observation(png=png, width=1280, height=800, input_width=1280, input_height=800, url="http://x.test/")
    ctx = StepContext(Task(instruction="Add a to-do"), obs, [], SimpleNamespace(kind="browser"), 0)
    with pytest.raises(Exception, match="caught"):
        await policy.decide(ctx)
    await client.aclose()
    return sent[0]


async def test_the_launch_command_and_every_request_body_are_what_sglang_reads(sglang_path: str) -> None:
    result = CliRunner().invoke(
        cli, ["serve", "--backend", "sglang", "--model", "Qwen/Qwen3-VL-8B-Thinking", "--tp", "2", "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    argv = shlex.split(result.output.strip())[3:]  # after `python -m sglang.launch_server`
    cases = [
        ("qwen3-vl", "Qwen/Qwen3-VL-8B-Instruct"),
        ("qwen3-vl", "Qwen/Qwen3-VL-8B-Thinking"),
        ("json", "m"),
        ("ui-tars", "m"),
    ]
    bodies = [await _request_body(profile, model) for profile, model in cases]
    fields = [
        "model_path",
        "tp_size",
        "context_length",
        "enable_cache_report",
        "constrained_json_disable_any_whitespace",
        "grammar_backend",
        "tool_call_parser",
        "reasoning_parser",
    ]
    proc = subprocess.run(
        [sys.executable, "-c", CHECK],
        input=json.dumps({"argv": argv, "fields": fields, "bodies": bodies}),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": sglang_path},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["args"] == {
        "model_path": "Qwen/Qwen3-VL-8B-Thinking",
        "tp_size": 2,
        "context_length": 32768,
        "enable_cache_report": True,
        "constrained_json_disable_any_whitespace": True,
        "grammar_backend": "xgrammar",
        "tool_call_parser": "qwen",
        "reasoning_parser": "qwen3",  # the grammar then applies after </think>
    }
    for body, read, (profile, model) in zip(bodies, seen["bodies"], cases, strict=True):
        assert read["unknown"] == [], (profile, read["unknown"])  # every field we send is one SGLang reads
        assert read["max_completion_tokens"] == body["max_completion_tokens"] == 512
        expected_parts = {
            "qwen3-vl": ["text", ["image_url", "text"]],  # the screenshot before the text, as the official agent
            "json": ["text", ["text", "image_url"]],
            "ui-tars": ["text", "text", ["image_url"]],
        }[profile]
        assert read["parts"] == expected_parts, (profile, read["parts"])
        if profile == "json":
            assert (
                read["ebnf"] is None
                and read["response_format"]["json_schema"]["schema"] == body["response_format"]["json_schema"]["schema"]
            )
        else:
            assert read["ebnf"] == body["ebnf"] and read["response_format"] is None
        sampling = {k: body[k] for k in read["sampling"] if k in body}
        assert {k: read["sampling"][k] for k in sampling} == sampling
        if profile == "qwen3-vl":  # the model card's sampling, per checkpoint family
            expected = (0.6, 0.95, 20, 0.0) if "Thinking" in model else (0.7, 0.8, 20, 1.5)
            assert (
                sampling["temperature"],
                sampling["top_p"],
                sampling["top_k"],
                sampling["presence_penalty"],
            ) == expected


def test_thinking_checkpoints_get_the_reasoning_parser_and_one_gpu_no_tp() -> None:
    cmd = SGLangConfig(model="Qwen/Qwen3-VL-8B-Thinking").command()
    assert cmd[cmd.index("--reasoning-parser") + 1] == "qwen3"
    assert "--tp" not in cmd


def test_dry_run_is_only_for_sglang() -> None:
    result = CliRunner().invoke(cli, ["serve", "--backend", "transformers", "--dry-run"])
    assert result.exit_code == 2 and "--dry-run only applies to --backend sglang" in result.output


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


SGLANG_MODEL = os.environ.get("PIXELPILOT_SGLANG_MODEL", "Qwen/Qwen3-VL-2B-Instruct")


@pytest.mark.skipif(not _cuda(), reason="a real SGLang server needs a CUDA GPU; none is visible to torch")
@pytest.mark.skipif(importlib.util.find_spec("sglang") is None, reason="sglang is not installed (pip install sglang)")
async def test_real_sglang_answers_a_constrained_action_request(tmp_path) -> None:
    """Launch SGLang on $PIXELPILOT_SGLANG_MODEL (a local path or a cached id), ask for one action."""
    import socket

    from pixelpilot.profiles import DecodeContext, get_profile
    from pixelpilot.serving.client import ModelClient
    from pixelpilot.serving.sglang import SGLangServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    lines: list[str] = []
    server = SGLangServer(SGLangConfig(model=SGLANG_MODEL, port=port), log=lines.append)
    server.start()
    try:
        await server.wait_ready(timeout=600)
        profile = get_profile("qwen3-vl")
        setup = profile.setup("browser")
        async with ModelClient(server.config.url) as client:
            answer = await client.complete(
                [
                    {"role": "system", "content": profile.system_prompt(setup)},
                    {"role": "user", "content": "Click the centre of the screen."},
                ],
                extra=profile.constraint(setup),
                sampling=profile.sampling(SGLANG_MODEL, setup),
                max_tokens=128,
            )
        ctx = DecodeContext(setup, (500, 500))
        assert profile.decode(answer.text, ctx).action.action and profile.in_format(answer.text, ctx), answer.text
        assert answer.usage.prompt_tokens > 0
    finally:
        server.stop()
