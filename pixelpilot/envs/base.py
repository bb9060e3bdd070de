"""The interface every environment implements."""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

from ..actions import Observation, Outcome, Task


class EnvError(RuntimeError):
    """The environment broke in a way the agent cannot recover from (browser gone, display lost)."""


class EnvCrashed(EnvError):
    """The environment's process died. An env that raises this may offer ``async recover() ->
    Observation`` (a relaunch at the same place); the agent calls it once per episode."""


@runtime_checkable
class Env(Protocol):
    """A screen to look at and a place to send input.

    ``execute`` takes an action in normalized grid units and grounds it into the env's own
    input space. Usable as ``async with env: …``.
    """

    kind: Literal["browser", "desktop", "mobile"]

    async def reset(self, task: Task | None = None) -> Observation: ...

    async def observe(self) -> Observation: ...

    async def execute(self, action: Any) -> Outcome: ...

    async def aclose(self) -> None: ...


class Box(tuple):
    """A rectangle in input-space pixels: (left, top, width, height)."""

    __slots__ = ()

    def __new__(cls, left: float, top: float, width: float, height: float) -> Box:
        return super().__new__(cls, (left, top, width, height))

    @property
    def center(self) -> tuple[float, float]:
        left, top, width, height = self
        return left + width / 2, top + height / 2
