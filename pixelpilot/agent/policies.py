"""Which policy runs a task: the one rule the CLI, collect and the pytest plugin share.

A task with ``steps`` is played by a :class:`ScriptPolicy`; when a model is at hand it also carries
out the script's ``do:`` steps, judges ``expect: {that: …}`` and finds ``by: model`` targets. A task
without steps is the model's to carry out, so it needs one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..actions import Task
from .policy import ModelError, Policy
from .script import ScriptPolicy

if TYPE_CHECKING:
    from .model_policy import ModelPolicy


def policy_for(task: Task, model: ModelPolicy | None = None, *, name: str = "the task") -> Policy:
    """The policy for ``task``: its script (with ``model``'s help where the script asks a model), or
    ``model`` itself. A task without steps and no model raises ModelError naming ``name``."""
    if task.steps:
        if model is None:
            return ScriptPolicy()
        from .model_checks import model_helpers

        return ScriptPolicy(**model_helpers(model))
    if model is None:
        raise ModelError(f"{name} has no steps, so a model drives it, and no model server was given")
    return model
