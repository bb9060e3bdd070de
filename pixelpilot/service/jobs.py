"""Jobs: batches of collect tasks run in the background by collect's own runner, with their events.

A job is one collection (:func:`pixelpilot.agent.collect.drive` over an
:class:`~pixelpilot.agent.collect.EpisodeRunner`) into its own folder, ``<out>/<job id>/``, so its
episodes are exactly the ones ``pixelpilot collect`` writes for the same tasks. Submitting a job
under the id of one that ran before resumes it: its finished episodes are skipped. Every job of a
:class:`JobRunner` shares one env pool (one Chromium).

Each job keeps the list of its events (a recorded step, an ended episode, the job's end); a
reader follows them from any position, so one that loses its connection asks again from where
it stopped and misses nothing.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from ..actions import Task
from ..agent.collect import (
    CollectSummary,
    EpisodeResult,
    EpisodeRunner,
    EpisodeSpec,
    RunnerConfig,
    ServerPool,
    TaskSpec,
    check_servers,
    drive,
    is_done,
    plan,
)
from ..envs import UrlPolicy
from ..trajectories import EpisodeError, Step, load_episode

JobState = Literal["queued", "running", "done", "failed"]
#: A job id: what collect's task ids allow, so that it can name a folder.
JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$")


class JobRefused(ValueError):
    """A job that will not run: ``status`` is the HTTP status that says why (403 the URL policy, 409 a
    job of that id is running, 400 anything else wrong with it)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Job:
    """One submitted batch: its episodes, how far it got, and every event so far."""

    id: str
    out: Path
    specs: list[EpisodeSpec]
    state: JobState = "queued"
    submitted_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    error: str | None = None
    summary: CollectSummary | None = None
    results: dict[str, EpisodeResult] = field(default_factory=dict)
    #: Every event so far; an event's id is its index here.
    events: list[dict[str, Any]] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    @property
    def over(self) -> bool:
        return self.state in ("done", "failed")

    def emit(self, kind: str, **data: Any) -> None:
        """Add an event and wake the readers waiting for one."""
        self.events.append({"event": kind, "job": self.id, **data})
        self._changed.set()
        self._changed = asyncio.Event()

    async def follow(self, after: int = -1) -> AsyncIterator[tuple[int, dict[str, Any]]]:
        """The events after id ``after`` as ``(id, event)``, then each new one as it comes, until the
        job's last event."""
        index = after + 1
        while True:
            while index < len(self.events):
                yield index, self.events[index]
                index += 1
            if self.over:
                return
            await self._changed.wait()

    async def wait(self) -> Job:
        """Wait until the job is over."""
        if self._task is not None:
            await asyncio.shield(self._task)
        return self

    def to_json(self) -> dict[str, Any]:
        """The job's status as the API answers it."""
        done = {s.id: self.results[s.id] for s in self.specs if s.id in self.results}
        return {
            "id": self.id,
            "state": self.state,
            "error": self.error,
            "folder": str(self.out),
            "submitted_at": self.submitted_at,
            "ended_at": self.ended_at,
            "total": len(self.specs),
            "finished": len(done),
            "skipped": self.summary.skipped if self.summary else 0,
            "statuses": dict(self.summary.statuses) if self.summary else {},
            "episodes": [
                {"id": s.id, **(_result_json(done[s.id]) if s.id in done else {"status": None})} for s in self.specs
            ],
            "events": len(self.events),
        }


def _result_json(r: EpisodeResult) -> dict[str, Any]:
    return {
        "status": r.status,
        "reward": r.reward,
        "steps": r.num_steps,
        "seconds": round(r.seconds, 3),
        "message": r.message,
    }


def _step_event(spec: EpisodeSpec, step: Step) -> dict[str, Any]:
    return {
        "episode": spec.id,
        "index": step.index,
        "action": step.action,
        "ok": step.outcome.get("ok", True),
        "error": step.outcome.get("error"),
        "target": step.extra.get("target", {}).get("text"),
    }


class JobRunner:
    """Runs jobs in the background on this event loop, ``concurrency`` episodes at a time each.

    ``config.out`` is the folder every job's folder goes in; ``config.url_policy`` refuses, at
    submission, tasks that start on a host it forbids (the envs enforce it on every navigation too);
    ``model_urls`` are the servers that drive tasks without steps.
    """

    def __init__(
        self,
        config: RunnerConfig,
        *,
        model_urls: Sequence[str] = (),
        concurrency: int = 4,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.config = config
        self.model_urls = list(model_urls)
        self.concurrency = concurrency
        self.jobs: dict[str, Job] = {}
        self._runner = EpisodeRunner(config)  # owns the env pool every job's runner shares

    @property
    def url_policy(self) -> UrlPolicy:
        return self.config.url_policy or UrlPolicy()

    def refusal(self, task: Task) -> str | None:
        """Why the URL policy refuses ``task``'s start page, or None."""
        if task.url is None:
            return None
        verdict = self.url_policy.check(task.url)
        return None if verdict.allowed else f"the task starts at {verdict.url[:200]}: {verdict.reason}"

    async def submit(self, tasks: Sequence[TaskSpec], *, job_id: str | None = None, rollouts: int = 1) -> Job:
        """Start a job of ``tasks`` (each ``rollouts`` times) and return it at once; JobRefused if it
        cannot run, ModelError if a model server it needs does not answer."""
        if job_id is None:
            job_id = f"job-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        elif not JOB_ID.match(job_id):
            raise JobRefused(f"job id {job_id!r}: use letters, digits, '.', '_' and '-' (at most 81)")
        running = self.jobs.get(job_id)
        if running is not None and not running.over:
            raise JobRefused(f"job {job_id} is running; wait for it to end before submitting it again", 409)
        if not tasks:
            raise JobRefused("the job has no tasks")
        for t in tasks:
            if (why := self.refusal(t.task)) is not None:
                raise JobRefused(f"task {t.id}: refused by the URL policy: {why}", 403)
        try:
            specs = plan(tasks, rollouts)
        except ValueError as e:
            raise JobRefused(str(e)) from None
        try:
            await check_servers(specs, self.model_urls, self.config)
        except ValueError as e:  # a task needs a model and none is configured
            raise JobRefused(str(e).replace("pass a model server with --model-url", "this server has none")) from None
        job = Job(job_id, Path(self.config.out) / job_id, specs)
        self.jobs[job_id] = job
        job._task = asyncio.create_task(self._run(job), name=f"job:{job_id}")
        return job

    async def _run(self, job: Job) -> None:
        runner = EpisodeRunner(
            replace(self.config, out=job.out),
            envs=self._runner.envs,
            on_step=lambda spec, step: job.emit("step", **_step_event(spec, step)),
        )

        async def execute(spec: EpisodeSpec, slot: int) -> EpisodeResult:
            job.emit("episode_started", episode=spec.id)
            result = await runner.run(spec)
            job.results[spec.id] = result
            job.emit("episode", episode=spec.id, path=str(job.out / spec.id), **_result_json(result))
            return result

        for spec in job.specs:  # done by an earlier run of this job: reported as they are on disk
            if is_done(job.out, spec.id):
                try:
                    ep = load_episode(job.out / spec.id)
                except (EpisodeError, OSError):
                    continue
                job.results[spec.id] = EpisodeResult(spec.id, ep.status, ep.reward, ep.num_steps, 0.0, ep.message)
        job.state = "running"
        job.emit("job_started", total=len(job.specs), done_before=len(job.results))
        try:
            job.summary = await drive(
                job.specs,
                execute,
                out=job.out,
                concurrency=self.concurrency,
                servers=ServerPool(self.model_urls),
            )
            job.state = "done"
        except Exception as e:  # a broken browser, a bug: the job says so; its episodes say what they got to
            job.state, job.error = "failed", f"{type(e).__name__}: {e}"
        finally:
            job.ended_at = time.time()
            if job.state == "running":  # cancelled: the server is stopping
                job.state, job.error = "failed", "the server stopped before the job ended; submit it again to resume"
            job.emit("job", **{k: v for k, v in job.to_json().items() if k not in ("episodes", "events")})

    async def aclose(self) -> None:
        """Stop the jobs still running (their episodes stay resumable) and close the envs."""
        for job in self.jobs.values():
            if job._task is not None and not job._task.done():
                job._task.cancel()
        for job in self.jobs.values():
            if job._task is not None:
                try:
                    await job._task
                except asyncio.CancelledError:
                    pass
        await self._runner.aclose()
