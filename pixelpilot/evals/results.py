"""Evaluation results: one versioned JSON schema for every suite (``results.json``).

A run has tasks; a task has trials (episodes for a suite like MiniWoB, one answered sample each
for the grounding eval). Per task: success rate, mean reward, steps and seconds; overall: the mean
success rate over tasks with a 95% confidence interval, and optional breakdowns (the grounding eval
groups its samples by source, element type and image size).

The interval is Wilson's score interval over all trials. With the same number of trials per task,
the pooled rate is the mean over tasks, and treating the trials as one binomial sample gives an
interval at least as wide as the one that knows the task strata, so it never overstates certainty;
unlike a normal interval it stays honest at 0% and 100%.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from .. import __version__
from ..trajectories import Episode
from ..trajectories.recorder import atomic_write

FORMAT = "pixelpilot.eval/1"


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson's score interval for a binomial proportion (95% by default); (0, 1) when n is 0."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


class Trial(BaseModel):
    """One attempt at a task: an episode, or one grounding sample."""

    id: str
    success: bool
    reward: float | None = None
    #: The benchmark's own reward before its adjustments (MiniWoB: in [-1, 1], before the time decay).
    raw_reward: float | None = None
    seed: int | None = None
    status: str | None = None
    steps: int | None = None
    seconds: float | None = None
    #: The episode folder, relative to the results file (the scoreboard links its viewer page).
    path: str | None = None
    message: str | None = None
    #: What else a suite records per trial (the grounding eval: the point and the box).
    extra: dict[str, Any] = Field(default_factory=dict)


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


class TaskResult(BaseModel):
    id: str
    trials: list[Trial]
    #: Why the task needs what pixelpilot's action space lacks, if it does (it still ran and counts).
    limitation: str | None = None

    @property
    def n(self) -> int:
        return len(self.trials)

    @property
    def successes(self) -> int:
        return sum(t.success for t in self.trials)

    @property
    def success_rate(self) -> float:
        return self.successes / self.n if self.n else 0.0

    def figures(self) -> dict[str, Any]:
        """The per-task figures the scoreboard and the CLI show."""
        return {
            "n": self.n,
            "successes": self.successes,
            "success_rate": self.success_rate,
            "mean_reward": _mean(t.reward for t in self.trials),
            "mean_raw_reward": _mean(t.raw_reward for t in self.trials),
            "mean_steps": _mean(t.steps for t in self.trials),
            "mean_seconds": _mean(t.seconds for t in self.trials),
        }


class Group(BaseModel):
    """A breakdown's share of the trials."""

    n: int
    successes: int
    success_rate: float
    ci95: tuple[float, float]


def group(trials: Sequence[Trial]) -> Group:
    wins = sum(t.success for t in trials)
    return Group(
        n=len(trials),
        successes=wins,
        success_rate=wins / len(trials) if trials else 0.0,
        ci95=wilson(wins, len(trials)),
    )


class Summary(BaseModel):
    tasks: int
    trials: int
    successes: int
    #: The mean over tasks of each task's success rate.
    success_rate: float
    ci95: tuple[float, float]
    mean_reward: float | None = None
    mean_steps: float | None = None
    mean_seconds: float | None = None


class RunInfo(BaseModel):
    """What was evaluated, and how."""

    #: A name for the run on the scoreboard ("base", "after fine-tuning" …); default: the model.
    label: str
    model: str | None = None
    model_urls: list[str] = Field(default_factory=list)
    profile: str | None = None
    #: The sampling sent instead of the profile's model-card sampling (None: the model card's).
    sampling: dict[str, Any] | None = None
    seeds: int = 1
    first_seed: int = 0
    tasks_pattern: str | None = None
    started_at: float = Field(default_factory=time.time)
    finished_at: float | None = None
    pixelpilot: str = __version__


class Results(BaseModel):
    """A whole evaluation run (``results.json``)."""

    format: str = FORMAT
    suite: str
    run: RunInfo
    summary: Summary
    tasks: list[TaskResult]
    #: Tasks that need what pixelpilot's action space lacks: id -> why. They ran and count.
    limitations: dict[str, str] = Field(default_factory=dict)
    #: Breakdowns of the trials: name -> value -> share ("source" -> "example-app" -> …).
    breakdowns: dict[str, dict[str, Group]] = Field(default_factory=dict)

    @classmethod
    def build(
        cls,
        suite: str,
        run: RunInfo,
        tasks: Sequence[TaskResult],
        *,
        limitations: dict[str, str] | None = None,
        breakdowns: dict[str, dict[str, Group]] | None = None,
    ) -> Results:
        trials = [t for task in tasks for t in task.trials]
        rates = [task.success_rate for task in tasks if task.n]
        wins = sum(t.success for t in trials)
        summary = Summary(
            tasks=len(tasks),
            trials=len(trials),
            successes=wins,
            success_rate=sum(rates) / len(rates) if rates else 0.0,
            ci95=wilson(wins, len(trials)),
            mean_reward=_mean(t.reward for t in trials),
            mean_steps=_mean(t.steps for t in trials),
            mean_seconds=_mean(t.seconds for t in trials),
        )
        return cls(
            suite=suite,
            run=run,
            summary=summary,
            tasks=list(tasks),
            limitations=dict(limitations or {}),
            breakdowns=dict(breakdowns or {}),
        )

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the results as JSON (atomically: a half-written file never replaces a whole one)."""
        path = Path(path)
        atomic_write(path, self.model_dump_json(indent=2).encode())
        return path

    def line(self) -> str:
        """One line for a terminal: the headline figures."""
        s = self.summary
        lo, hi = s.ci95
        reward = f", mean reward {s.mean_reward:.3f}" if s.mean_reward is not None else ""
        return (
            f"{self.suite} · {self.run.label}: success {s.success_rate:.1%} (95% CI {lo:.1%}–{hi:.1%}) "
            f"over {s.tasks} tasks, {s.trials} trials{reward}"
        )


def load_results(path: str | os.PathLike[str]) -> Results:
    """Read a ``results.json`` (or a folder holding one); ValueError names a file of another format."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    data = Results.model_validate_json(path.read_text(encoding="utf-8"))
    if data.format != FORMAT:
        raise ValueError(f"{path}: format {data.format!r}; this pixelpilot reads {FORMAT!r}")
    return data


def episode_trial(episode: Episode, root: Path) -> Trial:
    """An episode as a trial. It succeeded when its benchmark reward says so: the raw reward when the
    benchmark gives one, else the reward, above 0 (as MiniWoB's own binary reward reads it)."""
    score = episode.raw_reward if episode.raw_reward is not None else episode.reward
    seed = episode.task.metadata.get("seed")
    return Trial(
        id=episode.id,
        success=score is not None and score > 0,
        reward=episode.reward,
        raw_reward=episode.raw_reward,
        seed=seed if isinstance(seed, int) else None,
        status=episode.status,
        steps=episode.num_steps,
        seconds=episode.duration_s,
        path=os.path.relpath(episode.path, root) if episode.path else None,
        message=episode.message,
    )
