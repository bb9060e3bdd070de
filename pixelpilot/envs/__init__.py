"""Environments: each turns an Action into real input events and returns what the screen shows.

:class:`Env` is the contract and :func:`make` builds one by name; the capability classes say what
an env can do beyond it. Optional dependencies (playwright, mss, python-xlib, adbutils, …) are
imported when an environment class is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import base
from .base import *  # noqa: F403 - the contract: base.__all__
from .registry import ENV_CLASSES, make
from .urlpolicy import NavigationBlocked, UrlPolicy, UrlPolicyError, UrlVerdict

if TYPE_CHECKING:
    from .android import AndroidEnv
    from .browser import BrowserEnv
    from .chromium import SharedChromium
    from .desktop import DesktopEnv
    from .fake import FakeEnv
    from .mobile_web import MobileWebEnv

__all__ = [
    *base.__all__,
    "ENV_CLASSES",
    "AndroidEnv",
    "BrowserEnv",
    "DesktopEnv",
    "FakeEnv",
    "MobileWebEnv",
    "NavigationBlocked",
    "SharedChromium",
    "UrlPolicy",
    "UrlPolicyError",
    "UrlVerdict",
    "make",
]

_LAZY = {
    "BrowserEnv": "browser",
    "DesktopEnv": "desktop",
    "AndroidEnv": "android",
    "MobileWebEnv": "mobile_web",
    "FakeEnv": "fake",
    "SharedChromium": "chromium",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(name)
