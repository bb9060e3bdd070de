"""The on-disk episode format, ``pixelpilot.episode/1``.

One folder per episode::

    task.json         written first: the task, the env, the policy, the grid
    steps.jsonl       one Step per line, flushed as each step completes
    screenshots/      PNGs named by the SHA-256 of their bytes (identical screens stored once)
    episode.json      written last and atomically; its presence marks a finished episode
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..actions import Task

FORMAT = "pixelpilot.episode/1"

Status = Literal[
    "success",  # the policy declared the task done (or the script ran to its end)
    "failure",  # the policy gave up, or a script expectation failed
    "max_steps",  # the step budget ran out
    "timeout",  # the time budget ran out
    "max_tokens",  # the token budget ran out
    "loop",  # the agent kept repeating itself
    "env_error",  # the environment broke
    "model_error",  # the model could not be reached or never answered validly
    "blocked",  # the safety gate refused to go on
    "error",  # an unexpected exception (a bug in a policy, tool or env): type and text in the message
    "interrupted",  # the process died before the episode ended (set by the loader)
]


class Usage(BaseModel):
    """Token counts reported by the model server."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
        )


class Step(BaseModel):
    """One perceive → decide → act cycle, as recorded."""

    model_config = ConfigDict(extra="allow")

    index: int
    #: The screenshot the policy saw, relative to the episode folder.
    screenshot: str
    #: Its metadata: pixel size, input space, url, title, events.
    observation: dict[str, Any]
    #: The size of the image the model was sent (after resizing); None for scripts.
    model_image: tuple[int, int] | None = None
    grid: int = 1000
    thought: str = ""
    #: The policy's raw output (the model's text; the script step for scripts).
    raw_output: str | None = None
    #: What the loop told the policy before this step: a tool's result, a refusal, a nudge.
    notes: list[str] = Field(default_factory=list)
    #: The action on the normalized grid.
    action: dict[str, Any]
    #: The action as executed, in input-space pixels (None when nothing was executed).
    pixel_action: dict[str, Any] | None = None
    outcome: dict[str, Any] = Field(default_factory=dict)
    #: Milliseconds per phase: observe, decide, execute, record.
    timings: dict[str, float] = Field(default_factory=dict)
    usage: Usage | None = None
    #: Anything a part adds: tool results, gate decisions, locator targets.
    extra: dict[str, Any] = Field(default_factory=dict)


class EpisodeStart(BaseModel):
    """The contents of ``task.json``."""

    format: str = FORMAT
    id: str
    task: Task
    env: str
    policy: str
    grid: int = 1000
    started_at: float

    def ended(self, status: Status, **fields: Any) -> Episode:
        """The Episode this start became, ending with ``status`` (``fields`` are Episode's others)."""
        return Episode(**dict(self), status=status, **fields)


class Episode(EpisodeStart):
    """A whole episode: ``episode.json`` plus, when loaded, its steps."""

    status: Status
    message: str | None = None
    answer: str | None = None
    #: The task's success check on the final state (1.0 met, 0.0 not); None when it has none.
    reward: float | None = None
    #: A benchmark's reward before its own adjustments (MiniWoB: before the time decay), in its own range.
    raw_reward: float | None = None
    num_steps: int = 0
    ended_at: float | None = None
    usage: Usage = Field(default_factory=Usage)
    #: True when ``episode.json`` exists (the run ended normally, whatever its status).
    finished: bool = True
    #: Where the episode lives on disk (not stored in the file).
    path: str | None = Field(default=None, exclude=True)
    #: The steps (not stored in episode.json: they live in steps.jsonl).
    steps: list[Step] = Field(default_factory=list, exclude=True)

    @property
    def duration_s(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.started_at
