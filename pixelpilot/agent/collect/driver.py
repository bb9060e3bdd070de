"""The collection: runs the planned episodes not done yet, N at a time, each on a model server it
keeps (leased here, in the driver, from :class:`~pixelpilot.serving.pool.ServerPool`), with a
progress bar and a tally. Both the in-process collector and the Ray one drive through
:func:`drive`."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..._sync import run_sync
from ...serving.pool import ServerPool
from ..policy import ModelError
from .episode import EpisodeResult, EpisodeRunner, Policies, RunnerConfig
from .tasks import EpisodeSpec, TaskSpec, is_done, plan


@dataclass
class CollectSummary:
    """How a collection went: what ran now, what an earlier run had done, by status."""

    total: int
    skipped: int
    statuses: Counter[str] = field(default_factory=Counter)
    rewards: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ran(self) -> int:
        return sum(self.statuses.values())

    @property
    def failed(self) -> int:
        return self.ran - self.statuses["success"]

    @property
    def per_hour(self) -> float:
        return self.ran * 3600 / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        by = ", ".join(f"{n} {s}" for s, n in self.statuses.most_common()) or "nothing to do"
        mean = f"; mean reward {sum(self.rewards) / len(self.rewards):.2f}" if self.rewards else ""
        return (
            f"ran {self.ran} of {self.total} episodes ({by}); {self.skipped} were done before{mean}; "
            f"{self.seconds:.1f} s, {self.per_hour:.0f} episodes/hour"
        )


class _Progress:
    """A rich progress bar on stderr: done, failed, rate and ETA."""

    def __init__(self, total: int, skipped: int, show: bool) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("collect"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("failed {task.fields[failed]} · {task.fields[rate]} ep/h · ETA"),
            TimeRemainingColumn(),
            TextColumn(f"({skipped} done before)" if skipped else ""),
            console=Console(stderr=True),
            disable=not show,
        )
        self.task = self.bar.add_task("collect", total=total, failed=0, rate="–")

    def update(self, summary: CollectSummary) -> None:
        self.bar.update(self.task, completed=summary.ran, failed=summary.failed, rate=f"{summary.per_hour:.0f}")


Execute = Callable[[EpisodeSpec, int], Awaitable[EpisodeResult]]


async def drive(
    specs: Sequence[EpisodeSpec],
    execute: Execute,
    *,
    out: str | os.PathLike[str],
    concurrency: int,
    servers: ServerPool,
    progress: bool = False,
) -> CollectSummary:
    """Run the episodes of ``specs`` not done yet, ``concurrency`` at a time.

    ``execute(spec, slot)`` runs one episode (``slot`` in ``range(concurrency)`` says which worker
    asks, so that a Ray collection can map workers to actors). Used by both collectors.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    pending = deque(s for s in specs if not is_done(out, s.id))
    summary = CollectSummary(total=len(specs), skipped=len(specs) - len(pending))
    bar = _Progress(len(pending), summary.skipped, progress)
    started = time.monotonic()

    async def worker(slot: int) -> None:
        while pending:
            spec = pending.popleft()
            with servers.lease(spec.id) as url:
                result = await execute(replace(spec, server=url), slot)
            summary.statuses[result.status] += 1
            if result.reward is not None:
                summary.rewards.append(result.reward)
            summary.seconds = time.monotonic() - started
            bar.update(summary)

    with bar.bar:
        async with asyncio.TaskGroup() as group:
            for slot in range(min(concurrency, len(pending))):
                group.create_task(worker(slot))
    summary.seconds = time.monotonic() - started
    return summary


async def collect(
    tasks: Sequence[TaskSpec],
    config: RunnerConfig,
    *,
    concurrency: int = 4,
    rollouts: int = 1,
    first_seed: int = 0,
    model_urls: Sequence[str] = (),
    progress: bool = False,
) -> CollectSummary:
    """Run every rollout of ``tasks`` not done yet in ``config.out``, ``concurrency`` episodes at once.

    A benchmark task's rollout k starts from seed ``first_seed + k`` (:func:`plan`).

    >>> summary = await collect(load_tasks("tasks.jsonl"), RunnerConfig(Path("runs")), concurrency=8)  # doctest: +SKIP
    """
    specs = plan(tasks, rollouts, first_seed=first_seed)
    await check_servers(specs, model_urls, config)
    runner = EpisodeRunner(config)
    try:
        return await drive(
            specs,
            lambda spec, slot: runner.run(spec),
            out=config.out,
            concurrency=concurrency,
            servers=ServerPool(model_urls),
            progress=progress,
        )
    finally:
        await runner.aclose()


async def check_servers(specs: Sequence[EpisodeSpec], model_urls: Sequence[str], config: RunnerConfig) -> None:
    """Fail before anything runs when a task needs a model and no server was given (ValueError),
    or a server given does not answer (ModelError, naming it). A policy factory of the caller's
    own (not :class:`Policies`) decides for itself what it needs."""
    unscripted = next((s for s in specs if not s.task.steps), None)
    if unscripted is None or not isinstance(config.policy_factory, Policies):
        return
    if not model_urls:
        raise ValueError(
            f"task {unscripted.id.rsplit('-r', 1)[0]} has no `steps`, so a model drives it; "
            "pass a model server with --model-url"
        )
    from ...serving.client import ModelClient, ServingError

    for url in model_urls:
        async with ModelClient(url, max_retries=0) as client:
            try:
                await client.list_models()
            except ServingError as e:
                raise ModelError(str(e)) from None


def collect_sync(tasks: Sequence[TaskSpec], config: RunnerConfig, **kwargs: Any) -> CollectSummary:
    """:func:`collect` from plain (non-async) code."""
    return run_sync(collect(tasks, config, **kwargs), "collect(tasks, config)")
