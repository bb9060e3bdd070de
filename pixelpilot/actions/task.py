"""A task: what the agent is asked to do, and where."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .vars import VarSpec

EnvKind = Literal["browser", "desktop", "mobile"]
#: The environment a task runs in: ``--env`` of ``pixelpilot run``.
EnvName = Literal["browser", "mobile-web", "desktop", "android"]


class Task(BaseModel):
    """An instruction plus the environment it runs in.

    ``steps`` holds an exact script (see ``pixelpilot.agent.script``); without it a model decides.
    """

    model_config = ConfigDict(extra="forbid")

    instruction: str = Field(min_length=1)
    name: str | None = None
    env: EnvKind = "browser"
    url: str | None = None
    max_steps: int | None = Field(default=None, ge=1)
    steps: list[dict[str, Any]] | None = None
    #: Variables the steps refer to as ``${NAME}``: literals, or ``{env: NAME, secret: true}`` specs
    #: (the values of those are read when the task runs and never stored).
    vars: dict[str, VarSpec] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def runs_in(self) -> EnvName:
        """The environment: a browser, a desktop, and for a ``mobile`` task a phone's browser when
        it has a ``url``, else an Android phone."""
        if self.env == "mobile":
            return "mobile-web" if self.url else "android"
        return self.env

    @classmethod
    def coerce(cls, task: Task | str) -> Task:
        return task if isinstance(task, Task) else cls(instruction=task)
