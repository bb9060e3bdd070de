"""Launching SGLang for Qwen3-VL: the command, readiness, the log, a clean stop.

    pixelpilot serve --backend sglang --model Qwen/Qwen3-VL-8B-Instruct [--tp 2] [--port 30000] [--dry-run]

The command turns on what pixelpilot relies on: the cache report (``usage.prompt_tokens_details
.cached_tokens``), JSON without free whitespace (a weak model can otherwise emit whitespace
forever inside constrained JSON), Qwen's tool-call parser, and for ``*-Thinking`` checkpoints the
qwen3 reasoning parser (the grammar then applies after ``</think>``).
"""

from __future__ import annotations

import asyncio
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from .._process import stop_group
from .client import is_thinking, wait_until_ready


@dataclass(frozen=True)
class SGLangConfig:
    """What to launch; ``command()`` turns it into argv."""

    model: str
    port: int = 30000
    host: str = "127.0.0.1"
    tp: int = 1
    context_length: int = 32768
    mem_fraction: float | None = None
    python: str = sys.executable
    extra_args: tuple[str, ...] = field(default_factory=tuple)

    def command(self) -> list[str]:
        cmd = [
            self.python,
            "-m",
            "sglang.launch_server",
            "--model-path",
            self.model,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--context-length",
            str(self.context_length),
            "--enable-cache-report",
            "--constrained-json-disable-any-whitespace",
            "--grammar-backend",
            "xgrammar",
            "--tool-call-parser",
            "qwen",
        ]
        if is_thinking(self.model):
            cmd += ["--reasoning-parser", "qwen3"]
        if self.tp > 1:
            cmd += ["--tp", str(self.tp)]
        if self.mem_fraction is not None:
            cmd += ["--mem-fraction-static", str(self.mem_fraction)]
        return cmd + list(self.extra_args)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def shell(self) -> str:
        """The command as one line to paste into a shell."""
        return shlex.join(self.command())


class SGLangServer:
    """A running SGLang process: start it, wait for ``/v1/models``, stream its log, stop it."""

    def __init__(self, config: SGLangConfig, *, log: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.log = log or (lambda line: print(line, end="", file=sys.stderr, flush=True))
        self.process: subprocess.Popen[str] | None = None
        self._pump: threading.Thread | None = None

    def start(self) -> None:
        try:
            self.process = subprocess.Popen(
                self.config.command(),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
        except FileNotFoundError as e:
            raise RuntimeError(f"cannot start SGLang with {self.config.python}: {e}") from None
        assert self.process.stdout is not None
        self._pump = threading.Thread(target=self._stream, args=(self.process.stdout,), daemon=True)
        self._pump.start()

    def _stream(self, pipe: IO[str]) -> None:
        for line in pipe:
            self.log(line)

    async def wait_ready(self, timeout: float = 900.0) -> None:
        """Wait until the server answers (big checkpoints take minutes to load); raise if it dies."""
        await wait_until_ready(self.config.url, timeout=timeout, interval=1.0, process=self.process)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGINT to the whole process group, then SIGKILL if it lingers (SGLang forks workers)."""
        if self.process is not None:
            stop_group(self.process, first=signal.SIGINT, grace=timeout)

    def run(self, ready_timeout: float = 900.0) -> int:
        """Start, wait, then block until the server exits or Ctrl-C; returns its exit code."""
        self.start()
        assert self.process is not None
        try:
            asyncio.run(self.wait_ready(ready_timeout))
            print(f"SGLang is ready at {self.config.url}", file=sys.stderr, flush=True)
            return self.process.wait()
        except KeyboardInterrupt:
            return 130
        finally:
            self.stop()
