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
which it holds alone until it ends.

The parts, one module each: ``tasks`` (the task file and the plan), ``envpool`` (where envs come
from), ``episode`` (one episode, its limit and its reward), ``driver`` (N at a time, servers,
progress), ``ray_actors`` (the same episode runner inside Ray actors).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .driver import CollectSummary, ServerPool, check_servers, collect, collect_sync, drive
from .envpool import EnvPool
from .episode import EpisodeResult, EpisodeRunner, Policies, RunnerConfig
from .tasks import EpisodeSpec, TaskSpec, is_done, load_tasks, parse_task_line, parse_tasks, plan

if TYPE_CHECKING:
    from .ray_actors import ray_collect

__all__ = [
    "CollectSummary",
    "EnvPool",
    "EpisodeResult",
    "EpisodeRunner",
    "EpisodeSpec",
    "Policies",
    "RunnerConfig",
    "ServerPool",
    "TaskSpec",
    "check_servers",
    "collect",
    "collect_sync",
    "drive",
    "is_done",
    "load_tasks",
    "parse_task_line",
    "parse_tasks",
    "plan",
    "ray_collect",
]


def __getattr__(name: str) -> Any:
    if name == "ray_collect":  # Ray is an optional extra: imported when first asked for
        from .ray_actors import ray_collect

        return ray_collect
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
