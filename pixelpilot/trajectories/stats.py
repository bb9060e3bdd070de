"""Figures over many episodes: how they ended, how long they were, what they cost, where time went."""

from __future__ import annotations

import os
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .format import Episode, Usage
from .recorder import load_episodes


@dataclass
class PhaseTime:
    """Milliseconds spent in one phase (observe, decide, execute, record …) over all steps."""

    count: int
    total_ms: float
    mean_ms: float
    p50_ms: float
    p95_ms: float


@dataclass
class Stats:
    episodes: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    steps: int = 0
    steps_per_episode: dict[str, float] = field(default_factory=dict)
    actions: dict[str, int] = field(default_factory=dict)
    failed_actions: int = 0
    usage: Usage = field(default_factory=Usage)
    phases: dict[str, PhaseTime] = field(default_factory=dict)
    duration_s: float = 0.0
    #: Over the episodes a checker scored (collected ones): how many, the mean reward, how many got 1.
    rewards: dict[str, float] = field(default_factory=dict)
    #: Episode folders that could not be read: folder → the file and the problem, in one line.
    skipped: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        out = asdict(self)
        out["usage"] = self.usage.model_dump()
        return out


def _quantile(sorted_values: list[float], q: float) -> float:
    # Nearest rank: a value that really occurred, and defined for one sample.
    return sorted_values[min(len(sorted_values) - 1, max(0, round(q * len(sorted_values) + 0.5) - 1))]


def compute_stats(episodes: Iterable[Episode]) -> Stats:
    """Counts, tokens and time per phase over loaded episodes."""
    eps = list(episodes)
    st = Stats(episodes=len(eps))
    st.by_status = dict(Counter(e.status for e in eps).most_common())
    lengths = [len(e.steps) for e in eps]
    st.steps = sum(lengths)
    if lengths:
        st.steps_per_episode = {
            "min": min(lengths),
            "mean": round(statistics.fmean(lengths), 2),
            "median": statistics.median(lengths),
            "max": max(lengths),
        }
    phases: dict[str, list[float]] = {}
    actions: Counter[str] = Counter()
    for e in eps:
        st.usage = st.usage + e.usage
        st.duration_s += e.duration_s or 0.0
        for s in e.steps:
            actions[s.action.get("action", "?")] += 1
            st.failed_actions += not s.outcome.get("ok", True)
            for phase, ms in s.timings.items():
                phases.setdefault(phase, []).append(ms)
    st.actions = dict(actions.most_common())
    scored = [e.reward for e in eps if e.reward is not None]
    if scored:
        st.rewards = {
            "scored": len(scored),
            "mean": round(statistics.fmean(scored), 3),
            "full": sum(r >= 1.0 for r in scored),
        }
    for phase, values in phases.items():
        values.sort()
        st.phases[phase] = PhaseTime(
            count=len(values),
            total_ms=round(sum(values), 1),
            mean_ms=round(statistics.fmean(values), 1),
            p50_ms=round(_quantile(values, 0.5), 1),
            p95_ms=round(_quantile(values, 0.95), 1),
        )
    return st


def stats_for(paths: Iterable[str | os.PathLike[str]]) -> Stats:
    """Stats over episode folders, or folders holding episodes (those that cannot be read are
    counted in ``skipped``, not in the figures)."""
    loaded = load_episodes(paths)
    st = compute_stats(loaded.episodes)
    st.skipped = loaded.skipped
    return st


def format_stats(st: Stats) -> str:
    """A plain-text summary for the terminal."""
    lines = [f"episodes: {st.episodes}  ({', '.join(f'{k} {v}' for k, v in st.by_status.items()) or 'none'})"]
    if st.skipped:
        lines.append(f"skipped: {len(st.skipped)} that could not be read")
    spe = st.steps_per_episode
    lines.append(
        f"steps: {st.steps}"
        + (
            f"  per episode min {spe['min']} · mean {spe['mean']} · median {spe['median']} · max {spe['max']}"
            if spe
            else ""
        )
    )
    if st.actions:
        lines.append(
            "actions: "
            + ", ".join(f"{k} {v}" for k, v in st.actions.items())
            + (f"  ({st.failed_actions} failed)" if st.failed_actions else "")
        )
    u = st.usage
    lines.append(f"tokens: {u.prompt_tokens} prompt · {u.completion_tokens} completion · {u.cached_tokens} cached")
    if st.rewards:
        r = st.rewards
        lines.append(f"reward: mean {r['mean']:.3f} over {r['scored']} scored episodes ({r['full']} at 1)")
    lines.append(f"time: {st.duration_s:.1f} s in episodes")
    if st.phases:
        lines.append(f"  {'phase':<10}{'steps':>7}{'total s':>10}{'mean ms':>10}{'p50 ms':>10}{'p95 ms':>10}")
        for name, p in st.phases.items():
            lines.append(
                f"  {name:<10}{p.count:>7}{p.total_ms / 1000:>10.1f}{p.mean_ms:>10.1f}"
                f"{p.p50_ms:>10.1f}{p.p95_ms:>10.1f}"
            )
    return "\n".join(lines)
