"""How an episode ends: the one table from what went wrong to the status it is recorded with.

The loop (runner.py) and the collector (collect/) both go through :func:`status_for`, so the same
failure gets the same status whether it happens inside a step or around the episode (opening its
env, building its policy).
"""

from __future__ import annotations

from ..envs import EnvError, NavigationBlocked
from ..trajectories import Status
from .policy import ModelError


class EpisodeStop(Exception):
    """Ends the episode with ``status`` from inside a step: a budget ran out, the gate refused too
    often, the agent loops. Not an error: the episode is finished normally with that status."""

    def __init__(self, status: Status, message: str) -> None:
        super().__init__(message)
        self.status: Status = status
        self.message = message


#: Expected failures and their statuses, the most specific first (NavigationBlocked is an EnvError).
#: Anything else that escapes a step is a bug: the episode is recorded as ``error`` and the exception
#: goes on up.
STATUS_OF: tuple[tuple[type[Exception], Status], ...] = (
    (NavigationBlocked, "blocked"),
    (EnvError, "env_error"),
    (ModelError, "model_error"),
)


def status_for(error: BaseException) -> Status | None:
    """The status an episode ends with because of ``error``; None when it is a bug (status ``error``)."""
    if isinstance(error, EpisodeStop):
        return error.status
    for kind, status in STATUS_OF:
        if isinstance(error, kind):
            return status
    return None


def describe(error: BaseException) -> str:
    """The episode message for an error: its text, or its type and first line when it is a bug."""
    if isinstance(error, EpisodeStop):
        return error.message
    text = str(error).splitlines()[0] if str(error) else ""
    return text if status_for(error) is not None else f"{type(error).__name__}: {text}".rstrip(": ")
