"""A failed test's episode as one HTML page (a stopgap until the trajectories viewer is on main).

It renders what the recorder wrote, so secrets are already masked.
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path

from ..trajectories import load_episode


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def write_report(episode_dir: str | os.PathLike[str]) -> Path:
    """Write ``report.html`` into an episode folder (screenshots inlined) and return its path."""
    folder = Path(episode_dir)
    ep = load_episode(folder)
    rows = []
    for s in ep.steps:
        png = base64.b64encode((folder / s.screenshot).read_bytes()).decode()
        outcome = "ok" if s.outcome.get("ok", True) else f"error: {s.outcome.get('error')}"
        rows.append(
            f'<section><h3>step {s.index}: {_e(s.action.get("action"))}</h3>'
            f'<img src="data:image/png;base64,{png}" style="max-width:100%;border:1px solid #ccc">'
            f"<pre>{_e(json.dumps(s.action))}\n{_e(s.thought)}\n{_e(s.raw_output or '')}\n{_e(outcome)}"
            f"\n{_e(json.dumps(s.extra) if s.extra else '')}</pre></section>"
        )
    body = (f"<h1>{_e(ep.task.name or ep.id)}: {_e(ep.status)}</h1><p>{_e(ep.message or '')}</p>"
            f"<p>{_e(ep.task.instruction)}</p>{''.join(rows)}")
    out = folder / "report.html"
    out.write_text(f"<!doctype html><meta charset=utf-8><title>{_e(ep.id)}</title>"
                   f"<body style='font:14px sans-serif;max-width:1100px;margin:auto'>{body}</body>\n",
                   encoding="utf-8")
    return out
