"""Checks a model answers about a screen: ``expect: {that: the cart shows 1 item}``."""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, Field

from ..actions import Observation


class Verdict(BaseModel):
    """A model's structured answer to "is this statement true of the screen?"."""

    passed: bool
    reason: str = Field(default="", max_length=500)


class Judge(Protocol):
    """Decides whether ``statement`` holds for what ``obs`` shows."""

    async def judge(self, obs: Observation, statement: str) -> Verdict: ...
