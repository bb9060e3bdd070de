"""What a task brings to its own episode beyond an instruction: how it starts and how it is judged.

A plain task needs none of this: the env opens its URL and, at the end, a checker (if any) scores the
final state. A benchmark task has a program of its own: MiniWoB++ generates its problem from a seed
and writes the instruction into the page, runs its own clock, and decides the reward itself the
moment the task is over. A :class:`Scenario` is that program's side of the episode:

- :meth:`Scenario.begin` runs once the env has opened ``task.url`` and before the first screenshot
  the policy sees; it returns the task the agent is given (a benchmark fills in its instruction);
- :meth:`Scenario.poll` runs after every executed action; a :class:`Verdict` ends the episode
  (``success`` or ``failure``) with the task's own reward;
- :meth:`Scenario.judge` runs when the episode ended some other way (the policy stopped, a budget
  ran out) and gives the reward for where things stand.

Scenarios travel to Ray actors with their episodes, so they must pickle: keep them plain data.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..actions import Task
from ..envs import Env

if TYPE_CHECKING:
    from ..trajectories import Episode
    from .checkers import Checker


@dataclass(frozen=True)
class Verdict:
    """A task's judgement of an episode."""

    #: The reward recorded as ``episode.reward``.
    reward: float
    #: Whether the task counts as solved; None leaves the episode's status as it is.
    success: bool | None = None
    #: The reward before the benchmark's own adjustments (MiniWoB: before its time decay), if it has one.
    raw_reward: float | None = None
    #: Why, in the task's words ("timed out", "wrong button" …).
    reason: str | None = None


class Scenario(ABC):
    """A task's own program in an episode (see the module docstring). ``begin`` and ``poll`` have
    do-nothing defaults; ``judge`` is what every scenario must say."""

    async def begin(self, env: Env, task: Task) -> Task:
        """Set the task's own episode up in ``env`` (already at ``task.url``); return the task to give the agent."""
        return task

    async def poll(self, env: Env) -> Verdict | None:
        """After an action: the verdict once the task says it is over, else None."""
        return None

    @abstractmethod
    async def judge(self, env: Env, episode: Episode) -> Verdict:
        """The verdict for an episode that ended without :meth:`poll` giving one (``env`` is still open)."""


@dataclass(frozen=True)
class Checked(Scenario):
    """A plain task with a success check (a collect task file's ``checker``): judged on its final state."""

    checker: Checker

    async def judge(self, env: Env, episode: Episode) -> Verdict:
        return Verdict(reward=await self.checker.score(env, episode))
