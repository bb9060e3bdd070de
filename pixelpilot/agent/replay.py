"""Replay: re-execute a recorded episode's actions without a model.

Before each step the live screen is compared with the screen recorded at that step, by the
normalized Hamming distance between perceptual hashes (``imagehash.phash``, 16×16 = 256 bits of
the image's low DCT frequencies). 0 means the same picture; on the example app typing a word into a field moves
it 0.03–0.06, and a banner that pushes the page down 0.48.
Above ``threshold`` the step has diverged: the replay stops with status ``failure`` and a message
naming the step, or, given ``heal``, hands that step to another policy and goes on with the next
recorded step. Every step records its match in ``Step.extra["replay"]``.
"""

from __future__ import annotations

import asyncio
import io
import os
import time
from pathlib import Path
from typing import Any

from ..actions import Task, Terminate, action_from_dict
from ..envs import Env, TextQueries
from ..trajectories import Episode, Recorder, load_episode
from .policy import Decision, Policy, StepContext
from .runner import Agent, Limits

DEFAULT_THRESHOLD = 0.1
HASH_SIZE = 16


def screen_hash(png: bytes | Path) -> Any:
    """The perceptual hash of a screenshot (PNG bytes or a file)."""
    try:
        import imagehash
    except ImportError as e:  # pragma: no cover - depends on the install
        raise RuntimeError("replay compares screens with imagehash: pip install 'pixelpilot[replay]'") from e
    from PIL import Image

    with Image.open(io.BytesIO(png) if isinstance(png, bytes) else png) as img:
        return imagehash.phash(img, hash_size=HASH_SIZE)


def screen_distance(a: Any, b: Any) -> float:
    """Normalized Hamming distance between two screen hashes: 0.0 identical … 1.0 every bit differs."""
    return float(a - b) / a.hash.size


class ReplayPolicy(Policy):
    """Plays a recorded episode's actions back, checking the screen before each one.

    ``heal`` is any Policy (a model policy, :class:`TargetHealer`, a ScriptPolicy) that decides the
    steps whose screen diverged; it sees the live context as it is. (A ScriptPolicy loads its script
    at step 0, so as a healer it fits pages that differ from the first step on.) ``patience`` is how long a diverged screen is
    re-observed before it counts as diverged (pages that are still loading catch up).
    """

    def __init__(
        self,
        episode: Episode | str | os.PathLike[str],
        *,
        threshold: float = DEFAULT_THRESHOLD,
        heal: Policy | None = None,
        patience: float = 1.0,
    ) -> None:
        if not 0 <= threshold <= 1:
            raise ValueError(f"threshold is a fraction of differing hash bits, between 0 and 1; got {threshold}")
        self.episode = episode if isinstance(episode, Episode) else load_episode(episode)
        if self.episode.path is None:
            raise ValueError("the recorded episode has no folder on disk; load it with load_episode(path)")
        if not self.episode.steps:
            raise ValueError(f"episode {self.episode.id} has no recorded steps to replay")
        self.threshold = threshold
        self.heal = heal
        self.patience = patience
        self._hashes: dict[int, Any] = {}

    async def reset(self, task: Task) -> None:
        if self.heal is not None:
            await self.heal.reset(task)

    async def aclose(self) -> None:
        if self.heal is not None:
            await self.heal.aclose()

    def _recorded_hash(self, index: int) -> Any:
        if index not in self._hashes:
            self._hashes[index] = screen_hash(Path(self.episode.path) / self.episode.steps[index].screenshot)  # type: ignore[arg-type]
        return self._hashes[index]

    async def _distance(self, ctx: StepContext) -> float:
        """The distance to the recorded screen, re-observing for up to ``patience`` while it differs."""
        want = self._recorded_hash(ctx.index)
        distance = screen_distance(want, screen_hash(ctx.observation.png))
        deadline = time.monotonic() + self.patience
        while distance > self.threshold and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            obs = await ctx.env.observe()
            distance = min(distance, screen_distance(want, screen_hash(obs.png)))
            if distance <= self.threshold:
                ctx.observation = obs  # the screen the replayed action is taken on
        return distance

    async def decide(self, ctx: StepContext) -> Decision:
        steps = self.episode.steps
        if ctx.index >= len(steps):
            msg = f"all {len(steps)} recorded steps were replayed"
            return Decision(Terminate(status="success"), thought=msg, message=msg)
        recorded = steps[ctx.index]
        distance = await self._distance(ctx)
        match = distance <= self.threshold
        info = {
            "step": ctx.index,
            "distance": round(distance, 4),
            "threshold": self.threshold,
            "match": match,
            "healed": False,
        }
        if match:
            return Decision(
                action_from_dict(recorded.action),
                thought=recorded.thought,
                raw=recorded.raw_output,
                extra={**recorded.extra, "replay": info},
            )
        if self.heal is None:
            msg = (
                f"replay diverged at step {ctx.index}: the screen differs from the recording "
                f"(distance {distance:.3f} > threshold {self.threshold})"
            )
            return Decision(Terminate(status="failure"), thought=msg, message=msg, extra={"replay": info})
        info["healed"] = True
        decision = await self.heal.decide(ctx)
        decision.extra = {**decision.extra, "replay": info}
        return decision


class TargetHealer(Policy):
    """Heals a diverged step without a model: finds the recorded target again by its text.

    Steps recorded with a target (a script's text-located clicks keep ``extra["target"]["text"]``)
    are redone on the element with that text wherever it is now; steps without coordinates (typing,
    keys) are repeated as recorded. A pointing step with no recorded target cannot be healed this
    way: it ends the replay with a message saying so (heal it with a model policy instead).
    """

    def __init__(self, episode: Episode) -> None:
        self.episode = episode

    async def decide(self, ctx: StepContext) -> Decision:
        recorded = self.episode.steps[ctx.index]
        action = dict(recorded.action)
        target = dict(recorded.extra.get("target") or {})
        if "x" not in action or action["action"] == "scroll":
            return Decision(
                action_from_dict(action), thought=recorded.thought, raw=recorded.raw_output, extra=dict(recorded.extra)
            )
        text = target.get("text")
        if not text or not isinstance(ctx.env, TextQueries):
            msg = (
                f"replay diverged at step {ctx.index} and cannot heal it: the step has no recorded target text "
                "(or the env cannot find text); heal with a model policy: ReplayPolicy(..., heal=policy)"
            )
            return Decision(Terminate(status="failure"), thought=msg, message=msg)
        box = await ctx.env.locate_text(text)
        obs = ctx.observation
        if box is None:
            msg = f"replay diverged at step {ctx.index} and {text!r} is not on the page to heal it"
            return Decision(Terminate(status="failure"), thought=msg, message=msg)
        x, y = ctx.grid.point_to_grid(*box.center, obs.input_width, obs.input_height)
        if "x2" in action:  # a drag moves with its start
            g = ctx.grid.size
            action["x2"] = min(max(action["x2"] + x - action["x"], 0), g)
            action["y2"] = min(max(action["y2"] + y - action["y"], 0), g)
        action["x"], action["y"] = x, y
        return Decision(
            action_from_dict(action),
            thought=f"found {text!r} again",
            raw=recorded.raw_output,
            extra={**recorded.extra, "target": {**target, "box": list(box)}},
        )


async def replay(
    episode: Episode | str | os.PathLike[str],
    env: Env,
    *,
    recorder: Recorder | None = None,
    url: str | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    heal: Policy | None = None,
    patience: float = 1.0,
    on_step: Any = None,
) -> Episode:
    """Replay ``episode`` in ``env`` (from its task's url, or ``url``) and record the replay as a new episode.

    The new episode's status says whether it got through (``success``) or where it diverged
    (``failure``, with the step in the message); each step's ``extra["replay"]`` holds its match.
    """
    policy = ReplayPolicy(episode, threshold=threshold, heal=heal, patience=patience)
    task = policy.episode.task
    if url:
        task = task.model_copy(update={"url": url})
    # One decision per recorded step, plus the closing one when the recording has none.
    limits = Limits(max_steps=len(policy.episode.steps) + 1)
    task = task.model_copy(update={"max_steps": limits.max_steps})
    agent = Agent(env, policy, recorder=recorder, limits=limits, on_step=on_step)
    return await agent.run(task)
