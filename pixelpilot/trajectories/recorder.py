"""Writes episodes to disk as they happen, so that a crash loses nothing already done."""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

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


def load_episode(path: str | os.PathLike[str]) -> Episode:
    """Read an episode folder back, finished or not.

    An episode whose process died has no ``episode.json``: it loads with status ``interrupted``
    and every step whose line was completely written.
    """
    path = Path(path)
    if not (path / "task.json").exists():
        raise FileNotFoundError(f"{path} is not a pixelpilot episode folder (no task.json)")
    steps: list[Step] = []
    lines = path / "steps.jsonl"
    if lines.exists():
        for line in lines.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                steps.append(Step.model_validate_json(line))
            except ValueError:
                break  # a line cut short by a crash: everything before it is whole
    done = path / "episode.json"
    if done.exists():
        episode = Episode.model_validate_json(done.read_text(encoding="utf-8"))
    else:
        s = EpisodeStart.model_validate_json((path / "task.json").read_text(encoding="utf-8"))
        usage = Usage()
        for st in steps:
            if st.usage:
                usage = usage + st.usage
        episode = s.ended(
            "interrupted",
            message="the run stopped before the episode ended",
            num_steps=len(steps),
            usage=usage,
            finished=False,
        )
    episode.path = str(path)
    episode.steps = steps
    return episode


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
