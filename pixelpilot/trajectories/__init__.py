"""Episodes on disk: the format, the crash-safe recorder and the loader; exports, viewer and stats."""

from .export import ExportError, ExportReport, export_episodes
from .format import FORMAT, Episode, EpisodeStart, Status, Step, Usage
from .recorder import (
    EpisodeError,
    EpisodeWriter,
    LoadedEpisodes,
    Recorder,
    find_episodes,
    list_episodes,
    load_episode,
    load_episodes,
    write_episode,
)
from .redact import Redactor
from .stats import Stats, compute_stats, stats_for
from .viewer import render_episode, write_report

__all__ = [
    "FORMAT",
    "Episode",
    "EpisodeError",
    "EpisodeStart",
    "EpisodeWriter",
    "ExportError",
    "ExportReport",
    "LoadedEpisodes",
    "Recorder",
    "Redactor",
    "Stats",
    "Status",
    "Step",
    "Usage",
    "compute_stats",
    "export_episodes",
    "find_episodes",
    "list_episodes",
    "load_episode",
    "load_episodes",
    "render_episode",
    "stats_for",
    "write_episode",
    "write_report",
]
