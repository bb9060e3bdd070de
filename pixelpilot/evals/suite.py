"""A suite: a named set of benchmark tasks, each with its own program (a scenario), that ``pixelpilot
eval`` runs through collect.

A suite owns what its tasks need while they run (MiniWoB's pages served on 127.0.0.1, say):
:meth:`Suite.serve` starts it and yields the tasks, whose URLs point at it. Suites register under a
name (:func:`register`), which is how the CLI finds them; ``pixelpilot eval NAME`` runs one.

To add a suite: subclass :class:`Suite`, give it a ``name``, make :meth:`Suite.serve` yield
:class:`~pixelpilot.agent.collect.TaskSpec` objects whose ``scenario`` starts each episode from its
seed (``task.metadata["seed"]``) and judges it, and call :func:`register` on the class.
"""

from __future__ import annotations

import fnmatch
import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import ClassVar

from ..agent.collect import TaskSpec


class SuiteError(ValueError):
    """A suite cannot be found or cannot run here; the message says why and what to do."""


class Suite(ABC):
    """A set of benchmark tasks (see the module docstring)."""

    #: The name ``pixelpilot eval NAME`` selects the suite by.
    name: ClassVar[str]
    #: The browser viewport (CSS pixels) the suite's pages are laid out for; None: the runner's default.
    viewport: tuple[int, int] | None = None
    #: The actions a model is offered on the suite's tasks (None: all its env accepts); a benchmark
    #: whose own action space cannot navigate should not offer ``navigate``.
    actions: ClassVar[tuple[str, ...] | None] = None

    @abstractmethod
    def serve(self) -> AbstractContextManager[list[TaskSpec]]:
        """Start what the tasks need, yield every task of the suite, and stop it all on exit."""

    def limitations(self) -> dict[str, str]:
        """Tasks (by id) that need what pixelpilot's action space lacks, and why. They still run and
        count; the results list them so that nobody reads their scores as the model's fault alone."""
        return {}


_SUITES: dict[str, Callable[[], Suite]] = {}


def register(name: str, factory: Callable[[], Suite]) -> None:
    """Make ``pixelpilot eval NAME`` run the suite ``factory()`` builds."""
    _SUITES[name] = factory


def suite_names() -> list[str]:
    """The names of the registered suites."""
    _load_builtin()
    return sorted(_SUITES)


def get_suite(name: str) -> Suite:
    """The suite called ``name``: a registered one, one a package declares under the
    ``pixelpilot.suites`` entry point group, or a class by dotted name (``mypkg.suites:CounterSuite``).
    SuiteError lists the names when there is none."""
    _load_builtin()
    factory = _SUITES.get(name)
    if factory is None and ":" in name:
        factory = _lazy(name)
    if factory is None:
        raise SuiteError(
            f"no suite called {name!r}; the suites are: {', '.join(sorted(_SUITES))} "
            "(or name a Suite class as package.module:Class)"
        )
    try:
        return factory()
    except (ImportError, AttributeError) as e:
        raise SuiteError(f"suite {name!r} cannot be loaded: {e}") from None


def select(tasks: Sequence[TaskSpec], patterns: str | None) -> list[TaskSpec]:
    """The tasks whose id matches one of the comma-separated shell patterns (``click-*,enter-text``)."""
    if not patterns:
        return list(tasks)
    wanted = [p.strip() for p in patterns.split(",") if p.strip()]
    chosen = [t for t in tasks if any(fnmatch.fnmatchcase(t.id, p) for p in wanted)]
    if not chosen:
        raise SuiteError(f"no task matches {patterns!r}; task ids look like {tasks[0].id!r}" if tasks else "no tasks")
    return chosen


#: The suites pixelpilot ships, imported when first asked for (their modules need optional extras).
_BUILTIN = {
    "miniwob": "pixelpilot.evals.miniwob:MiniWoBSuite",
    "shapes": "pixelpilot.evals.shapes:ShapesSuite",
}


def _load_builtin() -> None:
    """The suites pixelpilot ships, then those installed packages declare (``pixelpilot.suites``)."""
    from importlib.metadata import entry_points

    declared = {ep.name: ep.value for ep in entry_points(group="pixelpilot.suites")}
    for name, target in {**_BUILTIN, **declared}.items():
        if name not in _SUITES:
            _SUITES[name] = _lazy(target)


def _lazy(target: str) -> Callable[[], Suite]:
    def build() -> Suite:
        module, _, cls = target.partition(":")
        suite: Suite = getattr(importlib.import_module(module), cls)()
        return suite

    return build
