"""The collect task file (JSON Lines, one task per line) and the episodes it plans.

A line holds the fields of :class:`~pixelpilot.actions.Task` plus an optional ``id`` and an optional
``checker`` (:mod:`pixelpilot.agent.checkers`). Each task runs ``rollouts`` times; every episode's id
is fixed by its task and rollout (``add-milk-r0``, ``add-milk-r1`` …), which is what makes a stopped
collection resumable.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ...actions import Task
from ..checkers import Checker, CheckerError
from ..scenario import Checked, Scenario
from ..script import ScriptError, compile_step
from ..taskfile import TaskFileError, read_task_text

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$")
#: The largest task file read (tens of thousands of tasks), and the longest line in it.
MAX_TASKS_FILE_BYTES = 64 * 1024 * 1024
MAX_TASK_LINE_CHARS = 1024 * 1024


class TaskSpec(BaseModel):
    """One task to collect: a line of a task file (a task, its id, its success check), or a
    benchmark suite's task, which brings its own program (:mod:`pixelpilot.agent.scenario`)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    id: str
    task: Task
    checker: Checker | None = None
    #: How the task starts and is judged; a checker alone makes a :class:`Checked` scenario.
    scenario: Scenario | None = None

    def episode_scenario(self) -> Scenario | None:
        """The scenario each of this task's episodes runs with."""
        if self.scenario is not None:
            return self.scenario
        return Checked(self.checker) if self.checker is not None else None


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
    if not isinstance(fields.get("steps") or [], list):
        raise TaskFileError(path, line, 'steps: a list of steps, like [{"click": "Sign in"}]')
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
    text = read_task_text(path, MAX_TASKS_FILE_BYTES)
    specs: list[TaskSpec] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if len(line) > MAX_TASK_LINE_CHARS:
            raise TaskFileError(path, lineno, f"the line is longer than {MAX_TASK_LINE_CHARS} characters")
        try:
            data = json.loads(line)
        except json.JSONDecodeError as e:
            raise TaskFileError(path, lineno, f"not valid JSON: {e.msg} (column {e.colno})") from None
        except RecursionError:
            raise TaskFileError(path, lineno, "the line nests deeper than a task can") from None
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


@dataclass(frozen=True)
class EpisodeSpec:
    """One episode to run: a task's rollout, how it starts and is judged, and the model server it sticks to."""

    id: str
    task: Task
    scenario: Scenario | None = None
    rollout: int = 0
    #: The model server this episode talks to for its whole run (None for scripted tasks).
    server: str | None = None


def plan(tasks: Sequence[TaskSpec], rollouts: int = 1, *, first_seed: int = 0) -> list[EpisodeSpec]:
    """Every episode of a collection, task by task, rollout by rollout.

    A task with a scenario gets its rollout's seed in ``task.metadata["seed"]`` (``first_seed`` plus
    the rollout), which the scenario starts its episode from: rollout k of a benchmark task is the same
    problem in every run.
    """
    if rollouts < 1:
        raise ValueError(f"rollouts must be at least 1, got {rollouts}")
    specs = []
    for t in tasks:
        scenario = t.episode_scenario()
        for k in range(rollouts):
            task = t.task
            if t.scenario is not None:
                task = task.model_copy(update={"metadata": {**task.metadata, "seed": first_seed + k}})
            specs.append(EpisodeSpec(f"{t.id}-r{k}", task, scenario, k))
    return specs


def is_done(out: str | os.PathLike[str], episode_id: str) -> bool:
    """Whether the episode finished in an earlier run (its ``episode.json`` exists)."""
    return (Path(out) / episode_id / "episode.json").exists()
