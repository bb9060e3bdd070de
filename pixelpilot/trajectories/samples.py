"""Recorded steps as a profile's prompt builder takes them: one conversion for run time and export.

``ModelPolicy`` turns the episode's steps into :class:`~pixelpilot.profiles.PastStep` records with
:func:`past_steps` before each request; the exports rebuild every step's request with
:func:`step_prompt` from what the step recorded (``step.extra["prompt"]``: the profile, its setup,
the task the model was given and where its history began). The same code on both sides is what
makes an exported sample the request the model was sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from ..profiles import DecodeContext, EncodeError, ImageRef, Message, PastStep, Profile, Setup, Turn, get_profile
from ..profiles.base import ActionParseError, describe
from .format import Episode, Step


def step_key(step: Step) -> str:
    return PurePosixPath(step.screenshot).stem


def pointer_before(steps: Sequence[Step]) -> tuple[int, int] | None:
    """Where the pointer is after ``steps``: the end point of the last action with coordinates."""
    for step in reversed(steps):
        a = step.action
        if "x" in a and "y" in a:
            return (int(a["x2"]), int(a["y2"])) if "x2" in a else (int(a["x"]), int(a["y"]))
    return None


def image_of(step: Step, profile: Profile, setup: Setup) -> ImageRef:
    """The step's screenshot at the size the model is (or was) sent it."""
    if step.model_image is not None:
        w, h = step.model_image
    else:
        w, h = profile.image_size(int(step.observation["width"]), int(step.observation["height"]), setup)
    return ImageRef(step_key(step), int(w), int(h))


def is_model_step(step: Step) -> bool:
    """Whether a model wrote the step's answer (its text is then what the model saw in its history)."""
    return step.raw_output is not None and ("prompt" in step.extra or "model" in step.extra)


def target_text(step: Step, profile: Profile, ctx: DecodeContext, description: str | None = None) -> str:
    """The answer a sample teaches for ``step``: the model's own text when it is in the profile's format
    and decodes to the recorded action, else the text the profile's encoder writes for that action.

    Raises :class:`EncodeError` when the action has no form in the profile's format.
    """
    raw = step.raw_output
    if raw is not None and is_model_step(step):
        try:
            same = profile.decode(raw, ctx).action.model_dump(mode="json") == step.action
        except ActionParseError:
            same = False
        if same and profile.in_format(raw, ctx):
            return raw
    if description is None:
        description = step.thought or describe(step.action, (step.extra.get("target") or {}).get("text"))
    return profile.encode(step.action, ctx, description)


def past_steps(
    steps: Sequence[Step], profile: Profile, setup: Setup, images: Sequence[ImageRef | None]
) -> list[PastStep]:
    """``steps`` (the history a request shows) as the profile's records; ``images[i]`` is how step i's
    screenshot is shown (None when its pixels are not at hand)."""
    out = []
    for i, step in enumerate(steps):
        if is_model_step(step):
            answer = str(step.raw_output)
        else:
            ctx = DecodeContext(setup, pointer_before(steps[:i]), _size(images[i]))
            try:
                answer = target_text(step, profile, ctx)
            except EncodeError:
                answer = describe(step.action, (step.extra.get("target") or {}).get("text"))
        error = None if step.outcome.get("ok", True) else str(step.outcome.get("error") or "failed")
        out.append(PastStep(turn_of(step.observation, step.notes, images[i]), answer, error))
    return out


def turn_of(meta: dict[str, Any], notes: Sequence[str], image: ImageRef | None) -> Turn:
    """A screen as a prompt shows it, from an observation's metadata (``Observation.meta()``, or a
    step's recorded ``observation``) and the loop's notes: events and the env's text become notes too."""
    extra = [f"Event: {e}" for e in meta.get("events") or ()]
    if meta.get("text"):
        extra.append(str(meta["text"]))
    return Turn(image, meta.get("url") or None, meta.get("title") or None, (*notes, *extra))


def _size(image: ImageRef | None) -> tuple[int, int] | None:
    return (image.width, image.height) if image is not None else None


@dataclass
class StepPrompt:
    """The request a step was (or would have been) sent, rebuilt from the episode, and its target."""

    profile: Profile
    setup: Setup
    messages: list[Message]
    #: The context its answer is decoded and encoded in.
    ctx: DecodeContext

    @property
    def images(self) -> list[ImageRef]:
        return [img for m in self.messages for img in m.images]


def recorded_setup(step: Step) -> tuple[Setup, str | None, int | None] | None:
    """The setup, task and history start a ModelPolicy recorded with ``step`` (None for other steps)."""
    prompt = step.extra.get("prompt")
    if not isinstance(prompt, dict) or "setup" not in prompt:
        return None
    start = prompt.get("history_from")
    return Setup.from_json(prompt["setup"]), prompt.get("task"), int(start) if start is not None else None


def step_prompt(episode: Episode, step: Step, default: Setup) -> StepPrompt:
    """The request for ``step``: as its ModelPolicy recorded it, or for a step without a model (a
    script's), the one a model with the ``default`` setup would have been sent (grid: the step's)."""
    recorded = recorded_setup(step)
    steps = episode.steps[: step.index]
    task = episode.task.instruction
    if recorded is not None:
        setup, given_task, start = recorded
        task = given_task or task
        steps = [] if start is None else episode.steps[start : step.index]
    else:
        setup = default.but(
            kind=episode.env if episode.env in ("browser", "desktop", "mobile") else default.kind, grid=step.grid
        )
    profile = get_profile(setup.profile)
    images = [image_of(s, profile, setup) for s in steps]
    current = image_of(step, profile, setup)
    history = past_steps(steps, profile, setup, images)
    messages = profile.messages(setup, task, history, turn_of(step.observation, step.notes, current))
    ctx = DecodeContext(setup, pointer_before(episode.steps[: step.index]), (current.width, current.height))
    return StepPrompt(profile, setup, messages, ctx)
