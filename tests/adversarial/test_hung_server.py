"""Model servers that hang in every way a socket can: each must be given up within the one deadline a
decision has (connect, first byte, total — retries included), not after 4 x 120 s as before.

The servers are real sockets on 127.0.0.1 that misbehave on purpose; the last tests run the agent in
real Chromium against them.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Callable

import pytest

from pixelpilot import Agent, Recorder, Task
from pixelpilot.agent.model_policy import ModelPolicy
from pixelpilot.serving.client import DEFAULT_DEADLINE, DEFAULT_FIRST_BYTE_TIMEOUT, ModelClient, ServingError

TERMINATE = (
    'Action: Done.\n<tool_call>\n{"name": "computer_use", "arguments": {"action": "terminate", "status": "success"}}'
    "\n</tool_call>"
)
DEADLINE = 3.0
OPTIONS = {"connect_timeout": 0.5, "first_byte_timeout": 1.0, "deadline": DEADLINE, "backoff": 0.05, "max_backoff": 0.2}
HEADERS = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"


def _answer(content: str = TERMINATE) -> bytes:
    body = json.dumps(
        {"model": "m", "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}
    ).encode()
    return HEADERS + f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


def _drip(conn: socket.socket, data: bytes, every: float, stop: threading.Event) -> None:
    for i in range(len(data)):
        if stop.wait(every):
            return
        conn.sendall(data[i : i + 1])


Behaviour = Callable[[socket.socket, threading.Event], None]

BEHAVIOURS: dict[str, Behaviour] = {
    # reads the request and never says a word
    "silent": lambda conn, stop: stop.wait(),
    # the status line, one byte at a time, each well inside the first-byte timeout
    "headers one byte at a time": lambda conn, stop: _drip(conn, HEADERS * 100, 0.3, stop),
    # headers promising a body that never comes
    "headers, then silence": lambda conn, stop: (conn.sendall(HEADERS + b"Content-Length: 1000\r\n\r\n"), stop.wait()),
    # a body that trickles in forever, a byte every 0.3 s
    "a body one byte at a time": lambda conn, stop: (
        conn.sendall(HEADERS + b"Content-Length: 100000\r\n\r\n"),
        _drip(conn, b"x" * 100000, 0.3, stop),
    ),
    # a body that never ends, as fast as the socket takes it
    "an endless body": lambda conn, stop: (
        conn.sendall(HEADERS + b"Transfer-Encoding: chunked\r\n\r\n"),
        [conn.sendall(b"10000\r\n" + b"x" * 0x10000 + b"\r\n") for _ in iter(lambda: stop.is_set(), True)],
    ),
    # 30 KB on the wire, 32 MB once unpacked
    "a gzip bomb": lambda conn, stop: (
        conn.sendall(HEADERS + f"Content-Encoding: gzip\r\nContent-Length: {len(BOMB)}\r\n\r\n".encode() + BOMB),
        stop.wait(),
    ),
    # always busy, asking to come back in an hour
    "503 with Retry-After: 3600": lambda conn, stop: conn.sendall(
        b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 3600\r\nContent-Length: 2\r\n\r\n{}"
    ),
}
BOMB = gzip.compress(b"\0" * 32_000_000, compresslevel=9)


class HungServer:
    """A TCP server on 127.0.0.1 whose n-th connection gets ``behaviours[n]`` (the last one repeats)."""

    def __init__(self, *behaviours: Behaviour, accept: bool = True) -> None:
        self.behaviours = list(behaviours)
        self.accept = accept
        self.connections = 0
        self.stop = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.threads: list[threading.Thread] = []
        self.open: list[socket.socket] = []

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.open.append(conn)
            behave = self.behaviours[min(self.connections, len(self.behaviours) - 1)]
            self.connections += 1
            thread = threading.Thread(target=self._handle, args=(conn, behave), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _handle(self, conn: socket.socket, behave: Behaviour) -> None:
        try:
            request = b""
            while b"\r\n\r\n" not in request:
                if not (data := conn.recv(65536)):
                    return
                request += data
            head, _, body = request.partition(b"\r\n\r\n")
            sizes = [h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")]
            while len(body) < int(sizes[0] if sizes else 0):
                if not (data := conn.recv(65536)):
                    return
                body += data
            behave(conn, self.stop)
        except OSError:
            pass  # the client gave up, as it should

    def __enter__(self) -> HungServer:
        if self.accept:  # else connections wait in the kernel's backlog: connected, never served
            thread = threading.Thread(target=self._serve, daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for sock in (self.sock, *self.open):
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in accept() or recv()
            except OSError:
                pass
            sock.close()
        for thread in self.threads:
            thread.join(5)


MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("behaviour", list(BEHAVIOURS))
async def test_a_hung_server_is_given_up_within_the_deadline(behaviour):
    with HungServer(BEHAVIOURS[behaviour]) as server:
        async with ModelClient(server.url, model="m", max_retries=10, **OPTIONS) as client:
            t0 = time.monotonic()
            with pytest.raises(ServingError) as failed:
                await client.complete(MESSAGES)
            took = time.monotonic() - t0
    assert took < DEADLINE + 1.5, f"{behaviour}: {took:.1f} s"  # a loaded machine may add a little
    assert server.url in str(failed.value)


async def test_a_server_that_accepts_nothing_is_given_up_within_the_deadline():
    """Connections the kernel completes (the backlog) but no process ever reads."""
    with HungServer(BEHAVIOURS["silent"], accept=False) as server:
        async with ModelClient(server.url, model="m", **OPTIONS) as client:
            t0 = time.monotonic()
            with pytest.raises(ServingError, match="did not answer within"):
                await client.complete(MESSAGES)
    assert time.monotonic() - t0 < DEADLINE + 1.5


async def test_one_hung_attempt_is_retried_within_the_same_deadline():
    silent = BEHAVIOURS["silent"]
    with HungServer(silent, lambda conn, stop: conn.sendall(_answer())) as server:
        async with ModelClient(server.url, model="m", **OPTIONS) as client:
            t0 = time.monotonic()
            answer = await client.complete(MESSAGES)
    assert answer.text == TERMINATE and answer.attempts == 2
    assert 1.0 <= time.monotonic() - t0 < DEADLINE


def test_the_defaults_fit_a_gui_step():
    client = ModelClient("http://127.0.0.1:9/v1")
    assert client.deadline == DEFAULT_DEADLINE <= 120  # was 4 tries x 120 s, 485 s in one step
    assert DEFAULT_FIRST_BYTE_TIMEOUT <= DEFAULT_DEADLINE
    with pytest.raises(ValueError, match="at most the deadline"):
        ModelClient("http://127.0.0.1:9/v1", first_byte_timeout=100, deadline=10)


# --- the agent, in real Chromium ---------------------------------------------------------------------

PAGE = "data:text/html,<h1>Hello</h1>"


async def test_an_agent_step_against_a_hung_server_ends_as_model_error_in_time(browser_env, tmp_path):
    with HungServer(BEHAVIOURS["a body one byte at a time"]) as server:
        policy = ModelPolicy(ModelClient(server.url, model="m", **OPTIONS))
        t0 = time.monotonic()
        episode = await Agent(browser_env(), policy, recorder=Recorder(tmp_path)).run(Task(instruction="t", url=PAGE))
        took = time.monotonic() - t0
        await policy.aclose()
    assert episode.status == "model_error" and server.url in episode.message
    assert took < DEADLINE + 3.0


async def test_a_reask_shares_the_decision_deadline(browser_env, tmp_path):
    """The first answer is unusable and comes late; the re-ask hangs: the decision still ends at one
    deadline, not at the first answer's time plus a deadline of its own."""

    def late_and_unusable(conn: socket.socket, stop: threading.Event) -> None:
        stop.wait(2.0)
        conn.sendall(_answer("I would rather not click anything."))

    with HungServer(late_and_unusable, BEHAVIOURS["silent"]) as server:
        policy = ModelPolicy(ModelClient(server.url, model="m", **{**OPTIONS, "first_byte_timeout": 2.5}))
        t0 = time.monotonic()
        episode = await Agent(browser_env(), policy, recorder=Recorder(tmp_path)).run(Task(instruction="t", url=PAGE))
        took = time.monotonic() - t0
        await policy.aclose()
    assert server.connections >= 2  # the re-ask was sent
    assert episode.status == "model_error" and "did not answer within" in episode.message
    assert took < DEADLINE + 2.0
