"""How much of each request a prefix cache can reuse, image token counts, and answer sizes.

Records a 30-step episode in real Chromium (the example to-do app driven by a script: sign in,
then add to-dos), then rebuilds the request the model would get at every step, for pixelpilot's
history policy (keep the last K=3 screenshots, drop older ones in blocks) and for a naive
sliding window (exactly the last 3). Each request is tokenized as Qwen3-VL sees it — the chat
format with the real Qwen tokenizer, each image as its block of tokens keyed by the image's hash
(as SGLang's radix cache keys them) — and its prefix share is the length of the longest common
prefix with the previous request plus its answer, over its own length.

    python bench/prefix_reuse.py            # needs the 'local' extra (for the tokenizer)
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

from pixelpilot.agent.prompt import DROP_BLOCK, PromptBuilder  # noqa: E402
from todo_app import TodoApp  # noqa: E402

from pixelpilot import Agent, Limits, Observation, Recorder, ScriptPolicy, Task, load_episode  # noqa: E402
from pixelpilot.envs.browser import BrowserEnv  # noqa: E402
from pixelpilot.serving.images import image_tokens, prepare_image  # noqa: E402
from pixelpilot.serving.tiny import build_tokenizer  # noqa: E402

STEPS = 30
K = 3

SCRIPT = [
    {"type": {"text": "alice", "into": "Username"}},
    {"type": {"text": "wonderland", "into": "Password"}},
    {"click": "Sign in"},
    {"expect": {"text": "Welcome, alice"}},
] + [
    step
    for i in range(20)
    for step in (
        {"type": {"text": f"To-do number {i}", "into": "New to-do"}},
        {"click": "Add"},
    )
]


async def record(out: Path) -> Path:
    with TodoApp() as app:
        env = BrowserEnv()
        try:
            task = Task(instruction="Sign in as alice and add to-dos.", url=app.url, steps=SCRIPT)
            episode = await Agent(env, ScriptPolicy(), recorder=Recorder(out), limits=Limits(max_steps=STEPS)).run(task)
        finally:
            await env.aclose()
    return Path(episode.path)


class Tokens:
    """Messages -> Qwen3-VL's token sequence (images as hash-keyed blocks)."""

    def __init__(self) -> None:
        self.tok = build_tokenizer()
        self.cache: dict[str, list] = {}

    def text(self, s: str) -> list:
        if s not in self.cache:
            self.cache[s] = self.tok.encode(s, add_special_tokens=False)
        return self.cache[s]

    def messages(self, msgs: list[dict], generation_prompt: bool) -> list:
        out: list = []
        for m in msgs:
            out += self.text(f"<|im_start|>{m['role']}\n")
            content = m["content"]
            parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
            for part in parts:
                if part["type"] == "text":
                    out += self.text(part["text"])
                else:
                    url = part["image_url"]["url"]
                    key = hashlib.sha256(url.encode()).hexdigest()[:16]
                    n = self.image_sizes[url]
                    out += self.text("<|vision_start|>") + [("img", key)] * n + self.text("<|vision_end|>")
            out += self.text("<|im_end|>\n")
        if generation_prompt:
            out += self.text("<|im_start|>assistant\n")
        return out

    image_sizes: dict[str, int] = {}


def common_prefix(a: list, b: list) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def prefix_shares(path: Path, builder_kw: dict, tokens: Tokens) -> list[float]:
    episode = load_episode(path)
    steps = episode.steps
    images = {}
    observations = []
    for step in steps:
        png = (path / step.screenshot).read_bytes()
        obs = Observation(
            png=png,
            **{k: step.observation[k] for k in ("width", "height", "input_width", "input_height", "url", "title")},
        )
        img = prepare_image(png)
        images[step.screenshot.rsplit("/", 1)[-1].removesuffix(".png")] = img
        tokens.image_sizes[img.data_url()] = img.tokens
        observations.append((obs, img))
    builder = PromptBuilder(kind="browser", images=images, **builder_kw)
    shares, previous = [], None
    for i, current in enumerate(observations):
        msgs = builder.messages(episode.task, steps[:i], current)
        seq = tokens.messages(msgs, generation_prompt=True)
        if previous is not None:
            answer = {"role": "assistant", "content": builder._answer_text(steps[i - 1])}
            before = tokens.messages(previous + [answer], generation_prompt=False)
            shares.append(common_prefix(seq, before) / len(seq))
        previous = msgs
    return shares


def answer_tokens(path: Path, tokens: Tokens) -> tuple[float, float]:
    """Median tokens of a click answer in json_schema mode: with the recorded (empty) thought, and
    with a one-line thought naming the target, as a model would write it."""
    bare, with_thought = [], []
    for step in load_episode(path).steps:
        if step.action["action"] != "click":
            continue
        action = {k: v for k, v in step.action.items() if k != "button" or v != "left"}  # defaults are optional
        bare.append(len(tokens.text(json.dumps({"thought": "", "action": action}, separators=(",", ":")))))
        target = step.extra.get("target", {}).get("text", "it")
        thought = f"Click {target}."
        with_thought.append(len(tokens.text(json.dumps({"thought": thought, "action": action}, separators=(",", ":")))))
    return statistics.median(bare), statistics.median(with_thought)


def main() -> None:
    tokens = Tokens()
    with tempfile.TemporaryDirectory() as tmp:
        path = asyncio.run(record(Path(tmp)))
        n = len(load_episode(path).steps)
        ours = prefix_shares(path, {"keep_images": K}, tokens)
        naive = prefix_shares(path, {"keep_images": K, "drop_block": 1}, tokens)
        blocks = {
            b: statistics.mean(prefix_shares(path, {"keep_images": K, "drop_block": b}, tokens)) for b in (3, 5, 8, 12)
        }
        bare, thought = answer_tokens(path, tokens)
    print(f"recorded episode: {n} steps, 1280x800 screenshots ({image_tokens(1280, 800)} image tokens each)")
    print(
        f"mean prefix share, K={K}: pixelpilot history (drop in blocks of {DROP_BLOCK}) {statistics.mean(ours):.3f}; "
        f"naive sliding window {statistics.mean(naive):.3f}; ratio {statistics.mean(ours) / statistics.mean(naive):.2f}x"
        f"  (target >= 0.8)"
    )
    print("  other block sizes: " + ", ".join(f"{b}: {v:.3f}" for b, v in blocks.items()))
    print(
        f"image tokens for 1920x1080 under the default budget: {image_tokens(1920, 1080)}  (target <= 1300; "
        f"{image_tokens(1920, 1080, max_tokens=16384)} at the processor's default)"
    )
    print(
        f"median output tokens per click (json_schema): {bare:.0f} with an empty thought, "
        f"{thought:.0f} with a one-line thought  (target <= 24)"
    )


if __name__ == "__main__":
    main()
