"""What a policy sees and what it returns."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from ..actions import DEFAULT_GRID, Action, Grid, Observation, Task
from ..envs import Env
from ..trajectories import Step, Usage


class ModelError(RuntimeError):
    """The model could not be reached, or never gave a valid answer; ends the episode as model_error."""


@dataclass
class StepContext:
    """Everything a policy may look at to choose the next action."""

    task: Task
    observation: Observation
    #: The steps recorded so far in this episode, oldest first.
    history: list[Step]
    env: Env
    index: int
    grid: Grid = DEFAULT_GRID
    #: The last pointer position on the grid (Qwen's drag starts there).
    pointer: tuple[int, int] | None = None
    #: Notes for the policy from the loop itself (a tool's result, a nudge when it repeats itself).
    notes: list[str] = field(default_factory=list)


@dataclass
class Decision:
    """A policy's choice: one action, the reasoning behind it and how it was produced."""

    action: Action
    thought: str = ""
    #: The raw text the policy produced (the model's answer; the script line for scripts).
    raw: str | None = None
    usage: Usage | None = None
    #: The size of the image the model was sent.
    model_image: tuple[int, int] | None = None
    #: A message for the episode when this action ends it (why a script failed, say).
    message: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Policy(ABC):
    """Chooses the next action. ModelPolicy asks a model, ScriptPolicy follows a script.

    The agent calls :meth:`reset` when an episode starts, :meth:`decide` once per step, and the
    owner of the policy calls :meth:`aclose` when it is done with it. A policy that wraps another
    forwards all three.
    """

    async def reset(self, task: Task) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Start an episode of ``task``: forget the last one's state."""

    @abstractmethod
    async def decide(self, ctx: StepContext) -> Decision:
        """The next action for the situation ``ctx`` describes."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Release what the policy holds (HTTP clients, …)."""
