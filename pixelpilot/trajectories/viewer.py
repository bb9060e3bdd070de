"""Episodes as HTML: one page per episode, and an index over many.

An episode page shows, per step, the screenshot with the action drawn on it (a ring for clicks,
an arrow for drags, swipes and scrolls), the thought, the action, the outcome, timings and
tokens. Pages are self-contained by default (screenshots inlined as data URIs), so one file opens
anywhere; ``inline=False`` references the screenshots relative to the page instead.
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from ..actions import Grid
from .format import Episode, Step
from .recorder import EpisodeError, load_episode, load_episodes

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 16px 24px; color: #222; }
h1 { font-size: 22px; margin: 8px 0; } h2 { font-size: 17px; margin: 0 0 8px; }
.status { display: inline-block; padding: 1px 8px; border-radius: 10px; color: #fff; background: #888; }
.status-success { background: #2e7d32; } .status-failure, .status-env_error, .status-model_error { background: #c62828; }
.step { border-top: 1px solid #ddd; padding: 16px 0; }
.shot { position: relative; display: inline-block; max-width: 100%; border: 1px solid #ccc; }
.shot img { display: block; max-width: 100%; height: auto; }
.shot svg { position: absolute; left: 0; top: 0; width: 100%; height: 100%; pointer-events: none; }
.marker { fill: none; stroke: #e91e63; stroke-width: 4; } .marker .dot { fill: #e91e63; stroke: none; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 8px 0 0; }
dt { color: #666; } dd { margin: 0; white-space: pre-wrap; word-break: break-word; }
code { font: 12px/1.4 ui-monospace, monospace; } .error { color: #c62828; }
table { border-collapse: collapse; width: 100%; } td, th { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left; }
"""

_ARROW = (
    '<defs><marker id="head" viewBox="0 0 10 10" refX="8" refY="5" markerWidth="5" markerHeight="5" '
    'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#e91e63"/></marker></defs>'
)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{_e(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>\n"
    )


def marker_svg(step: Step) -> str:
    """The action drawn in the screenshot's pixel space; empty for actions without a place."""
    a = step.action
    if "x" not in a:
        return ""
    w, h = step.observation.get("width") or 1, step.observation.get("height") or 1
    g = Grid(step.grid)
    x, y = g.point_to_pixels(a["x"], a["y"], w, h)
    r = max(8, round(min(w, h) / 50))
    kind = a["action"]
    attrs = f'class="marker marker-{_e(kind)}" data-x="{x}" data-y="{y}"'
    if kind in ("drag", "swipe"):
        x2, y2 = g.point_to_pixels(a["x2"], a["y2"], w, h)
        shape = (
            f'<circle cx="{x}" cy="{y}" r="{r}"/><line x1="{x}" y1="{y}" x2="{x2}" y2="{y2}" marker-end="url(#head)"/>'
        )
    elif kind == "scroll":
        # The arrow points the way the content moves into view; a third of the screen per full screen.
        x2 = x + round(a.get("dx", 0) / step.grid * w / 3)
        y2 = y + round(a.get("dy", 0) / step.grid * h / 3)
        shape = (
            f'<circle class="dot" cx="{x}" cy="{y}" r="{r // 2}"/><line x1="{x}" y1="{y}" x2="{x2}" '
            f'y2="{y2}" marker-end="url(#head)"/>'
        )
    else:
        shape = f'<circle cx="{x}" cy="{y}" r="{r}"/><circle class="dot" cx="{x}" cy="{y}" r="3"/>'
    return f'<svg class="overlay" viewBox="0 0 {w} {h}" preserveAspectRatio="none">{_ARROW}<g {attrs}>{shape}</g></svg>'


def _image_src(episode: Episode, step: Step, page_dir: Path | None) -> str:
    src = Path(episode.path or ".") / step.screenshot
    if page_dir is None:
        return "data:image/png;base64," + base64.b64encode(src.read_bytes()).decode()
    return Path(os.path.relpath(src.resolve(), page_dir.resolve())).as_posix()


def _row(label: str, value: str | None, *, raw: bool = False) -> str:
    if not value:
        return ""
    return f"<dt>{_e(label)}</dt><dd>{value if raw else _e(value)}</dd>"


def _step_html(episode: Episode, step: Step, page_dir: Path | None) -> str:
    a = step.action
    w, h = step.observation.get("width", ""), step.observation.get("height", "")
    outcome = step.outcome
    result = "ok" if outcome.get("ok", True) else f'<span class="error">error: {_e(outcome.get("error"))}</span>'
    info = outcome.get("info") or {}
    if info:
        result += f" <code>{_e(json.dumps(info, ensure_ascii=False))}</code>"
    timings = " · ".join(f"{k} {v:.0f} ms" for k, v in step.timings.items())
    tokens = None
    if step.usage is not None:
        u = step.usage
        tokens = f"{u.prompt_tokens} prompt · {u.completion_tokens} completion · {u.cached_tokens} cached"
    target = (step.extra.get("target") or {}).get("text")
    replay = step.extra.get("replay")
    match = None
    if replay:
        match = (
            f"{'match' if replay['match'] else 'diverged'} (distance {replay['distance']}, "
            f"threshold {replay['threshold']}){' · healed' if replay.get('healed') else ''}"
        )
    img = (
        f'<img class="screenshot" src="{_e(_image_src(episode, step, page_dir))}" width="{_e(w)}" '
        f'height="{_e(h)}" alt="step {step.index} screenshot">'
    )
    return (
        f'<section class="step" id="step-{step.index}" data-step="{step.index}" data-action="{_e(a["action"])}">'
        f"<h2>Step {step.index} · {_e(a['action'])}</h2>"
        f'<div class="shot">{img}{marker_svg(step)}</div><dl>'
        + _row("thought", step.thought)
        + _row("action", f"<code>{_e(json.dumps(a, ensure_ascii=False))}</code>", raw=True)
        + _row("target", target)
        + _row("pixels", f"<code>{_e(json.dumps(step.pixel_action))}</code>" if step.pixel_action else None, raw=True)
        + _row("outcome", result, raw=True)
        + _row("replay", match)
        + _row("timings", timings)
        + _row("tokens", tokens)
        + _row("page", step.observation.get("url"))
        + "</dl></section>"
    )


def render_episode(episode: Episode, *, page_dir: Path | None = None) -> str:
    """One episode as an HTML page; ``page_dir`` set: screenshots referenced relative to it, else inlined."""
    u = episode.usage
    dur = f"{episode.duration_s:.1f} s" if episode.duration_s is not None else "unfinished"
    head = (
        f"<h1>{_e(episode.task.name or episode.id)}</h1>"
        f'<p><span class="status status-{_e(episode.status)}">{_e(episode.status)}</span> '
        f"{_e(episode.message or '')}</p><dl>"
        + _row("task", episode.task.instruction)
        + _row("answer", episode.answer)
        + _row("episode", episode.id)
        + _row("env · policy", f"{episode.env} · {episode.policy}")
        + _row("steps", str(len(episode.steps)))
        + _row("duration", dur)
        + _row("tokens", f"{u.prompt_tokens} prompt · {u.completion_tokens} completion · {u.cached_tokens} cached")
        + "</dl>"
    )
    steps = "".join(_step_html(episode, s, page_dir) for s in episode.steps)
    return _page(f"{episode.id} · {episode.status}", head + steps)


def render_index(episodes: list[Episode], links: dict[str, str], skipped: dict[str, str] | None = None) -> str:
    """An index over episodes: counts by status, then one row per episode linking to its page, then
    the folders that could not be read (``skipped``: folder → why)."""
    counts = Counter(e.status for e in episodes)
    summary = " ".join(
        f'<span class="status status-{_e(s)}" data-status="{_e(s)}">{_e(s)}: {n}</span>'
        for s, n in counts.most_common()
    )
    rows = "".join(
        f'<tr data-status="{_e(e.status)}"><td><a href="{_e(links[e.id])}">{_e(e.id)}</a></td>'
        f"<td>{_e(e.task.instruction)}</td><td>{_e(e.status)}</td><td>{len(e.steps)}</td>"
        f"<td>{e.usage.prompt_tokens + e.usage.completion_tokens}</td>"
        f"<td>{'' if e.duration_s is None else f'{e.duration_s:.1f} s'}</td></tr>"
        for e in episodes
    )
    body = (
        f"<h1>{len(episodes)} episodes</h1><p>{summary}</p><table><thead><tr><th>episode</th><th>task</th>"
        f"<th>status</th><th>steps</th><th>tokens</th><th>duration</th></tr></thead><tbody>{rows}</tbody></table>"
    )
    if skipped:
        items = "".join(f'<li class="error" data-skipped="{_e(k)}">{_e(v)}</li>' for k, v in skipped.items())
        body += f"<h2>{len(skipped)} could not be read</h2><ul>{items}</ul>"
    return _page(f"{len(episodes)} episodes", body)


def write_report(
    paths: Iterable[str | os.PathLike[str]] | str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    inline: bool = True,
    on_skip: Callable[[str], None] | None = None,
) -> Path:
    """Write the HTML for an episode folder, or an index plus one page per episode for a folder of them.

    Returns the page to open: ``out`` (default ``report.html`` in the episode folder, or ``index.html``
    in the folder of episodes). Episode pages of an index sit beside it as ``<episode id>.html``.
    An episode that cannot be read is left out of an index (listed at its end, and passed to
    ``on_skip`` as one line naming the file and the problem); a single one raises
    :class:`~pixelpilot.trajectories.EpisodeError`.
    """
    if isinstance(paths, (str, os.PathLike)):
        single, roots = True, [Path(paths)]
    else:
        single, roots = False, [Path(p) for p in paths]
    if single and (roots[0] / "task.json").exists():
        episode = load_episode(roots[0])
        target = Path(out) if out else roots[0] / "report.html"
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            text = render_episode(episode, page_dir=None if inline else target.parent)
        except OSError as e:  # a screenshot that went away or cannot be read
            raise EpisodeError(roots[0], f"cannot show it: {e}") from None
        target.write_text(text, encoding="utf-8")
        return target
    loaded = load_episodes(roots)
    skipped = dict(loaded.skipped)
    target = Path(out) if out else roots[0] / "index.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    links: dict[str, str] = {}
    shown = []
    for ep in loaded.episodes:
        page = target.parent / f"{ep.id}.html"
        try:
            text = render_episode(ep, page_dir=None if inline else page.parent)
        except OSError as e:
            skipped[str(ep.path)] = f"{ep.path}: cannot show it: {e}"
            continue
        page.write_text(text, encoding="utf-8")
        links[ep.id] = page.name
        shown.append(ep)
    if on_skip is not None:
        for line in skipped.values():
            on_skip(line)
    target.write_text(render_index(shown, links, skipped), encoding="utf-8")
    return target
