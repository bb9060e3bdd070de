"""Collect trajectories at scale: many episodes at once from a task file, resumable, with rewards.

A task file is JSON Lines, one task per line: the fields of :class:`~pixelpilot.actions.Task`
(``instruction``, ``env``, ``url``, ``max_steps``, ``steps`` for a scripted task …) plus an optional
``id`` and an optional ``checker`` (see :mod:`pixelpilot.agent.checkers`)::

    {"id": "add-milk", "instruction": "Add milk to the list", "url": "http://127.0.0.1:8765/",
     "max_steps": 15, "checker": {"text": "milk"}}

Each task runs ``rollouts`` times. Every episode has an id fixed by its task and rollout
(``add-milk-r0``, ``add-milk-r1`` …), so a collection that stops — a crash, a kill, Ctrl-C — is
resumed by running it again: episodes whose ``episode.json`` exists are skipped, half-written
ones are started over. Every episode that ends, ends on disk with its status (a timeout, a broken
browser, a model that never answered) and, when its task has a checker, its reward.

In one process the browser episodes share one Chromium, each in a browser context of its own;
a desktop episode gets an Xvfb of its own, and an Android episode a phone of the attached ones,
which it holds alone until it ends (see :class:`Envs`). :mod:`pixelpilot.agent.ray_collect` runs
the same :class:`EpisodeRunner` inside Ray actors.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ..actions import Task
from ..envs import EnvError
from ..trajectories import Episode, EpisodeStart, EpisodeWriter, Recorder, Redactor, Status, write_episode
from .checkers import Checker, CheckerError
from .policy import ModelError, Policy
from .runner import Agent, Limits
from .script import ScriptError, ScriptPolicy, compile_step
from .taskfile import TaskFileError

if TYPE_CHECKING:
    from playwright.async_api import Browser

    from ..envs import Env
    from ..envs.browser import BrowserEnv

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$")


# --- the task file ------------------------------------------------------------------------------


class TaskSpec(BaseModel):
    """One line of a collect task file: a task, its id and its success check."""

    model_config = ConfigDict(frozen=True)

    id: str
    task: Task
    checker: Checker | None = None


def _task_id(data: dict[str, Any]) -> str:
    """A stable id for a task line without one: a slug of its name plus a hash of the whole line."""
    text = str(data.get("name") or data.get("instruction") or "task")
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "task"
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:8]
    return f"{slug}-{digest}"


def parse_task_line(data: Any, *, path: str | os.PathLike[str] = "<tasks>", line: int = 0) -> TaskSpec:
    """Check one task line (already parsed from JSON) and turn it into a TaskSpec.

    Raises TaskFileError (``FILE:LINE: problem``) for anything malformed.
    """
    if not isinstance(data, dict):
        raise TaskFileError(path, line, 'each line is a JSON object like {"instruction": "…", "url": "…"}')
    fields = dict(data)
    task_id = fields.pop("id", None)
    checker_data = fields.pop("checker", None)
    if task_id is not None and (not isinstance(task_id, str) or not _ID.match(task_id)):
        raise TaskFileError(path, line, f"id {task_id!r}: use letters, digits, '.', '_' and '-' (at most 81)")
    for step in fields.get("steps") or []:
        try:
            compile_step(step)
        except ScriptError as e:
            raise TaskFileError(path, line, f"steps: {e}") from None
    try:
        task = Task.model_validate(fields)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(map(str, err["loc"])) or "task"
        raise TaskFileError(path, line, f"{where}: {err['msg']}") from None
    checker = None
    if checker_data is not None:
        try:
            checker = Checker.model_validate(checker_data)
            checker.validate_callable()
        except ValidationError as e:
            raise TaskFileError(path, line, f"checker: {e.errors()[0]['msg'].removeprefix('Value error, ')}") from None
        except CheckerError as e:
            raise TaskFileError(path, line, f"checker: {e}") from None
        # Kept with the task, so that every episode records how its reward was judged.
        task = task.model_copy(update={"metadata": {**task.metadata, "checker": checker.model_dump(exclude_none=True)}})
    return TaskSpec(id=task_id or _task_id(data), task=task, checker=checker)


def load_tasks(path: str | os.PathLike[str]) -> list[TaskSpec]:
    """Read a JSONL task file (blank lines and lines starting with ``#`` are skipped)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise TaskFileError(path, 0, f"cannot read the file ({e.strerror})") from None
    specs: list[TaskSpec] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as e:
            raise TaskFileError(path, lineno, f"not valid JSON: {e.msg} (column {e.colno})") from None
        spec = parse_task_line(data, path=path, line=lineno)
        if spec.id in seen:
            raise TaskFileError(
                path, lineno, f'task id {spec.id!r} is also line {seen[spec.id]}\'s; give each line its own "id"'
            )
        seen[spec.id] = lineno
        specs.append(spec)
    if not specs:
        raise TaskFileError(path, 1, "the file has no tasks; write one JSON object per line")
    return specs


# --- episodes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EpisodeSpec:
    """One episode to run: a task's rollout, and the model server it sticks to."""

    id: str
    task: Task
    checker: Checker | None = None
    rollout: int = 0
    #: The model server this episode talks to for its whole run (None for scripted tasks).
    server: str | None = None


@dataclass(frozen=True)
class EpisodeResult:
    """What a finished episode reports back to the collector (the episode itself is on disk)."""

    id: str
    status: Status
    reward: float | None
    num_steps: int
    seconds: float
    message: str | None = None


def plan(tasks: Sequence[TaskSpec], rollouts: int = 1) -> list[EpisodeSpec]:
    """Every episode of a collection, task by task, rollout by rollout."""
    if rollouts < 1:
        raise ValueError(f"rollouts must be at least 1, got {rollouts}")
    return [EpisodeSpec(f"{t.id}-r{k}", t.task, t.checker, k) for t in tasks for k in range(rollouts)]


def is_done(out: str | os.PathLike[str], episode_id: str) -> bool:
    """Whether the episode finished in an earlier run (its ``episode.json`` exists)."""
    return (Path(out) / episode_id / "episode.json").exists()


class Policies:
    """Each episode's policy: a ScriptPolicy for a task with ``steps``, else a ModelPolicy that
    talks to the episode's own server (``spec.server``) for its whole run.

    ``options`` go to every ModelPolicy (``mode``, ``actions``, ``max_tokens`` …). One HTTP client
    per server is kept for all the episodes on it (its connections are reused); :meth:`aclose`
    closes them. Picklable (without the clients), so Ray actors get their own.
    """

    def __init__(self, *, model: str | None = None, **options: Any) -> None:
        self.model = model
        self.options = options
        self._clients: dict[str, Any] = {}

    def __call__(self, spec: EpisodeSpec) -> Policy:
        if spec.task.steps:
            return ScriptPolicy()
        if spec.server is None:
            raise ModelError(f"task {spec.id} has no steps, so a model drives it, and no model server was given")
        from ..serving.client import ModelClient
        from .model_policy import ModelPolicy

        client = self._clients.get(spec.server)
        if client is None:
            client = self._clients[spec.server] = ModelClient(spec.server, model=self.model)
        return ModelPolicy(client, **self.options)

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_clients": {}}  # clients belong to the event loop that opened them


class _HeldWriter(EpisodeWriter):
    """Holds ``episode.json`` back, so that the runner can score the final state before it is written."""

    episode: Episode | None = None

    def finish(self, status: Status, *, message: str | None = None, answer: str | None = None) -> Episode:
        self.episode = self.summarize(status, message=message, answer=answer)
        return self.episode


class _OneEpisode(Recorder):
    """Records one episode under the collector's id (so that a rerun finds it), with a held writer."""

    def __init__(self, root: Path, episode_id: str) -> None:
        super().__init__(root)
        self.episode_id = episode_id
        self.writer: _HeldWriter | None = None

    def start(
        self, task: Task, *, env: str, policy: str, grid: int = 1000, episode_id: str | None = None
    ) -> EpisodeWriter:
        writer = super().start(task, env=env, policy=policy, grid=grid, episode_id=self.episode_id)
        assert isinstance(writer, _HeldWriter)
        self.writer = writer
        return writer

    def make_writer(self, path: Path, start: EpisodeStart, redactor: Redactor) -> EpisodeWriter:
        return _HeldWriter(path, start, redactor)


class SharedBrowser:
    """One Chromium for many episodes (each opens its own context in it); launched again if it dies."""

    def __init__(self, *, headless: bool = True) -> None:
        self.headless = headless
        self._owner: BrowserEnv | None = None  # the env that launched it, and so owns it
        self._lock = asyncio.Lock()

    async def get(self) -> Browser:
        from ..envs.browser import BrowserEnv

        async with self._lock:
            browser = self._owner.browser if self._owner is not None else None
            if browser is None or not browser.is_connected():
                await self._stop()
                self._owner = BrowserEnv(headless=self.headless)
                await self._owner.start()
                browser = self._owner.browser
            assert browser is not None
            return browser

    async def _stop(self) -> None:
        if self._owner is not None:
            await self._owner.aclose()
            self._owner = None

    async def aclose(self) -> None:
        async with self._lock:
            await self._stop()


@dataclass(frozen=True)
class RunnerConfig:
    """How each episode runs; picklable, so that Ray actors build their runner from it."""

    out: Path
    #: Wall-clock seconds one episode may take, enforced from outside the episode.
    timeout: float = 300.0
    limits: Limits = Limits()
    headless: bool = True
    viewport: tuple[int, int] = (1280, 800)
    #: The screen of each desktop episode's own Xvfb.
    desktop_size: tuple[int, int] = (1280, 800)
    #: Programs desktop episodes may start with ``open_app`` (label -> argv), besides installed
    #: ``.desktop`` entries.
    desktop_apps: dict[str, list[str]] = field(default_factory=dict)
    #: The phones Android episodes may use (default: every device ``adb devices`` lists).
    android_serials: tuple[str, ...] = ()
    #: Builds the device object for a serial (default: adbutils, through the local adb server).
    android_device: Callable[[str], Any] | None = None
    #: Builds each episode's policy (its ``aclose``, if any, is awaited when the runner closes);
    #: it is pickled into Ray actors.
    policy_factory: Callable[[EpisodeSpec], Policy] = field(default_factory=Policies)
    #: Seconds a checker may take.
    check_timeout: float = 30.0


class EpisodeRunner:
    """Runs single episodes into ``config.out``; any number of them at once on one event loop.

    :meth:`run` always starts the episode afresh (an earlier partial folder is removed) and
    always leaves ``episode.json`` behind, whatever happens inside the episode.
    """

    def __init__(self, config: RunnerConfig) -> None:
        self.config = config
        self.envs = Envs(config)

    async def run(self, spec: EpisodeSpec) -> EpisodeResult:
        cfg = self.config
        folder = Path(cfg.out) / spec.id
        if folder.exists():
            shutil.rmtree(folder)  # a half-written or retried attempt: its id is taken again now
        recorder = _OneEpisode(Path(cfg.out), spec.id)
        started = time.monotonic()
        env: Any = None
        stopped: tuple[Status, str] | None = None
        deadline = asyncio.timeout(cfg.timeout)
        try:
            try:
                env = await self.envs.acquire(spec.task)  # a launch, or a wait for a free phone: not the episode's time
                async with deadline:
                    await Agent(env, cfg.policy_factory(spec), recorder=recorder, limits=cfg.limits).run(spec.task)
            except Exception as e:
                if deadline.expired():
                    stopped = "timeout", f"stopped from outside after its {cfg.timeout:g} s wall-clock limit"
                else:
                    kind: Status = (
                        "model_error"
                        if isinstance(e, ModelError)
                        else "env_error"
                        if isinstance(e, EnvError)
                        else "error"
                    )
                    stopped = kind, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            episode = await self._finish(spec, recorder, env, stopped)
        finally:  # also when the collection itself is cancelled: the episode then stays unfinished
            if env is not None:
                await self.envs.release(env)
        return EpisodeResult(
            spec.id, episode.status, episode.reward, episode.num_steps, time.monotonic() - started, episode.message
        )

    async def _finish(
        self, spec: EpisodeSpec, recorder: _OneEpisode, env: Any, stopped: tuple[Status, str] | None
    ) -> Episode:
        writer = recorder.writer
        if writer is None:  # it broke before the episode began: record that it did
            writer = recorder.start(spec.task, env=spec.task.env, policy="none")
            assert isinstance(writer, _HeldWriter)
        episode = writer.episode
        if episode is None:  # the agent raised instead of returning; its steps are on disk
            assert stopped is not None
            episode = writer.summarize(stopped[0], message=stopped[1])
        elif stopped is not None:
            episode.status, episode.message = stopped
        if spec.checker is not None and env is not None:
            try:
                episode.reward = await asyncio.wait_for(spec.checker.score(env, episode), self.config.check_timeout)
            except Exception as e:  # the reward stays unknown; the episode is kept all the same
                note = f"the {spec.checker.kind} check failed: {type(e).__name__}: {e}"
                episode.message = f"{episode.message}; {note}" if episode.message else note
        write_episode(episode)
        return episode

    async def aclose(self) -> None:
        aclose = getattr(self.config.policy_factory, "aclose", None)
        if aclose is not None:
            await aclose()
        await self.envs.aclose()


class Envs:
    """Where each episode's env comes from, by where its task runs (:attr:`Task.runs_in`):

    - browser and mobile-web: a fresh context in the one shared Chromium;
    - desktop: an Xvfb of its own, started for the episode and stopped after it;
    - android: a phone from the pool (``android_serials``, else every attached device), held by
      one episode at a time; an episode waits for a free one, and the wait is not its time.
    """

    def __init__(self, config: RunnerConfig) -> None:
        self.config = config
        self.browser = SharedBrowser(headless=config.headless)
        self._phones: asyncio.Queue[str] | None = None
        self._phone_of: dict[int, str] = {}  # id(env) -> the serial it holds
        self._lock = asyncio.Lock()

    async def acquire(self, task: Task) -> Env:
        """A started env for ``task`` (EnvError when none can be had: no Chromium, no Xvfb, no phone)."""
        cfg = self.config
        where = task.runs_in
        if where in ("browser", "mobile-web"):
            from ..envs.browser import BrowserEnv

            browser = await self.browser.get()
            if where == "mobile-web":
                return BrowserEnv.phone(browser=browser, headless=cfg.headless)
            return BrowserEnv(browser=browser, headless=cfg.headless, viewport=cfg.viewport)
        if where == "desktop":
            from ..envs.desktop import DesktopEnv

            desktop = DesktopEnv(virtual_display=cfg.desktop_size, apps=cfg.desktop_apps)
            await desktop.start()
            return desktop
        from ..envs.android import AndroidEnv

        serial = await (await self._phone_pool()).get()
        phone = (
            AndroidEnv(serial=serial) if cfg.android_device is None else AndroidEnv(device=cfg.android_device(serial))
        )
        self._phone_of[id(phone)] = serial
        return phone

    async def release(self, env: Env) -> None:
        """Close the episode's env; a phone goes back to the pool."""
        try:
            await env.aclose()
        finally:
            serial = self._phone_of.pop(id(env), None)
            if serial is not None and self._phones is not None:
                self._phones.put_nowait(serial)

    async def _phone_pool(self) -> asyncio.Queue[str]:
        async with self._lock:
            if self._phones is None:
                from ..envs.android import attached_serials

                serials = list(self.config.android_serials) or await attached_serials()
                if not serials:
                    raise EnvError(
                        "an Android task needs a phone and `adb devices` lists none; attach one "
                        "or start an emulator (or give the serials to use)"
                    )
                self._phones = asyncio.Queue()
                for serial in dict.fromkeys(serials):
                    self._phones.put_nowait(serial)
            return self._phones

    async def aclose(self) -> None:
        await self.browser.aclose()


# --- model servers ------------------------------------------------------------------------------


class ServerPool:
    """Model servers by load. An episode keeps the server it is given for its whole run (its
    prompts share a prefix there, which the server caches); a new episode gets the server with
    the fewest episodes in flight (the first listed among equals)."""

    def __init__(self, urls: Sequence[str] = ()) -> None:
        self.load: dict[str, int] = {u.rstrip("/"): 0 for u in urls}

    @contextmanager
    def lease(self) -> Iterator[str | None]:
        """The server for one episode, held until the block ends (None when there are no servers)."""
        if not self.load:
            yield None
            return
        url = min(self.load, key=self.load.__getitem__)
        self.load[url] += 1
        try:
            yield url
        finally:
            self.load[url] -= 1


# --- the collection -----------------------------------------------------------------------------


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
            with servers.lease() as url:
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
    model_urls: Sequence[str] = (),
    progress: bool = False,
) -> CollectSummary:
    """Run every rollout of ``tasks`` not done yet in ``config.out``, ``concurrency`` episodes at once.

    >>> summary = await collect(load_tasks("tasks.jsonl"), RunnerConfig(Path("runs")), concurrency=8)  # doctest: +SKIP
    """
    specs = plan(tasks, rollouts)
    await check_servers(specs, model_urls)
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


async def check_servers(specs: Sequence[EpisodeSpec], model_urls: Sequence[str]) -> None:
    """Fail before anything runs when a task needs a model and no server was given (ValueError),
    or a server given does not answer (ModelError, naming it)."""
    unscripted = next((s for s in specs if not s.task.steps), None)
    if unscripted is None:
        return
    if not model_urls:
        raise ValueError(
            f"task {unscripted.id.rsplit('-r', 1)[0]} has no `steps`, so a model drives it; "
            "pass a model server with --model-url"
        )
    from ..serving.client import ModelClient, ServingError

    for url in model_urls:
        async with ModelClient(url, max_retries=0) as client:
            try:
                await client.list_models()
            except ServingError as e:
                raise ModelError(str(e)) from None


def collect_sync(tasks: Sequence[TaskSpec], config: RunnerConfig, **kwargs: Any) -> CollectSummary:
    """:func:`collect` from plain (non-async) code."""
    return asyncio.run(collect(tasks, config, **kwargs))
