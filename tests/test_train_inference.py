"""Train = inference: each exported sample is, token for token, the request the model was sent.

Two episodes are recorded in real Chromium: one driven by the tiny Qwen3-VL over the local backend
(every request caught on its way out), and one scripted (each step's request is made by feeding
the recorded steps, one by one, to a ModelPolicy whose server only answers "done"). Then every step
is exported in the three chat formats and each sample is turned back into chat messages the way its
consumer reads it:

- ``qwen``: Qwen's loader, QwenLM/Qwen3-VL ``qwen-vl-finetune/qwenvl/data/data_processor.py``
  ``_build_messages`` (user text split on ``<image>``, each segment stripped; any other ``from`` an
  assistant turn), with the two-line ``system`` addition docs/models.md gives;
- ``llamafactory``: LLaMA-Factory's sharegpt rules (hiyouga/LLaMA-Factory ``src/llamafactory/data/
  converter.py`` SharegptDatasetConverter; the ``qwen3_vl_nothink`` template of ``template.py``:
  ChatML turns, ``<image>`` replaced by the vision block by the Qwen3-VL plugin of ``mm_plugin.py``);
- ``hf``: TRL's vision layout (``{"type": "image"}`` parts filled from ``images`` in order, as
  ``trl.data_utils.prepare_multimodal_messages`` does).

Requests and samples are rendered with the tiny model's chat template (Qwen3-VL's, see
``pixelpilot.serving.tiny``) and its image processor: the prompts must be the same tokens with the
same pixels, and each target an answer the run-time grammar admits and decodes to the recorded action.
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import httpx
import pytest

pytest.importorskip("xgrammar", reason="the local backend needs the 'local' extra (xgrammar)")
pytest.importorskip("datasets", reason="the hf export needs the 'export' extra (datasets)")

from PIL import Image  # noqa: E402

from pixelpilot import Agent, Limits, Recorder, ScriptPolicy, Task, load_episode  # noqa: E402
from pixelpilot.actions import Observation  # noqa: E402
from pixelpilot.agent.loops import LoopDetector  # noqa: E402
from pixelpilot.agent.model_policy import ModelPolicy  # noqa: E402
from pixelpilot.agent.policy import StepContext  # noqa: E402
from pixelpilot.profiles import DecodeContext, Setup, get_profile  # noqa: E402
from pixelpilot.serving.client import ModelClient, Sampling  # noqa: E402
from pixelpilot.serving.local import compile_constraint  # noqa: E402
from pixelpilot.trajectories.export import export_episodes  # noqa: E402
from pixelpilot.trajectories.samples import pointer_before  # noqa: E402

SAFE_ACTIONS = ("click", "double_click", "move", "scroll", "type")
IMAGE_PAD = "<|image_pad|>"
VISION = "<|vision_start|><|image_pad|><|vision_end|>"


class Recording(httpx.AsyncBaseTransport):
    """Passes requests on (or answers them itself) and keeps every chat request's body."""

    def __init__(self, answer: str | None = None) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.answer = answer
        self.bodies: list[dict] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/chat/completions"):
            self.bodies.append(json.loads(request.content))
            if self.answer is not None:
                message = {"role": "assistant", "content": self.answer}
                return httpx.Response(200, json={"model": "m", "choices": [{"message": message}], "usage": {}})
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


DONE = 'Action: Done.\n<tool_call>\n{"name": "computer_use", "arguments": {"action": "terminate", "status": "success"}}\n</tool_call>'


@pytest.fixture(scope="module")
async def episodes(server_url, shared_browser, todo_app, tmp_path_factory):
    from pixelpilot.envs.browser import BrowserEnv

    root = tmp_path_factory.mktemp("train-inference")
    envs = [BrowserEnv(browser=shared_browser, viewport=(640, 400), settle_timeout=10) for _ in range(2)]
    # A model-driven episode: the tiny model over the local backend; a short history window with
    # blocks of two, so screenshots leave the history within the episode.
    model_transport = Recording()
    client = ModelClient(server_url, transport=model_transport)
    policy = ModelPolicy(
        client,
        actions=SAFE_ACTIONS,
        keep_images=2,
        drop_block=2,
        max_image_tokens=160,
        max_tokens=160,
        sampling=Sampling(temperature=1.0, seed=11),
    )
    agent = Agent(
        envs[0],
        policy,
        recorder=Recorder(root / "model"),
        limits=Limits(max_steps=6),
        loops=LoopDetector(repeats=99),
    )
    model = load_episode((await agent.run(Task(instruction="Sign in as alice.", url=todo_app.url))).path)
    await client.aclose()
    assert len(model.steps) == 6 and len(model_transport.bodies) == 6

    # A scripted episode, and the requests a ModelPolicy with the same setup would have been sent.
    script = [
        {"type": {"text": "alice", "into": "Username"}},
        {"type": {"text": "wonder land", "into": "Password"}},
        {"scroll": {"dy": 250}},
        {"click": "Sign in"},
    ]
    scripted = await Agent(envs[1], ScriptPolicy(), recorder=Recorder(root / "script")).run(
        Task(instruction="Sign in as alice.", url=todo_app.url, steps=script)
    )
    for env in envs:
        await env.aclose()
    scripted = load_episode(scripted.path)
    assert scripted.status == "success" and len(scripted.steps) >= 6
    script_transport = Recording(answer=DONE)
    client = ModelClient("http://model.invalid/v1", model="m", transport=script_transport)
    shadow = ModelPolicy(client, keep_images=2)  # the setup the export gives scripted steps (history_images=2)
    env = type("Env", (), {"kind": "browser"})()
    for step in scripted.steps:
        png = (Path(scripted.path) / step.screenshot).read_bytes()
        meta = {k: step.observation[k] for k in ("width", "height", "input_width", "input_height", "url", "title")}
        obs = Observation(png=png, **meta)
        history = scripted.steps[: step.index]
        ctx = StepContext(
            scripted.task, obs, history, env, step.index, pointer=pointer_before(history), notes=list(step.notes)
        )
        await shadow.decide(ctx)
    await client.aclose()
    return {"model": (model, model_transport.bodies), "script": (scripted, script_transport.bodies)}


@pytest.fixture(scope="module")
def render(tiny_model: Path):
    """Chat messages and their images -> the token ids and pixels the tiny Qwen3-VL would see."""
    import numpy as np
    from transformers import AutoTokenizer
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    processor = Qwen2VLImageProcessorPil.from_pretrained(tiny_model)

    def expand(text: str, images: list[Image.Image]) -> tuple[list[int], list]:
        grids = processor(images=images)["image_grid_thw"] if images else []
        counts = [int(np.prod(g)) // processor.merge_size**2 for g in grids]
        pieces = text.split(IMAGE_PAD)
        assert len(pieces) == len(counts) + 1, "one image pad per image"
        text = pieces[0] + "".join(IMAGE_PAD * n + p for n, p in zip(counts, pieces[1:], strict=True))
        return tokenizer(text, add_special_tokens=False)["input_ids"], [np.asarray(im.convert("RGB")) for im in images]

    def chat(messages: list[dict], images: list[Image.Image]) -> tuple[list[int], list]:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return expand(text, images)

    chat.expand = expand  # type: ignore[attr-defined]
    return chat


def _data_url_image(url: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


def _request_prompt(render, body: dict):
    images = [
        _data_url_image(p["image_url"]["url"])
        for m in body["messages"]
        if isinstance(m["content"], list)
        for p in m["content"]
        if p["type"] == "image_url"
    ]
    return render(body["messages"], images)


def _qwen_prompt(render, row: dict, base: Path):
    """Qwen's loader (``_build_messages``), plus the documented system line; the last turn is the target."""
    pool = list(row["image"])
    messages, images = [], []
    if "system" in row:
        messages.append({"role": "system", "content": [{"type": "text", "text": row["system"]}]})
    for turn in row["conversations"]:
        if turn["from"] == "human":
            content = []
            for seg in re.split(r"(<image>|<video>)", turn["value"]):
                if seg == "<image>":
                    images.append(Image.open(base / pool.pop(0)))
                    content.append({"type": "image"})
                elif seg.strip():
                    content.append({"type": "text", "text": seg.strip()})
            messages.append({"role": "user", "content": content})
        else:
            messages.append({"role": "assistant", "content": [{"type": "text", "text": turn["value"]}]})
    assert not pool and messages[-1]["role"] == "assistant"
    return render(messages[:-1], images), messages[-1]["content"][0]["text"]


def _llamafactory_prompt(render, row: dict, base: Path):
    """LLaMA-Factory's sharegpt converter and qwen3_vl_nothink template, up to the last assistant turn."""
    turns = row["conversations"]
    assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2)
    text = f"<|im_start|>system\n{row['system']}<|im_end|>\n" if row.get("system") else ""
    for i in range(0, len(turns), 2):
        text += f"<|im_start|>user\n{turns[i]['value'].replace('<image>', VISION)}<|im_end|>\n<|im_start|>assistant\n"
        if i + 2 < len(turns):
            text += f"{turns[i + 1]['value']}<|im_end|>\n"
    images = [Image.open(base / p) for p in row["images"]]
    return render.expand(text, images), turns[-1]["value"]


def _hf_prompt(render, row: dict):
    """TRL's layout: the images column fills the {"type": "image"} parts in order."""
    messages = [
        {
            "role": m["role"],
            "content": [p if p["type"] == "image" else {"type": "text", "text": p["text"]} for p in m["content"]],
        }
        for m in row["messages"]
    ]
    return render(messages[:-1], list(row["images"])), messages[-1]["content"][0]["text"]


def _same(a, b) -> bool:
    (ids_a, px_a), (ids_b, px_b) = a, b
    return ids_a == ids_b and len(px_a) == len(px_b) and all((x == y).all() for x, y in zip(px_a, px_b, strict=True))


@pytest.mark.parametrize("which", ["model", "script"])
async def test_every_exported_sample_is_the_request_the_model_was_sent(episodes, render, tiny_model, which, tmp_path):
    import datasets
    import xgrammar as xgr
    from transformers import AutoTokenizer

    episode, bodies = episodes[which]
    assert len(bodies) == len(episode.steps)
    rows = {}
    for fmt in ("qwen", "llamafactory", "hf"):
        report = export_episodes([episode], tmp_path / fmt, format=fmt, statuses=None, history_images=2)
        assert report.left_out == {} and report.samples == len(episode.steps)
        if fmt == "hf":
            rows[fmt] = list(datasets.load_dataset(str(tmp_path / fmt), split="train"))
        else:
            rows[fmt] = [json.loads(line) for line in (tmp_path / fmt / "data.jsonl").read_text().splitlines()]
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    compiler = xgr.GrammarCompiler(xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=151936))
    for step, body in zip(episode.steps, bodies, strict=True):
        request = _request_prompt(render, body)
        samples = {
            "qwen": _qwen_prompt(render, rows["qwen"][step.index], tmp_path / "qwen"),
            "llamafactory": _llamafactory_prompt(render, rows["llamafactory"][step.index], tmp_path / "llamafactory"),
            "hf": _hf_prompt(render, rows["hf"][step.index]),
        }
        grammar = compile_constraint(compiler, {"ebnf": body["ebnf"]})
        setup = (
            Setup.from_json(step.extra["prompt"]["setup"])
            if which == "model"
            else get_profile("qwen3-vl").setup("browser", keep_images=2)
        )
        ctx = DecodeContext(setup, pointer_before(episode.steps[: step.index]))
        for fmt, (prompt, target) in samples.items():
            assert _same(prompt, request), (which, step.index, fmt)
            matcher = xgr.GrammarMatcher(grammar)
            assert matcher.accept_string(target) and matcher.is_completed(), (which, step.index, fmt, target)
            decoded = get_profile("qwen3-vl").decode(target, ctx).action.model_dump(mode="json")
            assert decoded == step.action, (which, step.index, fmt)
            if which == "model":
                assert target == step.raw_output  # the model's own text, never re-serialized
    if which == "model":  # screenshots left the history within the episode (keep 2, blocks of 2)
        assert len(_request_prompt(render, bodies[-1])[1]) < len(episode.steps)
