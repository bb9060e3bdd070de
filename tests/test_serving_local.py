"""The local backend on a tiny random Qwen3-VL, served over real HTTP, driving real Chromium.

The tiny checkpoint is built once per session (seconds, no download); the server (conftest's
``server_url``) runs as a real subprocess on 127.0.0.1 with a bounded readiness wait and is always stopped.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("xgrammar", reason="the local backend needs the 'local' extra (xgrammar)")
pytest.importorskip("transformers", reason="the local backend needs the 'local' extra (transformers)")

from pixelpilot import Agent, Limits, Recorder, Task, action_schema, load_episode, parse_output  # noqa: E402
from pixelpilot.actions import ACTIONS_BY_ENV, ActionParseError  # noqa: E402
from pixelpilot.agent.model_policy import ModelPolicy  # noqa: E402
from pixelpilot.serving.client import ModelClient, Sampling  # noqa: E402
from pixelpilot.serving.images import prepare_image, smart_resize  # noqa: E402

#: Actions that keep an episode going and always execute cleanly on a page (no random key names,
#: waits or navigations to random URLs): the end-to-end run must last its full 5 steps.
SAFE_ACTIONS = ("click", "double_click", "move", "scroll", "type")


@pytest.fixture(scope="session")
def tokenizer(tiny_model: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


# --- the schema really compiles and constrains with xgrammar ------------------------------------


@pytest.fixture(scope="session")
def compiler(tokenizer):
    import xgrammar as xgr

    info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=151936)
    return xgr.GrammarCompiler(info)


def _accepts(compiler, schema: dict, text: str) -> bool:
    import xgrammar as xgr

    grammar = compiler.compile_json_schema(json.dumps(schema), any_whitespace=False, separators=(",", ":"))
    matcher = xgr.GrammarMatcher(grammar, terminate_without_stop_token=True)
    return matcher.accept_string(text) and matcher.is_terminated()


@pytest.mark.parametrize("kind", sorted(ACTIONS_BY_ENV))
def test_action_schema_compiles_and_admits_every_action_of_its_kind(compiler, kind: str) -> None:
    schema = action_schema(kind)
    samples = {
        "click": {"x": 10, "y": 1000},
        "double_click": {"x": 0, "y": 5},
        "triple_click": {"x": 1, "y": 2},
        "move": {"x": 3, "y": 4},
        "drag": {"x": 1, "y": 2, "x2": 3, "y2": 4},
        "scroll": {"dy": -300},
        "type": {"text": "héllo wörld, 日本"},
        "key": {"keys": ["ctrl", "a"]},
        "wait": {"seconds": 1.5},
        "navigate": {"url": "/todos"},
        "back": {},
        "long_press": {"x": 5, "y": 5},
        "swipe": {"x": 1, "y": 2, "x2": 3, "y2": 4},
        "system_button": {"button": "home"},
        "open_app": {"name": "Settings"},
        "answer": {"text": "42"},
        "terminate": {"status": "success"},
    }
    for name in ACTIONS_BY_ENV[kind]:
        text = json.dumps(
            {"thought": "ok", "action": {"action": name, **samples[name]}}, ensure_ascii=False, separators=(",", ":")
        )
        assert _accepts(compiler, schema, text), text
        parse_output(text)  # and what the grammar admits, the parser takes


def test_action_schema_rejects_what_the_parser_would_refuse(compiler) -> None:
    schema = action_schema("browser")
    for bad in [
        '{"thought":"","action":{"action":"click","x":5,"y":1001}}',  # off the grid
        '{"action":{"action":"click","x":5,"y":5},"thought":""}',  # thought must come first
        '{"thought":"","action":{"action":"swipe","x":1,"y":2,"x2":3,"y2":4}}',  # not a browser action
        '{"thought":"","action":{"action":"click","x":5,"y":5,"z":1}}',  # unknown field
        '{"thought": "","action":{"action":"back"}}',  # free whitespace
        '{"thought":"a\nb","action":{"action":"back"}}',  # raw control character
        '{"thought":"","action":{"action":"key","keys":[]}}',  # no key
        '{"thought":"","action":{"action":"wait","seconds":61}}',  # too long a wait
    ]:
        assert not _accepts(compiler, schema, bad), bad
    swipe = '{"thought":"","action":{"action":"swipe","x":4,"y":8,"x2":1,"y2":4,"seconds":7}}'
    assert not _accepts(compiler, action_schema("mobile"), swipe)  # a swipe lasts at most 5 s (found by the bench)


# --- requests to the served tiny model -----------------------------------------------------------


def _screen(seed: int, size: tuple[int, int] = (640, 400)) -> bytes:
    import io
    import random

    from PIL import Image, ImageDraw

    rnd = random.Random(seed)
    img = Image.new("RGB", size, tuple(rnd.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x, y = rnd.randrange(size[0] - 60), rnd.randrange(size[1] - 30)
        draw.rectangle([x, y, x + 60, y + 30], fill=tuple(rnd.randrange(256) for _ in range(3)))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


async def test_models_and_health(server_url: str) -> None:
    import httpx

    async with httpx.AsyncClient() as http:
        assert (await http.get(server_url.removesuffix("/v1") + "/health")).json() == {"status": "ok"}
        models = (await http.get(server_url + "/models")).json()
    assert [m["id"] for m in models["data"]] == ["tiny"]


async def test_constrained_answers_are_all_schema_valid(server_url: str) -> None:
    """A sample of requests (the bench sends hundreds): every answer is one valid action of its kind."""
    policy_fmt = ModelPolicy(server_url).response_format
    async with ModelClient(server_url) as client:
        for i in range(8):
            kind = sorted(ACTIONS_BY_ENV)[i % 3]
            image = prepare_image(_screen(i), max_tokens=128)
            messages = [
                {"role": "system", "content": f"Operate the {kind}."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": f"Task {i}: do something."},
                        {"type": "image_url", "image_url": {"url": image.data_url()}},
                    ],
                },
            ]
            answer = await client.complete(
                messages, response_format=policy_fmt(kind), max_tokens=200, sampling=Sampling(temperature=1.0, seed=i)
            )
            assert answer.finish_reason == "stop", answer.text
            obj = json.loads(answer.text)
            assert list(obj) == ["thought", "action"], answer.text
            parsed = parse_output(answer.text)
            assert parsed.action.action in ACTIONS_BY_ENV[kind], answer.text
            assert answer.usage.prompt_tokens > image.tokens and answer.usage.completion_tokens > 0


async def test_bad_requests_get_a_400_with_a_message(server_url: str) -> None:
    import httpx

    async with httpx.AsyncClient() as http:
        r = await http.post(
            server_url + "/chat/completions",
            json={
                "model": "tiny",
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "http://example.invalid/a.png"}}],
                    }
                ],
            },
        )
    assert r.status_code == 400 and "data URL" in r.json()["error"]["message"]


async def test_the_local_model_drives_chromium_for_five_steps(
    server_url: str, todo_app, browser_env, tmp_path: Path
) -> None:
    policy = ModelPolicy(
        server_url,
        actions=SAFE_ACTIONS,
        max_image_tokens=160,
        max_tokens=200,
        sampling=Sampling(temperature=1.0, seed=7),
    )
    env = browser_env(viewport=(640, 400))
    try:
        episode = await Agent(env, policy, recorder=Recorder(tmp_path), limits=Limits(max_steps=5)).run(
            Task(instruction="Sign in as alice with password wonderland.", url=todo_app.url)
        )
    finally:
        await policy.aclose()
    assert episode.status == "max_steps", episode.message
    saved = load_episode(episode.path)
    assert len(saved.steps) == 5
    for step in saved.steps:
        parsed = parse_output(step.raw_output)  # the raw answer parses into exactly the recorded action
        assert parsed.action.model_dump(mode="json") == step.action
        assert step.action["action"] in SAFE_ACTIONS
        assert step.outcome["ok"], step.outcome
        assert step.pixel_action is not None and step.pixel_action["action"] == step.action["action"]
        if "x" in step.action:  # grounded: grid → CSS pixels of the 640×400 viewport
            assert step.pixel_action["x"] == min(round(step.action["x"] * 640 / 1000), 639)
        assert step.model_image == smart_resize(640, 400, max_tokens=160) == (512, 320)
        assert step.usage is not None and step.usage.prompt_tokens > 0
        assert (Path(episode.path) / step.screenshot).is_file()
    # the conversation grows append-only: each request's prompt is longer than the last
    prompts = [s.usage.prompt_tokens for s in saved.steps]
    assert prompts == sorted(prompts)


def test_parse_error_names_the_problem() -> None:
    with pytest.raises(ActionParseError, match="no JSON object"):
        parse_output("garbage")
