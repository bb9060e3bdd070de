"""What one episode carries from step to step, kept apart from the Agent so that the Agent holds only
configuration (env, policy, budgets, gate) and one Agent can run episode after episode."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..actions import DEFAULT_GRID, Grid, Observation, Task
from ..envs import Env
from ..trajectories import Episode, EpisodeWriter, Status, Step
from .loops import LoopDetector
from .policy import StepContext
from .scenario import Scenario, Verdict


@dataclass
class EpisodeState:
    """One episode in progress: made by :meth:`Agent.start`, advanced by :meth:`Agent.step`, closed by
    :meth:`Agent.finish`."""

    task: Task
    writer: EpisodeWriter
    max_steps: int
    loops: LoopDetector
    #: What the env shows now: the observation the next step decides on.
    observation: Observation | None = None
    #: The last pointer position on the grid (Qwen's drag starts there).
    pointer: tuple[int, int] | None = None
    #: What the policy is told before its next decision (a tool's result, a refusal, a nudge).
    notes: list[str] = field(default_factory=list)
    #: Milliseconds of the phases so far that belong to the next step (reset or observe, decide …).
    timings: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    #: Whether the env was relaunched after a crash already (once per episode).
    recovered: bool = False
    #: Refusals so far: the gate's and the URL policy's.
    denials: int = 0
    #: The task's own program (a benchmark's), if it has one, and its verdict once it gave one.
    scenario: Scenario | None = None
    verdict: Verdict | None = None
    status: Status | None = None
    message: str | None = None
    answer: str | None = None
    #: The finished episode, once :meth:`Agent.finish` (or a fatal error) has written it.
    episode: Episode | None = None

    @property
    def steps(self) -> list[Step]:
        """The steps recorded so far, oldest first."""
        return self.writer.steps

    @property
    def index(self) -> int:
        """The index the next step will have."""
        return len(self.writer.steps)

    @property
    def done(self) -> bool:
        """Whether the episode has ended (it may not be written yet: see :meth:`Agent.finish`)."""
        return self.status is not None

    def end(self, status: Status, message: str | None = None, answer: str | None = None) -> None:
        """Mark the episode as ended; the first ending wins."""
        if self.status is None:
            self.status, self.message, self.answer = status, message, answer

    def context(self, env: Env, grid: Grid = DEFAULT_GRID) -> StepContext:
        """What the policy may look at for the next step."""
        if self.observation is None:
            raise RuntimeError("the episode has no observation yet; start it with Agent.start()")
        return StepContext(self.task, self.observation, self.steps, env, self.index, grid, self.pointer, self.notes)
