"""The scoreboard: evaluation runs side by side on one HTML page.

``write_scoreboard([a, b], out)`` reads each ``results.json`` and writes one page. Per suite: a
headline row per run (success with its 95% interval, mean reward), then per task each run's success
rate, mean reward, steps and time, with each later run's difference from the first, expandable to
the trials, which link to the episodes' viewer pages; then the breakdowns (the grounding eval's by
source, element type and image size) and the tasks that need what pixelpilot's action space lacks.

The page is one file with its style inlined. The viewer pages are written beside it, in
``<name>-episodes/``, and reference their screenshots where the episodes lie.
"""

from __future__ import annotations

import html
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..trajectories import EpisodeError, load_episode
from ..trajectories.viewer import render_episode
from .results import Group, Results, TaskResult, Trial, load_results

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1400px; padding: 16px 24px; color: #222; }
h1 { font-size: 22px; margin: 8px 0; } h2 { font-size: 19px; margin: 28px 0 8px; } h3 { font-size: 15px; margin: 18px 0 6px; }
.wide { overflow-x: auto; }
table { border-collapse: collapse; } td, th { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f5f5f5; } td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.up { color: #2e7d32; } .down { color: #c62828; } .same, .missing, .ci { color: #888; }
tr.trials > td { border-bottom: 1px solid #ddd; padding: 0 8px 2px 24px; font-size: 12px; }
tr.trials summary { color: #666; cursor: pointer; } tr.trials table { margin: 4px 0 8px; }
.badge { display: inline-block; padding: 0 6px; border-radius: 8px; font-size: 11px; background: #fff3e0; color: #e65100; }
.ok { color: #2e7d32; } .fail { color: #c62828; } code { font: 12px/1.4 ui-monospace, monospace; }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


@dataclass
class _Run:
    """One results file on the page."""

    results: Results
    source: Path
    label: str
    #: (task id, trial id) -> the trial's viewer page, relative to the scoreboard.
    pages: dict[tuple[str, str], str] = field(default_factory=dict)


def write_scoreboard(
    results: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
) -> Path:
    """Write the scoreboard comparing ``results`` (``results.json`` files, or folders holding one) to ``out``.

    Runs are compared with the first of their suite: differences read "this run minus the first".
    Each trial that has an episode on disk gets a viewer page in ``<out name>-episodes/run<k>/``.
    Returns ``out``.

    >>> write_scoreboard(["eval/base", "eval/tuned"], "compare.html")  # doctest: +SKIP
    """
    if not results:
        raise ValueError("write_scoreboard needs at least one results file")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    runs: list[_Run] = []
    seen: dict[str, int] = {}
    for k, given in enumerate(results, 1):
        source = Path(given)
        source = source / "results.json" if source.is_dir() else source
        data = load_results(source)
        label = data.run.label
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:  # two runs under one name would be indistinguishable on the page
            label = f"{label} #{seen[label]}"
        run = _Run(data, source, label)
        run.pages = _viewer_pages(run, out.with_name(f"{out.stem}-episodes") / f"run{k}", out.parent)
        runs.append(run)
    out.write_text(_render(runs, out.parent), encoding="utf-8")
    return out


def _viewer_pages(run: _Run, folder: Path, page_dir: Path) -> dict[tuple[str, str], str]:
    """Write a viewer page for every trial whose episode is on disk; their links, relative to ``page_dir``."""
    pages: dict[tuple[str, str], str] = {}
    for task in run.results.tasks:
        for trial in task.trials:
            if not trial.path:
                continue
            episode = run.source.parent / trial.path
            if not (episode / "task.json").exists():
                continue  # the results travelled without their episodes
            try:
                loaded = load_episode(episode)
            except EpisodeError:
                continue  # damaged on disk: the trial stays listed, without a page
            page = folder / f"{episode.name}.html"
            page.parent.mkdir(parents=True, exist_ok=True)
            page.write_text(render_episode(loaded, page_dir=page.parent), encoding="utf-8")
            pages[task.id, trial.id] = Path(os.path.relpath(page, page_dir)).as_posix()
    return pages


# --- figures as text ---------------------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.1%}"


def _num(x: float | None, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _secs(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:.1f} s" if x >= 1 else f"{x * 1000:.0f} ms"


def _ci(ci: tuple[float, float]) -> str:
    return f"95% CI {ci[0]:.1%}–{ci[1]:.1%}"


def _delta(first: float | None, this: float | None, *, rate: bool) -> str:
    """A difference cell: percentage points for rates, plain units otherwise; coloured by sign."""
    if first is None or this is None:
        return '<td class="num missing" data-delta="">—</td>'
    d = this - first
    shown = round(d * 100, 1) if rate else round(d, 3)
    unit = " pp" if rate else ""
    if shown == 0:
        kind, text = "same", f"±0{unit}"
    else:
        kind, text = ("up" if d > 0 else "down"), (f"{shown:+.1f}" if rate else f"{shown:+.3f}") + unit
    return f'<td class="num {kind}" data-delta="{d:.6f}">{_e(text)}</td>'


def _cell(text: str, **data: object) -> str:
    attrs = "".join(f' data-{k}="{_e(v)}"' for k, v in data.items())
    return f'<td class="num"{attrs}>{_e(text)}</td>'


# --- the page ------------------------------------------------------------------------------------


def _render(runs: Sequence[_Run], page_dir: Path) -> str:
    """The whole page: one section per suite, in the order the suites first appear."""
    suites: dict[str, list[_Run]] = {}
    for run in runs:
        suites.setdefault(run.results.suite, []).append(run)
    names = ", ".join(suites)
    body = (
        f"<h1>Scoreboard · {_e(names)}</h1>"
        f"<p>{len(runs)} run{'s' if len(runs) != 1 else ''}; written {_e(time.strftime('%Y-%m-%d %H:%M'))}. "
        "Success is the mean of the tasks' success rates (trials won of trials run in brackets); the "
        "interval is Wilson's over all trials; breakdowns pool the trials. Differences are each run "
        "minus the first run of its suite.</p>"
        + "".join(_suite(name, group, page_dir) for name, group in suites.items())
    )
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>Scoreboard · {_e(names)}</title>"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>\n"
    )


def _suite(name: str, runs: list[_Run], page_dir: Path) -> str:
    limitations: dict[str, str] = {}
    for run in runs:
        limitations.update(run.results.limitations)
    notes = "".join(f"<li><code>{_e(task)}</code>: {_e(why)}</li>" for task, why in sorted(limitations.items()))
    return (
        f'<section class="suite" data-suite="{_e(name)}"><h2>{_e(name)}</h2>'
        + _headline(runs, page_dir)
        + _tasks(runs, limitations)
        + _breakdowns(runs)
        + (
            f'<h3>Limitations</h3><p>These tasks need what pixelpilot\'s action space lacks; they ran and count.</p><ul class="limitations">{notes}</ul>'
            if notes
            else ""
        )
        + "</section>"
    )


def _headline(runs: list[_Run], page_dir: Path) -> str:
    first = runs[0].results.summary
    head = (
        "<tr><th>run</th><th>model</th><th>tasks</th><th>trials</th><th>success</th><th>95% CI</th>"
        "<th>mean reward</th><th>mean steps</th><th>mean time</th><th>Δ success</th><th>Δ reward</th>"
        "<th>results</th></tr>"
    )
    rows = []
    for k, run in enumerate(runs):
        r, s = run.results, run.results.summary
        model = r.run.model or ", ".join(r.run.model_urls) or "—"
        if r.run.profile:
            model += f" ({r.run.profile})"
        deltas = (
            _delta(first.success_rate, s.success_rate, rate=True) + _delta(first.mean_reward, s.mean_reward, rate=False)
            if k
            else '<td class="same">first</td><td></td>'
        )
        source = Path(os.path.relpath(run.source, page_dir)).as_posix()
        rows.append(
            f'<tr class="run" data-run="{k}"><th>{_e(run.label)}</th><td>{_e(model)}</td>'
            + _cell(str(s.tasks), figure="tasks")
            + _cell(str(s.trials), figure="trials")
            + _cell(f"{_pct(s.success_rate)} ({s.successes}/{s.trials})", figure="success")
            + f'<td class="num ci" data-figure="ci">{_e(_ci(s.ci95))}</td>'
            + _cell(_num(s.mean_reward), figure="reward")
            + _cell(_num(s.mean_steps, 1), figure="steps")
            + _cell(_secs(s.mean_seconds), figure="seconds")
            + deltas
            + f'<td><a href="{_e(source)}"><code>{_e(source)}</code></a></td></tr>'
        )
    return f'<div class="wide"><table class="headline">{head}{"".join(rows)}</table></div>'


def _task_cells(task: TaskResult | None, k: int) -> str:
    if task is None:
        return '<td class="missing" colspan="4">not run</td>'
    f = task.figures()
    return (
        _cell(f"{_pct(f['success_rate'])} ({f['successes']}/{f['n']})", run=k, figure="success")
        + _cell(_num(f["mean_reward"]), run=k, figure="reward")
        + _cell(_num(f["mean_steps"], 1), run=k, figure="steps")
        + _cell(_secs(f["mean_seconds"]), run=k, figure="seconds")
    )


def _tasks(runs: list[_Run], limitations: dict[str, str]) -> str:
    by_run = [{t.id: t for t in run.results.tasks} for run in runs]
    ids = list(dict.fromkeys(t.id for run in runs for t in run.results.tasks))
    later = runs[1:]
    head = (
        '<tr><th rowspan="2">task</th>'
        + "".join(f'<th colspan="4">{_e(run.label)}</th>' for run in runs)
        + "".join(f'<th colspan="2">Δ {_e(run.label)} − {_e(runs[0].label)}</th>' for run in later)
        + "</tr><tr>"
        + "<th>success</th><th>reward</th><th>steps</th><th>time</th>" * len(runs)
        + "<th>success</th><th>reward</th>" * len(later)
        + "</tr>"
    )
    width = 1 + 4 * len(runs) + 2 * len(later)
    rows = []
    for task_id in ids:
        tasks = [tasks.get(task_id) for tasks in by_run]
        badge = (
            f' <span class="badge" title="{_e(limitations[task_id])}">limited</span>' if task_id in limitations else ""
        )
        cells = "".join(_task_cells(t, k) for k, t in enumerate(tasks))
        base = tasks[0]
        for t in tasks[1:]:
            if base is None or t is None:
                cells += '<td class="missing" colspan="2">—</td>'
            else:
                cells += _delta(base.success_rate, t.success_rate, rate=True)
                cells += _delta(base.figures()["mean_reward"], t.figures()["mean_reward"], rate=False)
        rows.append(f'<tr class="task" data-task="{_e(task_id)}"><th>{_e(task_id)}{badge}</th>{cells}</tr>')
        rows.append(_trials_row(runs, tasks, width))
    return (
        f"<h3>Tasks ({len(ids)})</h3>"
        f'<div class="wide"><table class="tasks"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table></div>'
    )


def _extra(trial: Trial) -> str:
    parts = [trial.message] if trial.message else []
    parts += [f"{k}: {_plain(v)}" for k, v in trial.extra.items()]
    return " · ".join(parts)


def _plain(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_plain(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _trials_row(runs: list[_Run], tasks: list[TaskResult | None], width: int) -> str:
    rows = []
    for run, task in zip(runs, tasks, strict=True):
        if task is None:
            continue
        for trial in task.trials:
            href = run.pages.get((task.id, trial.id))
            name = f'<a class="episode" href="{_e(href)}">{_e(trial.id)}</a>' if href else _e(trial.id)
            mark = '<span class="ok">✓</span>' if trial.success else '<span class="fail">✗</span>'
            rows.append(
                f'<tr class="trial" data-success="{str(trial.success).lower()}"><td>{_e(run.label)}</td>'
                f"<td>{name}</td><td>{mark}</td><td>{_e(trial.status or '')}</td>"
                + _cell("" if trial.seed is None else str(trial.seed))
                + _cell(_num(trial.reward))
                + _cell(_num(trial.raw_reward))
                + _cell("" if trial.steps is None else str(trial.steps))
                + _cell("" if trial.seconds is None else _secs(trial.seconds))
                + f"<td>{_e(_extra(trial))}</td></tr>"
            )
    n = len(rows)
    return (
        f'<tr class="trials"><td colspan="{width}"><details><summary>{n} trial{"s" if n != 1 else ""}</summary>'
        "<table><tr><th>run</th><th>trial</th><th></th><th>status</th><th>seed</th><th>reward</th>"
        f"<th>raw reward</th><th>steps</th><th>time</th><th>notes</th></tr>{''.join(rows)}</table>"
        "</details></td></tr>"
    )


def _group_cells(g: Group | None, k: int) -> str:
    if g is None:
        return '<td class="missing" colspan="2">—</td>'
    return _cell(f"{_pct(g.success_rate)} ({g.successes}/{g.n})", run=k, figure="success") + (
        f'<td class="num ci">{_e(_ci(g.ci95))}</td>'
    )


def _breakdowns(runs: list[_Run]) -> str:
    names = list(dict.fromkeys(name for run in runs for name in run.results.breakdowns))
    parts = []
    for name in names:
        per_run = [run.results.breakdowns.get(name, {}) for run in runs]
        values = list(dict.fromkeys(v for groups in per_run for v in groups))
        head = (
            f"<tr><th>{_e(name)}</th>"
            + "".join(f'<th colspan="2">{_e(run.label)}</th>' for run in runs)
            + "".join(f"<th>Δ {_e(run.label)}</th>" for run in runs[1:])
            + "</tr>"
        )
        rows = []
        for value in values:
            groups = [g.get(value) for g in per_run]
            deltas = "".join(
                _delta(groups[0].success_rate if groups[0] else None, g.success_rate if g else None, rate=True)
                for g in groups[1:]
            )
            cells = "".join(_group_cells(g, k) for k, g in enumerate(groups))
            rows.append(f'<tr data-value="{_e(value)}"><th>{_e(value)}</th>{cells}{deltas}</tr>')
        parts.append(
            f'<h3>By {_e(name)}</h3><div class="wide"><table class="breakdown" data-breakdown="{_e(name)}">'
            f"{head}{''.join(rows)}</table></div>"
        )
    return "".join(parts)
