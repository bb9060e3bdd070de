"""Success checks on an episode's final state, so that collected episodes carry a reward.

A task names one check (in a collect task file, as ``"checker": {...}``)::

    {"url": "/todos$"}                              # a regex searched in the final page's URL
    {"text": "Welcome, alice"}                      # text visible on the final page
    {"js": "document.querySelectorAll('li').length"}  # a JavaScript expression in the page
    {"python": "mypackage.checks:added_milk"}       # a Python callable: fn(env, episode)

A check gives 1.0 when it holds and 0.0 when it does not; a JavaScript expression or a Python
callable may also return a number, which is the reward as it is. The JavaScript and the Python
come from the person who wrote the task file, never from the model.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from ..envs import Env, PageScripting, TextQueries, normalize_text
from ..trajectories import Episode

KINDS = ("url", "text", "js", "python")


class CheckerError(ValueError):
    """A check is malformed or cannot run; the message says which and how to fix it."""


def _reward(value: Any, what: str) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    raise CheckerError(f"{what} returned {value!r}; a check must return true/false or a number")


def resolve_callable(name: str) -> Callable[..., Any]:
    """``package.module:function`` (or ``package.module.function``) to the function itself."""
    module, sep, attr = name.partition(":")
    if not sep:
        module, _, attr = name.rpartition(".")
    if not module or not attr:
        raise CheckerError(f"python check {name!r}: give a dotted name like `mypackage.checks:added_milk`")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise CheckerError(f"python check {name!r} cannot be imported ({e}); is its package on the path?") from None
    if not callable(fn):
        raise CheckerError(f"python check {name!r} is not callable")
    return fn


class Checker(BaseModel):
    """One success check; exactly one of its fields is set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: A regular expression searched (``re.search``) in the final page's URL.
    url: str | None = None
    #: Text that must be visible on the final page (case and whitespace are ignored).
    text: str | None = None
    #: A JavaScript expression evaluated in the final page.
    js: str | None = None
    #: A Python callable by dotted name, called as ``fn(env, episode)`` (it may be async).
    python: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Checker:
        given = [k for k in KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f'a checker has exactly one of {", ".join(KINDS)}, e.g. {{"text": "Welcome"}}; got {given or "none"}'
            )
        if self.url is not None:
            try:
                re.compile(self.url)
            except re.error as e:
                raise ValueError(f"url: {self.url!r} is not a valid regular expression ({e})") from None
        return self

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, k) is not None)

    def validate_callable(self) -> None:
        """Import a python check now, so that a typo fails before any episode runs."""
        if self.python is not None:
            resolve_callable(self.python)

    async def score(self, env: Env, episode: Episode) -> float:
        """The reward for ``episode`` ended in ``env`` (whose final state is still open)."""
        if self.python is not None:
            result = resolve_callable(self.python)(env, episode)
            if inspect.isawaitable(result):
                result = await result
            return _reward(result, f"python check {self.python}")
        if self.text is not None:
            if not isinstance(env, TextQueries):
                raise CheckerError(
                    f"a text check needs an env that can read its text; use a python check for {env.kind} envs"
                )
            return _reward(normalize_text(self.text) in normalize_text(await env.page_text()), "text check")
        if not isinstance(env, PageScripting):
            raise CheckerError(f"a {self.kind} check needs a browser page; use a python check for {env.kind} envs")
        if self.url is not None:
            return _reward(re.search(self.url, env.url) is not None, "url check")
        assert self.js is not None
        return _reward(await env.evaluate(self.js), f"js check {self.js!r}")
