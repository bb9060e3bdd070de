"""Environments: each turns an Action into real input events and returns what the screen shows.

Optional dependencies (playwright, mss, python-xlib, adbutils, …) are imported when an environment
class is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import Box, Env, EnvCrashed, EnvError
from .urlpolicy import NavigationBlocked, UrlPolicy, UrlPolicyError, UrlVerdict

if TYPE_CHECKING:
    from .android import AndroidEnv
    from .browser import BrowserEnv
    from .desktop import DesktopEnv
    from .mobile_web import MobileWebEnv

__all__ = [
    "AndroidEnv",
    "Box",
    "BrowserEnv",
    "DesktopEnv",
    "Env",
    "EnvCrashed",
    "EnvError",
    "MobileWebEnv",
    "NavigationBlocked",
    "UrlPolicy",
    "UrlPolicyError",
    "UrlVerdict",
]

_LAZY = {"BrowserEnv": "browser", "DesktopEnv": "desktop", "AndroidEnv": "android", "MobileWebEnv": "mobile_web"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(name)
