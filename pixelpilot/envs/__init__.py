"""Environments: each turns an Action into real input events and returns what the screen shows.

Optional dependencies (playwright, …) are imported when an environment class is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import Box, Env, EnvError

if TYPE_CHECKING:
    from .browser import BrowserEnv

__all__ = ["Box", "BrowserEnv", "Env", "EnvError"]


def __getattr__(name: str) -> Any:
    if name == "BrowserEnv":
        from .browser import BrowserEnv

        return BrowserEnv
    raise AttributeError(name)
