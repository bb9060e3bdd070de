"""The episodes a service wrote, as its clients name them: ``<group>/<episode>`` under its folder.

A group is a job (``job-…`` or the id its client gave) or ``session`` (the MCP server's live env).
Names are checked before they touch the disk: two path parts of letters, digits, ``.``, ``_`` and
``-``, so that no name reaches outside the service's folder.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..trajectories import Episode, EpisodeError, list_episodes, load_episode
from ..trajectories.viewer import write_report

_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}$")


def episode_folder(root: str | Path, group: str, episode: str) -> Path:
    """The folder of episode ``group/episode`` under ``root``; LookupError when there is none."""
    if not (_PART.match(group) and _PART.match(episode)):
        raise LookupError(f"no episode {group}/{episode}: names are letters, digits, '.', '_' and '-'")
    folder = Path(root) / group / episode
    if not (folder / "task.json").is_file():
        raise LookupError(f"no episode {group}/{episode}")
    return folder


def split_id(episode_id: str) -> tuple[str, str]:
    """``group/episode`` as its two parts (LookupError when it is not of that shape)."""
    group, _, episode = episode_id.strip("/").partition("/")
    if not episode:
        raise LookupError(f"no episode {episode_id!r}: episode ids look like job-…/task-r0 or session/…")
    return group, episode


def recent_episodes(root: str | Path, limit: int = 20) -> list[dict[str, Any]]:
    """The ``limit`` most recently started episodes under ``root``, newest first, one line each."""
    root = Path(root)
    if not root.is_dir():
        return []
    folders = sorted(list_episodes(root), key=lambda p: (p / "task.json").stat().st_mtime, reverse=True)
    rows = []
    for folder in folders[:limit]:
        try:
            ep = load_episode(folder)
        except (EpisodeError, OSError) as e:
            rows.append({"id": _id(root, folder), "error": str(e)})
            continue
        rows.append({**_head(ep), "id": _id(root, folder)})
    return rows


def episode_summary(folder: Path, root: str | Path) -> dict[str, Any]:
    """An episode in brief: its task, how it ended, and one entry per step (what was done, whether
    it worked, and the client's calls recorded with it)."""
    ep = load_episode(folder)
    steps = []
    for s in ep.steps:
        row: dict[str, Any] = {"index": s.index, "action": s.action, "ok": s.outcome.get("ok", True)}
        if s.outcome.get("error"):
            row["error"] = s.outcome["error"]
        if (target := s.extra.get("target", {}).get("text")) is not None:
            row["target"] = target
        if "calls" in s.extra:
            row["calls"] = [c.get("tool") for c in s.extra["calls"]]
        steps.append(row)
    return {**_head(ep), "id": _id(Path(root), folder), "instruction": ep.task.instruction, "steps": steps}


def episode_json(folder: Path) -> dict[str, Any]:
    """The whole episode: ``episode.json``'s fields (an unfinished one as ``interrupted``) and its steps."""
    ep = load_episode(folder)
    return {
        **json.loads(ep.model_dump_json()),
        "finished": ep.finished,
        "steps": [json.loads(s.model_dump_json()) for s in ep.steps],
    }


def report_html(folder: Path) -> str:
    """The episode's HTML report (``report.html``, screenshots inlined), written now."""
    return write_report(folder).read_text(encoding="utf-8")


def _id(root: Path, folder: Path) -> str:
    return folder.relative_to(root).as_posix()


def _head(ep: Episode) -> dict[str, Any]:
    return {
        "task": ep.task.name or ep.task.instruction[:80],
        "status": ep.status,
        "message": ep.message,
        "answer": ep.answer,
        "reward": ep.reward,
        "num_steps": ep.num_steps,
        "started_at": ep.started_at,
        "path": ep.path,
    }
