"""The SGLang launcher: the command it builds (always), and a real server (only with CUDA and sglang)."""

from __future__ import annotations

import importlib.util
import os
import shlex

import pytest
from typer.testing import CliRunner

from pixelpilot.cli import app as cli
from pixelpilot.serving.sglang import SGLangConfig


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

    from pixelpilot import parse_output
    from pixelpilot.agent.model_policy import ModelPolicy
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
        async with ModelClient(server.config.url) as client:
            fmt = ModelPolicy(client).response_format("browser")
            answer = await client.complete(
                [{"role": "user", "content": "Click the centre of the screen."}], response_format=fmt, max_tokens=128
            )
        assert parse_output(answer.text).action.action
        assert answer.usage.prompt_tokens > 0
    finally:
        server.stop()
