"""Figures the bench scripts share: robust summaries of timings that a loaded machine makes noisy."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def med(xs: Sequence[float]) -> float:
    """The median, or NaN for no samples."""
    return statistics.median(xs) if xs else float("nan")


def p90(xs: Sequence[float]) -> float:
    """The 90th percentile (inclusive method), or NaN for fewer than two samples."""
    return statistics.quantiles(xs, n=10, method="inclusive")[-1] if len(xs) > 1 else float("nan")


def best_median(rounds: Sequence[Sequence[float]]) -> float:
    """The lowest of the rounds' medians: the figure least disturbed by other work on the machine."""
    return min((med(r) for r in rounds if r), default=float("nan"))
