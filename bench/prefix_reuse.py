"""How much of each request a prefix cache can reuse, per model profile and history policy.

Records a 30-step episode in real Chromium (the example to-do app driven by a script: sign in,
then add to-dos), then rebuilds the request a model would get at every step with the profiles'
own prompt builder (the one ``ModelPolicy`` and the exports use). Each request is tokenized whole
through the real chat template (the tiny Qwen3-VL's, which renders as Qwen3-VL's does) with the real
Qwen vocabulary; each image is its block of tokens as Qwen3-VL's image processor counts them, keyed
by the image (as SGLang's radix cache keys images). A request's prefix share is the length of its
longest common prefix with the previous request plus that request's answer, over its own length.

The baseline is the official Qwen3-VL agent's history (OSWorld ``mm_agents/qwen3vl_agent.py``: the
last 4 screenshot turns, a sliding window), which is the qwen3-vl profile with ``drop_block=1``.

    PYTHONPATH=. python bench/prefix_reuse.py      # needs the 'local' extra (tokenizer, image processor)
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

from todo_app import TodoApp  # noqa: E402

from pixelpilot import Agent, Limits, Recorder, ScriptPolicy, Task, load_episode  # noqa: E402
from pixelpilot.envs.browser import BrowserEnv  # noqa: E402
from pixelpilot.profiles import get_profile, to_openai  # noqa: E402
from pixelpilot.serving.images import image_tokens  # noqa: E402
from pixelpilot.serving.tiny import IMAGE_PROCESSOR, build_tokenizer  # noqa: E402
from pixelpilot.trajectories import Episode  # noqa: E402
from pixelpilot.trajectories.samples import step_prompt, target_text  # noqa: E402

STEPS = 30
IMAGE_PAD = "<|image_pad|>"

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
    """Chat messages -> the token sequence Qwen3-VL sees, images as blocks keyed by the image."""

    def __init__(self) -> None:
        from PIL import Image
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

        self.tok = build_tokenizer()
        settings = {k: v for k, v in IMAGE_PROCESSOR.items() if k != "image_processor_type"}
        self.processor = Qwen2VLImageProcessorPil(**settings)
        self.blank = Image.new
        self.counts: dict[tuple[int, int], int] = {}

    def image(self, size: tuple[int, int]) -> int:
        """Tokens of an image of this size, as the processor counts them."""
        if size not in self.counts:
            grid = self.processor(images=[self.blank("RGB", size)])["image_grid_thw"][0]
            self.counts[size] = int(grid.prod()) // self.processor.merge_size**2
        return self.counts[size]

    def sequence(self, messages: list[dict[str, Any]], images: list[Any], generation_prompt: bool) -> list[Any]:
        text = self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
        pieces = text.split(IMAGE_PAD)
        assert len(pieces) == len(images) + 1
        out: list[Any] = self.tok.encode(pieces[0], add_special_tokens=False)
        for image, piece in zip(images, pieces[1:], strict=True):
            out += [("image", image.key, i) for i in range(self.image((image.width, image.height)))]
            out += self.tok.encode(piece, add_special_tokens=False)
        return out


def common_prefix(a: list[Any], b: list[Any]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def prefix_shares(episode: Episode, profile: str, tokens: Tokens, **history: int) -> tuple[list[float], int]:
    """Each step's prefix share, and the most tokens a request had."""
    p = get_profile(profile)
    default = p.setup("browser", **history)
    shares, longest, previous = [], 0, None
    for step in episode.steps:
        prompt = step_prompt(episode, step, default)
        msgs = to_openai(prompt.messages, lambda ref: f"image:{ref.key}")
        seq = tokens.sequence(msgs, prompt.images, True)
        longest = max(longest, len(seq))
        if previous is not None:
            before_msgs, before_images, answer = previous
            full = tokens.sequence(before_msgs + [{"role": "assistant", "content": answer}], before_images, False)
            shares.append(common_prefix(seq, full) / len(seq))
        previous = (msgs, prompt.images, target_text(step, prompt.profile, prompt.ctx))
    return shares, longest


def main() -> None:
    tokens = Tokens()
    with tempfile.TemporaryDirectory() as tmp:
        episode = load_episode(asyncio.run(record(Path(tmp))))
        n = len(episode.steps)
        runs = {
            "qwen3-vl (keep 4, blocks of 8; the default)": prefix_shares(episode, "qwen3-vl", tokens),
            "official agent (keep 4, sliding window)": prefix_shares(
                episode, "qwen3-vl", tokens, keep_images=4, drop_block=1
            ),
            "json (keep 3, blocks of 10; the default)": prefix_shares(episode, "json", tokens),
            "json (keep 3, sliding window)": prefix_shares(episode, "json", tokens, keep_images=3, drop_block=1),
        }
        blocks = {b: prefix_shares(episode, "qwen3-vl", tokens, drop_block=b) for b in (2, 4, 6, 12)}
    print(f"recorded episode: {n} steps, 1280x800 screenshots ({image_tokens(1280, 800)} image tokens each)")
    for name, (shares, longest) in runs.items():
        print(f"  {name:<46} mean prefix share {statistics.mean(shares):.3f}  (longest request {longest} tokens)")
    base = statistics.mean(runs["official agent (keep 4, sliding window)"][0])
    ours = statistics.mean(runs["qwen3-vl (keep 4, blocks of 8; the default)"][0])
    print(f"qwen3-vl against the official agent's history: {ours / base:.2f}x  (target: >= 0.8 mean share)")
    print(
        "qwen3-vl, keep 4, other block sizes: "
        + ", ".join(f"{b}: {statistics.mean(s):.3f} ({m} tokens)" for b, (s, m) in blocks.items())
    )
    print(
        f"image tokens for 1920x1080 under the default budget: {image_tokens(1920, 1080)}  (target <= 1300; "
        f"{image_tokens(1920, 1080, max_tokens=16384)} at the processor's default)"
    )


if __name__ == "__main__":
    main()
