"""Episodes on disk: the format, the crash-safe recorder and the loader."""

from .format import FORMAT, Episode, EpisodeStart, Status, Step, Usage
from .recorder import EpisodeWriter, Recorder, list_episodes, load_episode

__all__ = [
    "FORMAT", "Episode", "EpisodeStart", "EpisodeWriter", "Recorder", "Status", "Step", "Usage",
    "list_episodes", "load_episode",
]
