"""An async client for OpenAI-compatible chat completions (SGLang, vLLM, llama.cpp's server, OpenAI,
and pixelpilot's own local backend).

It sends messages as they are (images as base64 data URLs inside them), retries what is worth
retrying — connection errors, timeouts, 5xx, 429 and bodies that are not a complete completion —
with bounded exponential backoff (tenacity), and returns the answer's text with the token usage,
cached tokens included. Anything else (a 400, a 404) fails at once with the server's own message.

A hung server is found out in time for a GUI step: each attempt gets ``connect_timeout`` to connect
and ``first_byte_timeout`` until the server starts answering, and the whole request — every
attempt, every wait between them, a body that trickles in — ends by one ``deadline``. A body
larger than ``max_response_bytes`` is refused, whatever pace it comes at.

Several servers form a pool (:mod:`.pool`): each episode is pinned to one server so its prefix stays in
that server's cache, and a new episode goes to the least loaded server.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from .pool import ServerPool

#: Seconds to connect to a model server (each attempt).
DEFAULT_CONNECT_TIMEOUT = 5.0
#: Seconds a server may think before it starts to answer (each attempt): a GUI step's model call.
DEFAULT_FIRST_BYTE_TIMEOUT = 60.0
#: Seconds one request may take in all, its retries and their waits included.
DEFAULT_DEADLINE = 90.0
#: The largest response read (a completion is a few kilobytes).
MAX_RESPONSE_BYTES = 16 * 1024 * 1024

#: How to start a server, for error messages.
START_HINT = (
    "start one with `pixelpilot serve --backend transformers --model PATH` (CPU) or "
    "`pixelpilot serve --backend sglang --model Qwen/Qwen3-VL-8B-Instruct` (GPU)"
)


class ServingError(RuntimeError):
    """A model server could not be reached or did not answer usefully; the message names the URL."""

    def __init__(self, message: str, url: str = "") -> None:
        super().__init__(message)
        self.url = url


class _Transient(Exception):
    """A failure worth another try (connection, timeout, 5xx, 429, a broken body)."""

    def __init__(self, reason: str, retry_after: float | None = None, connect: bool = False) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.connect = connect


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters sent with each request (None = the server's default).

    ``presence_penalty`` and ``repetition_penalty`` act on the tokens generated so far, as SGLang
    applies them; a model profile sends its model card's values (``pixelpilot.profiles``).
    """

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    presence_penalty: float | None = None
    repetition_penalty: float | None = None
    seed: int | None = None

    def to_body(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}


def is_thinking(model: str | None) -> bool:
    """Whether a checkpoint name is a Thinking one (``Qwen/Qwen3-VL-8B-Thinking``): it reasons in
    ``<think>…</think>`` before answering, so servers need a reasoning parser for it."""
    return bool(model) and "thinking" in str(model).lower()


@dataclass(frozen=True)
class TokenUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0


@dataclass(frozen=True)
class Completion:
    """One answer: its text (a reasoning parser's split-off thinking put back as ``<think>…</think>``)."""

    text: str
    usage: TokenUsage
    model: str
    server: str
    finish_reason: str | None
    latency_ms: float
    attempts: int = 1


def normalize_base_url(url: str) -> str:
    """``http://host:30000`` and ``…/v1/`` both become ``http://host:30000/v1``."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"model URL {url!r} must start with http:// or https://")
    return url if url.endswith("/v1") else url + "/v1"


class ModelClient:
    """Chat completions against one server or a pool of them.

    >>> client = ModelClient("http://127.0.0.1:30000/v1", model="Qwen/Qwen3-VL-8B-Instruct")  # doctest: +SKIP
    >>> answer = await client.complete(messages, response_format=fmt, episode="ep-1")          # doctest: +SKIP

    ``max_retries`` bounds the extra tries per request (so at most ``max_retries + 1`` requests);
    waits grow from ``backoff`` seconds up to ``max_backoff``, honouring a 429's Retry-After up
    to that cap. ``model=None`` asks the first server's ``/v1/models`` once.

    Time: an attempt may take ``connect_timeout`` seconds to connect and ``first_byte_timeout``
    until the server starts to answer (a non-streaming server answers once it has generated the
    whole completion, so this is the generation's time); a request, all its attempts and waits
    included, ends after ``deadline`` seconds, with a :class:`ServingError` that says so.
    """

    def __init__(
        self,
        base_url: str | Sequence[str],
        *,
        model: str | None = None,
        api_key: str | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        first_byte_timeout: float = DEFAULT_FIRST_BYTE_TIMEOUT,
        deadline: float = DEFAULT_DEADLINE,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            raise ValueError("ModelClient needs at least one server URL")
        if not 0 < connect_timeout <= deadline or not 0 < first_byte_timeout <= deadline:
            raise ValueError("connect_timeout and first_byte_timeout must be positive and at most the deadline")
        self.pool = ServerPool([normalize_base_url(u) for u in urls])
        self.model = model
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.deadline = deadline
        self.max_response_bytes = max_response_bytes
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            headers=headers,
            transport=transport,
            # httpx's read timeout is per read: the wait for the first byte, then for each next one.
            timeout=httpx.Timeout(first_byte_timeout, connect=connect_timeout),
        )

    def release(self, episode: str) -> None:
        """Forget an episode's server (call when it ends, so that server counts as less loaded)."""
        self.pool.release(episode)

    # --- requests ----------------------------------------------------------------------------

    async def list_models(self, url: str | None = None) -> list[str]:
        """The model ids a server serves (``GET /v1/models``); raises ServingError when unreachable."""
        url = url or self.pool.urls[0]
        body = await self._send("GET", url, "/models", None, until=time.monotonic() + self.deadline)
        try:
            return [m["id"] for m in body["data"]]
        except (KeyError, TypeError):
            raise ServingError(f"{url}/models did not return an OpenAI model list", url) from None

    async def resolve_model(self) -> str:
        """The model name to send: the one given, else the first the server lists."""
        if self.model is None:
            models = await self.list_models()
            if not models:
                raise ServingError(f"the server at {self.pool.urls[0]} serves no model", self.pool.urls[0])
            self.model = models[0]
        return self.model

    async def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        response_format: Mapping[str, Any] | None = None,
        max_tokens: int = 512,
        sampling: Sampling | None = None,
        episode: str | None = None,
        extra: Mapping[str, Any] | None = None,
        until: float | None = None,
    ) -> Completion:
        """One chat completion. ``episode`` pins the request to that episode's server.

        ``extra`` adds request fields (a profile's constraint: ``ebnf`` or ``response_format``).
        ``until`` (a ``time.monotonic()`` value) ends the request earlier than ``deadline`` from now,
        for a caller whose one decision makes several requests.
        """
        until = min(until, time.monotonic() + self.deadline) if until is not None else time.monotonic() + self.deadline
        model = await self.resolve_model()
        body: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "max_completion_tokens": max_tokens,
            **(sampling.to_body() if sampling is not None else {}),
            **(extra or {}),
        }
        if response_format is not None:
            body["response_format"] = dict(response_format)
        url = self.pool.pick(episode)
        t0 = time.perf_counter()
        attempts = [0]
        with self.pool.request(url):
            data = await self._send("POST", url, "/chat/completions", body, until, attempts, _check_completion)
        return _completion(data, model, url, (time.perf_counter() - t0) * 1000, attempts[0])

    async def _send(
        self,
        method: str,
        url: str,
        path: str,
        body: Any,
        until: float,
        attempts: list[int] | None = None,
        check: Any = None,
    ) -> Any:
        """The request, retried, until it succeeds or ``until`` (monotonic) passes."""
        attempts = attempts if attempts is not None else [0]
        t0 = time.monotonic()
        try:
            async with asyncio.timeout(max(0.0, until - t0)):
                return await self._retrying(method, url, path, body, attempts, check)
        except TimeoutError:
            tries = f"{attempts[0]} tries" if attempts[0] > 1 else "1 try"
            raise ServingError(
                f"the model server at {url} did not answer within {time.monotonic() - t0:.0f} s ({tries}); "
                "is it hung or overloaded?",
                url,
            ) from None

    async def _retrying(
        self, method: str, url: str, path: str, body: Any, attempts: list[int], check: Any = None
    ) -> Any:
        last: _Transient | None = None
        backoff = wait_exponential_jitter(multiplier=self.backoff, jitter=self.backoff, max=self.max_backoff)

        def wait(state: Any) -> float:
            base = backoff(state)
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, _Transient) and exc.retry_after is not None:
                return min(max(exc.retry_after, base), self.max_backoff)
            return base

        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.max_retries + 1),
                wait=wait,
                retry=retry_if_exception_type(_Transient),
                reraise=True,
            ):
                with attempt:
                    attempts[0] += 1
                    try:
                        return await self._once(method, url + path, body, check)
                    except _Transient as e:
                        last = e
                        raise
        except _Transient:
            assert last is not None
            tries = f"{attempts[0]} tries" if attempts[0] > 1 else "1 try"
            if last.connect:
                raise ServingError(
                    f"cannot reach the model server at {url} ({last}, {tries}); {START_HINT}", url
                ) from None
            raise ServingError(f"the model server at {url} kept failing: {last} ({tries})", url) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(self, method: str, url: str, body: Any, check: Any) -> Any:
        try:
            async with self._http.stream(method, url, json=body) as resp:
                status, headers, content = resp.status_code, resp.headers, bytearray()
                async for chunk in resp.aiter_bytes():  # decoded: a compressed bomb counts at its full size
                    content += chunk
                    if len(content) > self.max_response_bytes:  # no use asking again
                        raise ServingError(
                            f"the model server at {url} sent more than {self.max_response_bytes // 2**20} MB", url
                        )
        except httpx.ConnectError as e:
            raise _Transient(_reason(e), connect=True) from None
        except (httpx.TimeoutException, httpx.TransportError, httpx.DecodingError) as e:
            raise _Transient(_reason(e)) from None
        text = content.decode("utf-8", "replace")
        if status == 429 or status >= 500:
            raise _Transient(f"HTTP {status} {_server_message(text)}".rstrip(), retry_after=_retry_after(headers))
        if status >= 400:
            hint = " (is this the server's OpenAI-compatible /v1 URL?)" if status == 404 else ""
            raise ServingError(
                f"the model server at {url} refused the request: HTTP {status} {_server_message(text)}{hint}".rstrip(),
                url,
            )
        try:
            data = json.loads(content)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            raise _Transient(f"the response is not JSON: {text[:80]!r}") from None
        if check is not None:
            check(data)
        return data

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> ModelClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _check_completion(data: Any) -> None:
    try:
        message = data["choices"][0]["message"]
        ok = isinstance(message, dict) and (isinstance(message.get("content"), str) or message.get("tool_calls"))
    except (KeyError, IndexError, TypeError):
        ok = False
    if not ok:
        raise _Transient(f"the response is not a chat completion: {json.dumps(data)[:80]!r}")


def _completion(data: dict[str, Any], model: str, server: str, latency_ms: float, attempts: int) -> Completion:
    choice = data["choices"][0]
    message = choice["message"]
    text = message.get("content") or ""
    # A reasoning parser (SGLang --reasoning-parser qwen3) moves the thinking out of the content.
    reasoning = message.get("reasoning_content")
    if reasoning:
        text = f"<think>{reasoning}</think>{text}"
    # A tool-call parser moves <tool_call> blocks into tool_calls: put them back for parse_output.
    for call in message.get("tool_calls") or []:
        fn = call.get("function", {})
        args = fn.get("arguments", "{}")
        args_obj = json.loads(args) if isinstance(args, str) else args
        text += "\n<tool_call>\n" + json.dumps({"name": fn.get("name"), "arguments": args_obj}) + "\n</tool_call>"
    u = data.get("usage") or {}
    details = u.get("prompt_tokens_details") or {}
    usage = TokenUsage(
        prompt_tokens=int(u.get("prompt_tokens") or 0),
        completion_tokens=int(u.get("completion_tokens") or 0),
        cached_tokens=int(details.get("cached_tokens") or u.get("cached_tokens") or 0),
    )
    return Completion(
        text, usage, data.get("model") or model, server, choice.get("finish_reason"), latency_ms, attempts
    )


def _reason(e: Exception) -> str:
    text = str(e) or type(e).__name__
    return text.splitlines()[0]


def _server_message(text: str) -> str:
    """The error a server's body states (OpenAI's ``error.message`` and its cousins), else its start."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return text[:120].strip()
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data.get("message")))
        if isinstance(err, dict):
            err = err.get("message")
        if err:
            return str(err)[:200]
    return ""


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


async def wait_until_ready(url: str, *, timeout: float = 60.0, interval: float = 0.25, process: Any = None) -> None:
    """Poll ``GET {url}/models`` until it answers 200, a ``process`` exits, or ``timeout`` passes."""
    base = normalize_base_url(url)
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2.0) as http:
        while True:
            if process is not None and process.poll() is not None:
                raise ServingError(
                    f"the server for {base} exited with code {process.returncode} before it was ready", base
                )
            try:
                if (await http.get(base + "/models")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() >= deadline:
                raise ServingError(f"the server at {base} was not ready after {timeout:.0f} s", base)
            await asyncio.sleep(interval)
