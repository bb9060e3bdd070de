"""Writes episodes to disk as they happen, so that a crash loses nothing already done."""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..actions import Observation, Task, secret_values
from .format import Episode, EpisodeStart, Status, Step, Usage
from .redact import Redactor


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _json(data: Any) -> bytes:
    return json.dumps(data, indent=2, ensure_ascii=False).encode()


def new_episode_id(task: Task) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", (task.name or task.instruction).lower()).strip("-")[:32] or "task"
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{slug}-{uuid.uuid4().hex[:6]}"


def screenshot_key(obs: Observation) -> str:
    """A screenshot's key: its file name in the episode (``screenshots/<key>.png``), from its content hash."""
    return obs.sha256[:24]


class Recorder:
    """Creates one episode folder per run under ``root``.

    Every episode masks the task's secret variables (``vars: {x: {env: …, secret: true}}``) and
    whatever is added to ``redactor`` (``recorder.redactor.add("token", value)``) as ``${NAME}``.
    """

    def __init__(self, root: str | os.PathLike[str] = "runs", *, redactor: Redactor | None = None) -> None:
        self.root = Path(root)
        self.redactor = redactor if redactor is not None else Redactor()

    def start(
        self, task: Task, *, env: str, policy: str, grid: int = 1000, episode_id: str | None = None
    ) -> EpisodeWriter:
        episode_id = episode_id or new_episode_id(task)
        path = self.root / episode_id
        (path / "screenshots").mkdir(parents=True, exist_ok=True)
        start = EpisodeStart(id=episode_id, task=task, env=env, policy=policy, grid=grid, started_at=time.time())
        redactor = Redactor(secret_values(task.vars), parent=self.redactor)
        _atomic_write(path / "task.json", _json(redactor.redact(start.model_dump(mode="json"))))
        return self.make_writer(path, start, redactor)

    def make_writer(self, path: Path, start: EpisodeStart, redactor: Redactor) -> EpisodeWriter:
        """The writer for a new episode folder; a subclass may finish episodes its own way."""
        return EpisodeWriter(path, start, redactor)


class EpisodeWriter:
    """Appends steps to one episode folder and finishes it."""

    def __init__(self, path: Path, start: EpisodeStart, redactor: Redactor | None = None) -> None:
        self.path = path
        self.start = start
        self.redactor = redactor if redactor is not None else Redactor()
        self.steps: list[Step] = []
        self.usage = Usage()
        self._lines = open(path / "steps.jsonl", "a", encoding="utf-8")

    def retask(self, task: Task) -> None:
        """Replace the episode's task before its first step (a benchmark's page writes the instruction
        only once the env has opened it)."""
        if self.steps:
            raise RuntimeError("the task of an episode can change only before its first step")
        self.start = self.start.model_copy(update={"task": task})
        _atomic_write(self.path / "task.json", _json(self.redactor.redact(self.start.model_dump(mode="json"))))

    def save_screenshot(self, obs: Observation) -> str:
        """Store the PNG under its content hash (once) and return its path relative to the episode."""
        rel = f"screenshots/{screenshot_key(obs)}.png"
        target = self.path / rel
        if not target.exists():
            _atomic_write(target, obs.png)
        return rel

    def add_step(self, obs: Observation, *, timings: dict[str, float], **fields: Any) -> Step:
        """Record one step: the screenshot the policy saw plus ``fields`` of :class:`Step`.

        The line is flushed before this returns. ``timings["record"]`` is filled in here. Secrets
        are masked first: the returned Step (which the loop keeps as history) is the recorded one.
        """
        t0 = time.perf_counter()
        screenshot = self.save_screenshot(obs)
        timings["record"] = (time.perf_counter() - t0) * 1000  # the PNG write dominates; the line is small
        step = Step(
            index=len(self.steps),
            screenshot=screenshot,
            observation=obs.meta(),
            grid=self.start.grid,
            timings=timings,
            **fields,
        )
        if self.redactor:
            step = Step.model_validate(self.redactor.redact(step.model_dump(mode="json")))
        self._lines.write(step.model_dump_json() + "\n")
        self._lines.flush()
        self.steps.append(step)
        if step.usage is not None:
            self.usage = self.usage + step.usage
        return step

    def finish(self, status: Status, *, message: str | None = None, answer: str | None = None) -> Episode:
        """Write ``episode.json`` (atomically) and close the episode."""
        episode = self.summarize(status, message=message, answer=answer)
        write_episode(episode)
        return episode

    def summarize(self, status: Status, *, message: str | None = None, answer: str | None = None) -> Episode:
        """Close ``steps.jsonl`` and return the finished Episode without writing ``episode.json`` yet."""
        self._lines.close()
        message, answer = self.redactor.redact(message), self.redactor.redact(answer)
        episode = self.start.ended(
            status, message=message, answer=answer, num_steps=len(self.steps), ended_at=time.time(), usage=self.usage
        )
        episode.path = str(self.path)
        episode.steps = list(self.steps)
        return episode


def write_episode(episode: Episode) -> None:
    """Write ``episode.json`` into ``episode.path`` atomically: from then on the episode counts as finished."""
    if episode.path is None:
        raise ValueError(f"episode {episode.id} has no folder (episode.path is None)")
    _atomic_write(Path(episode.path) / "episode.json", episode.model_dump_json(indent=2).encode())


#: The largest task.json or episode.json read, and the longest line of steps.jsonl.
MAX_JSON_BYTES = 16 * 1024 * 1024


class EpisodeError(ValueError):
    """An episode folder that cannot be read. ``str(err)`` names the file and the problem in one line."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = str(path), problem


class _Shape(BaseModel):
    """What readers rely on in a recorded dict: these keys, when present, have these types (and
    anything else may be there too)."""

    model_config = ConfigDict(extra="allow", strict=True)


class _ActionShape(_Shape):
    action: str
    x: int | None = None
    y: int | None = None
    x2: int | None = None
    y2: int | None = None
    dx: int | None = None
    dy: int | None = None
    text: str | None = None
    keys: list[str] | None = None
    url: str | None = None
    name: str | None = None
    status: str | None = None

    @model_validator(mode="after")
    def _points(self) -> _ActionShape:
        if (self.x is None) != (self.y is None) or (self.x2 is None) != (self.y2 is None):
            raise ValueError("a point needs both its coordinates")
        if self.action in ("drag", "swipe") and self.x2 is None:
            raise ValueError(f"a {self.action} needs its end point (x2, y2)")
        return self


class _ObservationShape(_Shape):
    width: Annotated[int, Field(gt=0)] | None = None
    height: Annotated[int, Field(gt=0)] | None = None
    input_width: Annotated[int, Field(gt=0)] | None = None
    input_height: Annotated[int, Field(gt=0)] | None = None
    url: str | None = None
    title: str | None = None
    text: str | None = None
    events: list[str] | None = None


class _OutcomeShape(_Shape):
    ok: bool = True
    error: str | None = None
    info: dict[str, Any] | None = None


class _TargetShape(_Shape):
    text: str | None = None
    box: Annotated[list[float], Field(min_length=4, max_length=4)] | None = None


class _ReplayShape(_Shape):
    match: bool
    distance: float
    threshold: float
    healed: bool = False


class _PromptShape(_Shape):
    setup: dict[str, Any]
    task: str | None = None
    history_from: Annotated[int, Field(ge=0)] | None = None


class _ExtraShape(_Shape):
    target: _TargetShape | None = None
    replay: _ReplayShape | None = None
    prompt: _PromptShape | None = None


class _StepShape(_Shape):
    index: Annotated[int, Field(ge=0)]
    grid: Annotated[int, Field(ge=1, le=1000)] = 1000
    model_image: tuple[Annotated[int, Field(gt=0)], Annotated[int, Field(gt=0)]] | None = None
    action: _ActionShape
    observation: _ObservationShape
    outcome: _OutcomeShape = _OutcomeShape()
    extra: _ExtraShape = _ExtraShape()


def _read(path: Path, limit: int = MAX_JSON_BYTES) -> str:
    """A whole small file as text; EpisodeError when it is missing, too large, empty or not UTF-8."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise EpisodeError(path, f"cannot read the file ({e.strerror})") from None
    if len(data) > limit:
        raise EpisodeError(path, f"the file is larger than {limit // (1024 * 1024)} MB")
    if not data.strip():
        raise EpisodeError(path, "the file is empty")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise EpisodeError(path, f"not UTF-8 text (byte {e.start}): a binary file?") from None


def _problem(e: ValidationError) -> str:
    """The first thing wrong, in one line: where and what."""
    err = e.errors()[0]
    where = ".".join(str(x) for x in err["loc"])
    return f"{where + ': ' if where else ''}{err['msg']}"


def _step(line: str, n: int, folder: Path) -> Step:
    """Line ``n`` (counting from 1) of steps.jsonl as a Step, checked as far as every reader relies on it."""
    try:
        step = Step.model_validate_json(line)
        _StepShape.model_validate_json(line)
    except ValidationError as e:
        raise EpisodeError(folder / "steps.jsonl", f"line {n} is not a step: {_problem(e)}") from None
    if step.index != n - 1:
        raise EpisodeError(folder / "steps.jsonl", f"line {n} says it is step {step.index}")
    shot = (folder / step.screenshot).resolve()
    if shot.parent != (folder / "screenshots").resolve() or not shot.is_file():
        raise EpisodeError(folder / "steps.jsonl", f"line {n}: no screenshot {step.screenshot!r} in the episode")
    return step


def _steps(folder: Path) -> list[Step]:
    """The steps of steps.jsonl. A last line without its newline was cut short by a crash and is left
    out; any other line that is not a step is an EpisodeError."""
    path = folder / "steps.jsonl"
    steps: list[Step] = []
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return steps
    except OSError as e:
        raise EpisodeError(path, f"cannot read the file ({e.strerror})") from None
    with f:
        n = 0
        while raw := f.readline(MAX_JSON_BYTES + 1):
            n += 1
            if not raw.endswith(b"\n"):
                if len(raw) > MAX_JSON_BYTES:
                    raise EpisodeError(path, f"line {n} is longer than {MAX_JSON_BYTES // (1024 * 1024)} MB")
                break  # the line a crash cut short: everything before it is whole
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise EpisodeError(path, f"line {n} is not UTF-8 text (byte {e.start}): a binary file?") from None
            if line.strip():
                steps.append(_step(line, len(steps) + 1, folder))
    return steps


def load_episode(path: str | os.PathLike[str]) -> Episode:
    """Read an episode folder back, finished or not.

    An episode whose process died has no ``episode.json``: it loads with status ``interrupted``
    and every step whose line was completely written. Raises :class:`EpisodeError` (the file and the
    problem, in one line) for a folder that cannot be read: an empty, binary or malformed
    ``task.json`` or ``episode.json``, a line of ``steps.jsonl`` that is not a step, a missing screenshot.
    """
    path = Path(path)
    if not (path / "task.json").exists():
        raise FileNotFoundError(f"{path} is not a pixelpilot episode folder (no task.json)")
    steps = _steps(path)
    done = path / "episode.json"
    model: type[EpisodeStart] = Episode if done.exists() else EpisodeStart
    source = done if done.exists() else path / "task.json"
    try:
        start = model.model_validate_json(_read(source))
    except ValidationError as e:
        raise EpisodeError(source, f"not an episode: {_problem(e)}") from None
    if isinstance(start, Episode):
        episode = start
    else:
        usage = Usage()
        for st in steps:
            if st.usage:
                usage = usage + st.usage
        episode = start.ended(
            "interrupted",
            message="the run stopped before the episode ended",
            num_steps=len(steps),
            usage=usage,
            finished=False,
        )
    episode.path = str(path)
    episode.steps = steps
    return episode


@dataclass
class LoadedEpisodes:
    """Episodes read from folders, and the folders that could not be read."""

    episodes: list[Episode] = field(default_factory=list)
    #: Episode folder → what is wrong with it, in one line (the file and the problem).
    skipped: dict[str, str] = field(default_factory=dict)


def load_episodes(paths: Iterable[str | os.PathLike[str]]) -> LoadedEpisodes:
    """Every episode under ``paths`` (episode folders, or folders holding them); one that cannot be read
    is skipped and named in ``skipped``, the others still load."""
    loaded = LoadedEpisodes()
    for folder in find_episodes(paths):
        try:
            loaded.episodes.append(load_episode(folder))
        except EpisodeError as e:
            loaded.skipped[str(folder)] = str(e)
    return loaded


def list_episodes(root: str | os.PathLike[str]) -> list[Path]:
    """Episode folders under ``root`` (any depth), oldest first."""
    return sorted((p.parent for p in Path(root).rglob("task.json")), key=lambda p: p.name)


def find_episodes(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Episode folders from paths that are episode folders or folders holding episodes."""
    found: list[Path] = []
    for p in map(Path, paths):
        if (p / "task.json").exists():
            found.append(p)
        elif p.is_dir() and (inside := list_episodes(p)):
            found.extend(inside)
        else:
            raise FileNotFoundError(f"{p} is neither an episode folder (with task.json) nor a folder of episodes")
    return found
