"""Evaluate models on benchmarks: suites of tasks with their own rewards, run through collect.

``pixelpilot eval miniwob --model-url URL`` runs MiniWoB++ offline; ``pixelpilot eval grounding
DATA`` scores pointing on a grounding export or a ScreenSpot-style file. Every run writes
``results.json`` (one schema for every suite, :mod:`.results`) and ``scoreboard.html``, which
compares runs side by side.
"""

from .grounding import evaluate_grounding, evaluate_grounding_sync
from .results import Results, RunInfo, TaskResult, Trial, load_results, wilson
from .run import evaluate, evaluate_sync
from .scoreboard import write_scoreboard
from .suite import Suite, SuiteError, get_suite, register, suite_names

__all__ = [
    "Results",
    "RunInfo",
    "Suite",
    "SuiteError",
    "TaskResult",
    "Trial",
    "evaluate",
    "evaluate_grounding",
    "evaluate_grounding_sync",
    "evaluate_sync",
    "get_suite",
    "load_results",
    "register",
    "suite_names",
    "wilson",
    "write_scoreboard",
]
