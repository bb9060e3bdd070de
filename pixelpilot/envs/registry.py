"""``envs.make(kind, **options)``: the one way to build an env by name (CLI, collect, eval, pytest)."""

from __future__ import annotations

import importlib
from typing import Any

from .base import Env

#: Env names -> "module:Class" (imported on first use, so optional dependencies stay optional).
ENV_CLASSES: dict[str, str] = {
    "browser": "browser:BrowserEnv",
    "mobile-web": "mobile_web:MobileWebEnv",
    "desktop": "desktop:DesktopEnv",
    "android": "android:AndroidEnv",
    "fake": "fake:FakeEnv",
}


def env_class(kind: str) -> type[Env]:
    """The class ``make(kind)`` builds; ValueError naming the known kinds for any other."""
    if kind not in ENV_CLASSES:
        raise ValueError(f"unknown env {kind!r}; known: {', '.join(ENV_CLASSES)}")
    module, name = ENV_CLASSES[kind].split(":")
    cls: type[Env] = getattr(importlib.import_module(f".{module}", __package__), name)
    return cls


def make(kind: str, /, **options: Any) -> Env:
    """A new, unstarted env of ``kind`` ("browser", "mobile-web", "desktop", "android", "fake"),
    built with ``options`` as its constructor's keyword arguments (``kind`` is positional-only, so
    ``make("fake", kind="mobile")`` passes ``kind`` on to FakeEnv).

    >>> make("fake", size=(320, 240)).size
    (320, 240)
    """
    return env_class(kind)(**options)
