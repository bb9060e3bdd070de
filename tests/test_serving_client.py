"""The model client and ModelPolicy against real local HTTP servers that misbehave on purpose.

No model here: a small stdlib HTTP server answers from a script (500s, 429s, stalls, truncated
JSON, garbage, unusable answers, good answers), and the Agent runs in real Chromium.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pixelpilot import Agent, Recorder, Task, load_episode
from pixelpilot.agent.model_policy import ModelPolicy
from pixelpilot.cli import app as cli
from pixelpilot.profiles import ImageRef, PastStep, Turn, get_profile
from pixelpilot.serving.client import ModelClient, ServingError
from pixelpilot.serving.images import image_tokens, prepare_image, smart_resize

# Answers in the default (qwen3-vl) profile's format.
TERMINATE = (
    'Action: Done.\n<tool_call>\n{"name": "computer_use", "arguments": {"action": "terminate", "status": "success"}}'
    "\n</tool_call>"
)
CLICK = 'Action: Go.\n<tool_call>\n{"name": "computer_use", "arguments": {"action": "left_click", "coordinate": [500, 500]}}\n</tool_call>'


class FaultServer:
    """An OpenAI-shaped server on 127.0.0.1 that plays ``script`` (one entry per chat request; the
    last entry repeats): ``400``, ``500``, ``429``, ``stall``, ``truncated``, ``garbage`` or ``ok:<content>``."""

    def __init__(self, script: list[str], stall_s: float = 1.0) -> None:
        self.script = list(script)
        self.stall_s = stall_s
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                try:
                    self.send_response(code)
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up on a stalled answer

            def do_GET(self) -> None:
                self._send(200, json.dumps({"object": "list", "data": [{"id": "fault"}]}).encode())

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                    what = server.script.pop(0) if len(server.script) > 1 else server.script[0]
                if what == "400":
                    self._send(400, b'{"error": {"message": "unknown field \'foo\'"}}')
                elif what == "500":
                    self._send(500, b'{"error": {"message": "out of memory"}}')
                elif what == "429":
                    self._send(429, b'{"error": "slow down"}', {"Retry-After": "0"})
                elif what == "stall":
                    time.sleep(server.stall_s)
                    self._send(200, _completion(CLICK))
                elif what == "truncated":
                    self._send(200, _completion(CLICK)[:40])
                elif what == "garbage":
                    self._send(200, b"<html>502 Bad Gateway</html>")
                else:
                    self._send(200, _completion(what.removeprefix("ok:")))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> FaultServer:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _completion(content: str) -> bytes:
    return json.dumps(
        {
            "id": "x",
            "object": "chat.completion",
            "model": "fault",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "prompt_tokens_details": {"cached_tokens": 64}},
        }
    ).encode()


def _client(url: str | list[str], **kw) -> ModelClient:
    opts = {
        "max_retries": 3,
        "backoff": 0.01,
        "max_backoff": 0.05,
        "first_byte_timeout": 1.5,
    }  # generous: a loaded CI machine is slow
    return ModelClient(url, **{**opts, **kw})


@pytest.fixture
def env(browser_env):
    """A BrowserEnv in the session's shared Chromium (tests/conftest.py)."""
    return browser_env(viewport=(640, 400))


PAGE = "data:text/html,<h1>Hello</h1>"


@pytest.mark.parametrize("fault", ["500", "429", "stall", "truncated", "garbage"])
async def test_each_fault_is_retried_then_the_answer_is_used(env, tmp_path: Path, fault: str) -> None:
    with FaultServer([fault, fault, "ok:" + TERMINATE], stall_s=3.0) as server:
        policy = ModelPolicy(_client(server.url))
        episode = await Agent(env, policy, recorder=Recorder(tmp_path)).run(Task(instruction="t", url=PAGE))
        await policy.aclose()
    assert episode.status == "success", episode.message
    assert len(server.requests) == 3
    step = load_episode(episode.path).steps[0]
    assert step.extra["attempts"] == 3
    assert step.usage is not None and step.usage.cached_tokens == 64


async def test_a_server_that_keeps_failing_ends_the_episode_as_model_error_and_saves_it(env, tmp_path: Path) -> None:
    script = ["500", "429", "stall", "truncated", "garbage"]
    with FaultServer(script, stall_s=3.0) as server:
        policy = ModelPolicy(_client(server.url, max_retries=4))
        t0 = time.monotonic()
        episode = await Agent(env, policy, recorder=Recorder(tmp_path)).run(Task(instruction="t", url=PAGE))
        elapsed = time.monotonic() - t0
        await policy.aclose()
    assert episode.status == "model_error"
    assert server.url in episode.message and "kept failing" in episode.message and "5 tries" in episode.message
    assert len(server.requests) == 5  # bounded: 1 + max_retries
    assert elapsed < 10
    saved = load_episode(episode.path)
    assert saved.finished and saved.status == "model_error" and saved.steps == []


async def test_an_unusable_answer_is_asked_again_once_with_the_error(env, tmp_path: Path) -> None:
    with FaultServer(["ok:I think I should click the button.", "ok:" + TERMINATE]) as server:
        policy = ModelPolicy(_client(server.url))
        episode = await Agent(env, policy, recorder=Recorder(tmp_path)).run(Task(instruction="t", url=PAGE))
        await policy.aclose()
    assert episode.status == "success"
    reask = server.requests[1]["messages"]
    assert reask[-2] == {"role": "assistant", "content": "I think I should click the button."}
    assert "no <tool_call> block" in reask[-1]["content"]
    assert load_episode(episode.path).steps[0].usage.prompt_tokens == 200  # both requests counted


async def test_two_unusable_answers_end_as_model_error(env, tmp_path: Path) -> None:
    swipe = (  # valid, but not in a browser
        '<tool_call>\n{"name": "mobile_use", "arguments": {"action": "swipe", "coordinate": [1, 2], '
        '"coordinate2": [3, 4]}}\n</tool_call>'
    )
    with FaultServer(["ok:" + swipe]) as server:
        policy = ModelPolicy(_client(server.url))
        episode = await Agent(env, policy, recorder=Recorder(tmp_path)).run(Task(instruction="t", url=PAGE))
        await policy.aclose()
    assert episode.status == "model_error"
    assert "'swipe' is not available here" in episode.message
    assert len(server.requests) == 2


async def test_qwen3_vl_requests_carry_its_grammar_sampling_and_history(env, tmp_path: Path) -> None:
    with FaultServer(["ok:" + CLICK, "ok:" + TERMINATE]) as server:
        policy = ModelPolicy(_client(server.url), keep_images=1, drop_block=1)
        await Agent(env, policy, recorder=Recorder(tmp_path)).run(Task(instruction="t", url=PAGE))
        await policy.aclose()
    first, second = server.requests
    assert (
        first["ebnf"].startswith('root ::= "Action: " line "\\n<tool_call>\\n" call') and "response_format" not in first
    )
    # the Instruct checkpoints' model card sampling, presence_penalty included
    assert (first["temperature"], first["top_p"], first["top_k"]) == (0.7, 0.8, 20)
    assert (first["presence_penalty"], first["repetition_penalty"]) == (1.5, 1.0)
    assert first["max_completion_tokens"] == 512 and "max_tokens" not in first
    assert first["messages"][0]["content"].startswith("# Tools\n") and first["messages"][0]["role"] == "system"
    image, text = first["messages"][1]["content"]  # the screenshot first, then the instruction
    assert image["type"] == "image_url" and text["text"].startswith("Please generate the next move")
    # the model's own answer is in the next request verbatim, after the first screenshot
    assert second["messages"][2] == {"role": "assistant", "content": CLICK}
    assert [p["type"] for p in second["messages"][3]["content"]] == ["image_url", "text"]


async def test_the_json_profile_sends_its_schema(env, tmp_path: Path) -> None:
    answer = '{"thought": "done", "action": {"action": "terminate", "status": "success"}}'
    with FaultServer(["ok:" + answer]) as server:
        policy = ModelPolicy(_client(server.url), profile="json")
        episode = await Agent(env, policy, recorder=Recorder(tmp_path)).run(Task(instruction="t", url=PAGE))
        await policy.aclose()
    assert episode.status == "success"
    fmt = server.requests[0]["response_format"]
    assert fmt["type"] == "json_schema" and list(fmt["json_schema"]["schema"]["properties"]) == ["thought", "action"]
    assert "ebnf" not in server.requests[0] and "temperature" not in server.requests[0]  # the server's sampling
    assert load_episode(episode.path).steps[0].thought == "done"


def test_the_old_mode_option_names_its_profile() -> None:
    with pytest.raises(ValueError, match="mode='tool_call' is gone.*profile='qwen3-vl'"):
        ModelPolicy("http://127.0.0.1:1/v1", mode="tool_call")
    with pytest.raises(ValueError, match="unknown profile 'gpt'; the profiles are: qwen3-vl, json, ui-tars"):
        ModelPolicy("http://127.0.0.1:1/v1", profile="gpt")
    result = CliRunner().invoke(
        cli, ["run", "--task", "t", "--model-url", "http://127.0.0.1:1/v1", "--mode", "json_schema"]
    )
    assert result.exit_code == 2 and "use --profile json" in result.output


# --- the pool ---------------------------------------------------------------------------------------


async def test_episodes_stick_to_one_server_and_new_ones_go_to_the_least_loaded() -> None:
    with FaultServer(["ok:" + CLICK]) as a, FaultServer(["ok:" + CLICK]) as b:
        client = _client([a.url, b.url], model="m")
        msgs = [{"role": "user", "content": "hi"}]
        first = await client.complete(msgs, episode="e1")
        second = await client.complete(msgs, episode="e2")
        assert {first.server, second.server} == {a.url, b.url}
        for _ in range(3):
            assert (await client.complete(msgs, episode="e1")).server == first.server
        client.release("e1")
        # with e1 released, its server holds no episode: the next new one goes there
        assert (await client.complete(msgs, episode="e3")).server == first.server
        await client.aclose()
    assert len(a.requests) + len(b.requests) == 6


async def test_a_400_is_not_retried_and_names_the_server() -> None:
    with FaultServer(["400"]) as server:
        client = _client(server.url, model="m")
        with pytest.raises(ServingError, match="refused the request: HTTP 400 unknown field 'foo'") as e:
            await client.complete([{"role": "user", "content": "x"}])
        await client.aclose()
    assert server.url in str(e.value) and len(server.requests) == 1


def test_an_unreachable_model_url_is_one_clear_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    result = CliRunner().invoke(
        cli,
        [
            "run",
            "--task",
            "say hi",
            "--url",
            PAGE,
            "--out",
            str(tmp_path),
            "--model-url",
            f"http://127.0.0.1:{port}/v1",
        ],
    )
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert f"http://127.0.0.1:{port}/v1" in errors[0] and "pixelpilot serve" in errors[0]


def test_run_needs_a_task_file_or_a_task() -> None:
    result = CliRunner().invoke(cli, ["run"])
    assert result.exit_code == 2 and "--task" in result.output


# --- images and prompts -------------------------------------------------------------------------------


def test_qwen3_vl_image_sizes() -> None:
    assert smart_resize(1920, 1080) == (1504, 832) and image_tokens(1920, 1080) == 1222
    assert image_tokens(1920, 1080, max_tokens=16384) == 2040
    assert image_tokens(1280, 720) == 880 and image_tokens(1280, 800) == 1000
    for w, h in [(1, 1), (333, 777), (4000, 3000), (1080, 2400)]:
        rw, rh = smart_resize(w, h)
        assert rw % 32 == 0 and rh % 32 == 0 and 64 <= (rw // 32) * (rh // 32) <= 1280
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(10000, 10)


def test_prepare_image_resizes_to_the_model_size() -> None:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (1920, 1080), "white").save(buf, "PNG")
    img = prepare_image(buf.getvalue())
    assert (img.width, img.height) == (1504, 832) and img.tokens == 1222
    assert Image.open(io.BytesIO(img.png)).size == (1504, 832)
    assert img.data_url().startswith("data:image/png;base64,")


def _history(n: int) -> list[PastStep]:
    """n past steps, each with its screenshot and the model's answer."""
    return [
        PastStep(Turn(ImageRef(f"k{i}", 64, 64)), f"Action: step {i}\n<tool_call>\n{{}}\n</tool_call>")
        for i in range(n)
    ]


@pytest.mark.parametrize("profile", ["qwen3-vl", "json", "ui-tars"])
@pytest.mark.parametrize("keep,block", [(3, 5), (3, 1), (2, 3)])
def test_history_is_append_only_and_drops_screenshots_in_blocks(profile: str, keep: int, block: int) -> None:
    p = get_profile(profile)
    setup = p.setup("browser", keep_images=keep, drop_block=block)
    previous = None
    breaks = 0
    for n in range(0, 20):
        history = _history(n)
        msgs = p.messages(setup, "do it", history, Turn(ImageRef(f"k{n}", 64, 64)))
        shown = sum(len(m.images) for m in msgs)
        assert min(keep, n) + 1 <= shown <= keep + block, (n, shown)
        assert msgs[-1].images == [ImageRef(f"k{n}", 64, 64)]  # the current screen is always shown
        assert msgs[-1].parts[0] == ImageRef(f"k{n}", 64, 64) or profile == "json"  # image first
        if previous is not None:
            extended = previous + [type(msgs[0]).text("assistant", history[-1].answer)]
            if msgs[: len(extended)] != extended:
                breaks += 1
        previous = msgs
    # the prefix breaks once per block of dropped screenshots, never more
    assert breaks == max(0, (20 - 1 - keep) // block)
