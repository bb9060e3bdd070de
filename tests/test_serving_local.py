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
from pixelpilot.actions import ACTIONS_BY_ENV  # noqa: E402
from pixelpilot.agent.loops import LoopDetector  # noqa: E402
from pixelpilot.agent.model_policy import ModelPolicy  # noqa: E402
from pixelpilot.profiles import ActionParseError, DecodeContext, get_profile  # noqa: E402
from pixelpilot.serving.client import ModelClient, Sampling  # noqa: E402
from pixelpilot.serving.images import prepare_image, smart_resize  # noqa: E402
from pixelpilot.serving.local import RequestError, compile_constraint  # noqa: E402

#: Actions that keep an episode going and always execute cleanly on a page (no random key names,
#: waits or navigations to random URLs): the end-to-end run must last its full 5 steps.
SAFE_ACTIONS = ("click", "double_click", "move", "scroll", "type")


@pytest.fixture(scope="session")
def tokenizer(tiny_model: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


# --- constraints compile as SGLang compiles them, and constrain --------------------------------


@pytest.fixture(scope="session")
def compiler(tokenizer):
    import xgrammar as xgr

    info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=151936)
    return xgr.GrammarCompiler(info)


def _accepts(compiler, body: dict, text: str) -> bool:
    import xgrammar as xgr

    matcher = xgr.GrammarMatcher(compile_constraint(compiler, body), terminate_without_stop_token=True)
    return matcher.accept_string(text) and matcher.is_terminated()


def _schema_body(schema: dict) -> dict:
    return {"response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}}


@pytest.mark.parametrize("kind", sorted(ACTIONS_BY_ENV))
def test_action_schema_compiles_and_admits_every_action_of_its_kind(compiler, kind: str) -> None:
    body = _schema_body(action_schema(kind))
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
        # SGLang compiles a schema without `separators`: xgrammar then writes ", " and ": ", as json.dumps does
        text = json.dumps({"thought": "ok", "action": {"action": name, **samples[name]}}, ensure_ascii=False)
        assert _accepts(compiler, body, text), text
        assert not _accepts(compiler, body, json.dumps(json.loads(text), separators=(",", ":"))), "compact JSON"
        parse_output(text)  # and what the grammar admits, the parser takes


def test_action_schema_rejects_what_the_parser_would_refuse(compiler) -> None:
    body = _schema_body(action_schema("browser"))
    for bad in [
        '{"thought": "", "action": {"action": "click", "x": 5, "y": 1001}}',  # off the grid
        '{"action": {"action": "click", "x": 5, "y": 5}, "thought": ""}',  # thought must come first
        '{"thought": "", "action": {"action": "swipe", "x": 1, "y": 2, "x2": 3, "y2": 4}}',  # not a browser action
        '{"thought": "", "action": {"action": "click", "x": 5, "y": 5, "z": 1}}',  # unknown field
        '{"thought":  "", "action": {"action": "back"}}',  # free whitespace
        '{"thought": "a\nb", "action": {"action": "back"}}',  # raw control character
        '{"thought": "", "action": {"action": "key", "keys": []}}',  # no key
        '{"thought": "", "action": {"action": "wait", "seconds": 61}}',  # too long a wait
    ]:
        assert not _accepts(compiler, body, bad), bad
    swipe = '{"thought": "", "action": {"action": "swipe", "x": 4, "y": 8, "x2": 1, "y2": 4, "seconds": 7}}'
    assert not _accepts(compiler, _schema_body(action_schema("mobile")), swipe)  # a swipe lasts at most 5 s


def test_a_request_takes_one_constraint(compiler) -> None:
    ebnf = get_profile("qwen3-vl").constraint(get_profile("qwen3-vl").setup("browser"))
    with pytest.raises(RequestError, match="only one constraint per request; got ebnf, response_format"):
        compile_constraint(compiler, {**ebnf, **_schema_body({"type": "object"})})
    with pytest.raises(RequestError, match="does not compile"):
        compile_constraint(compiler, {"ebnf": "root ::= nothing_defined"})
    assert compile_constraint(compiler, {"response_format": {"type": "text"}}) is None


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


@pytest.mark.parametrize("profile", ["qwen3-vl", "json", "ui-tars"])
async def test_constrained_answers_decode_in_every_profile(server_url: str, profile: str) -> None:
    """A sample of requests (the bench sends a thousand): every answer is one valid action of its
    kind, written exactly in the profile's format (for qwen3-vl: Action line, one <tool_call>)."""
    p = get_profile(profile)
    async with ModelClient(server_url) as client:
        for i in range(6):
            kind = sorted(ACTIONS_BY_ENV)[i % 3]
            setup = p.setup(kind)
            image = prepare_image(_screen(i), max_tokens=128, factor=p.image_factor)
            messages = [
                {"role": "system", "content": f"Operate the {kind}."},
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": image.data_url()}},
                        {"type": "text", "text": f"Task {i}: do something."},
                    ],
                },
            ]
            answer = await client.complete(
                messages,
                max_tokens=200,
                sampling=Sampling(temperature=1.0, seed=i, presence_penalty=1.5, repetition_penalty=1.05),
                extra=p.constraint(setup, (image.width, image.height)),
            )
            assert answer.finish_reason == "stop", answer.text
            ctx = DecodeContext(setup, (500, 500), (image.width, image.height))
            parsed = p.decode(answer.text, ctx)
            assert parsed.action.action in setup.allowed, answer.text
            assert p.in_format(answer.text, ctx), answer.text
            assert answer.usage.prompt_tokens > 50 and answer.usage.completion_tokens > 0


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
        # A random model repeats itself; the loop detector (tested on its own) must not end the run early.
        agent = Agent(
            env, policy, recorder=Recorder(tmp_path), limits=Limits(max_steps=5), loops=LoopDetector(repeats=99)
        )
        episode = await agent.run(Task(instruction="Sign in as alice with password wonderland.", url=todo_app.url))
    finally:
        await policy.aclose()
    assert episode.status == "max_steps", episode.message
    saved = load_episode(episode.path)
    assert len(saved.steps) == 5
    pointer = None
    for step in saved.steps:
        # the raw answer is in Qwen3-VL's format and decodes into exactly the recorded action
        assert step.raw_output.startswith("Action: ") and step.raw_output.count("<tool_call>") == 1
        parsed = parse_output(step.raw_output, pointer=pointer)
        assert parsed.action.model_dump(mode="json") == step.action
        assert step.action["action"] in SAFE_ACTIONS
        assert step.outcome["ok"], step.outcome
        assert step.pixel_action is not None and step.pixel_action["action"] == step.action["action"]
        if "x" in step.action:  # grounded: grid → CSS pixels of the 640×400 viewport
            assert step.pixel_action["x"] == min(round(step.action["x"] * 640 / 1000), 639)
            pointer = (step.action["x"], step.action["y"])
        assert step.model_image == smart_resize(640, 400, max_tokens=160) == (512, 320)
        assert step.usage is not None and step.usage.prompt_tokens > 0
        assert step.extra["prompt"]["setup"]["profile"] == "qwen3-vl"
        assert (Path(episode.path) / step.screenshot).is_file()
    # the conversation grows append-only: each request's prompt is longer than the last
    prompts = [s.usage.prompt_tokens for s in saved.steps]
    assert prompts == sorted(prompts)


def test_parse_error_names_the_problem() -> None:
    with pytest.raises(ActionParseError, match="no JSON object"):
        parse_output("garbage")


# --- Thinking checkpoints and the sampling penalties, in process ------------------------------


@pytest.fixture(scope="module")
def thinking_model(tmp_path_factory):
    from pixelpilot.serving.local import LocalModel
    from pixelpilot.serving.tiny import build_tiny_model

    path = build_tiny_model(tmp_path_factory.mktemp("tiny-thinking"), thinking=True)
    return LocalModel(path, device="cpu", threads=1)


def test_a_thinking_checkpoint_reasons_freely_then_answers_under_the_grammar(thinking_model) -> None:
    p = get_profile("qwen3-vl")
    setup = p.setup("browser", thinking=True)
    image = prepare_image(_screen(3), max_tokens=64)
    messages = [
        {"role": "system", "content": p.system_prompt(setup)},
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": image.data_url()}}, {"type": "text", "text": "Go."}],
        },
    ]
    assert thinking_model.encode(messages)["thinking"]  # the template's generation prompt opens <think>
    gen = thinking_model.generate(messages, constraint=p.constraint(setup), max_tokens=120, temperature=1.0, seed=1)
    assert gen.finish_reason == "stop" and gen.reasoning is not None
    assert gen.text.startswith("\n\nAction: "), gen.text  # the grammar starts right after </think>
    ctx = DecodeContext(setup, (500, 500))
    assert p.in_format(f"<think>{gen.reasoning}</think>{gen.text}", ctx)


def test_presence_and_repetition_penalties_act_on_generated_tokens_only() -> None:
    import torch

    from pixelpilot.serving.local import Decoding

    decoding = Decoding(None, n_prompt=2, vocab=6, presence_penalty=1.5, repetition_penalty=2.0)
    ids = torch.tensor([[4, 5, 1, 2]])  # a prompt of two tokens (4, 5), then 1 and 2 generated
    scores = decoding(ids, torch.tensor([[1.0, 4.0, -4.0, 3.0, 2.0, 2.0]]))
    assert scores.tolist() == [[1.0, 2.0 - 1.5, -8.0 - 1.5, 3.0, 2.0, 2.0]]
