"""The loop that ties the parts together: policies, the runner, task files."""

from .policy import Decision, ModelError, Policy, StepContext
from .runner import Agent, Limits, ToolRunner
from .replay import ReplayPolicy, TargetHealer, replay
from .script import ScriptError, ScriptPolicy, compile_step
from .taskfile import TaskFileError, load_task_file

__all__ = [
    "Agent", "Decision", "Limits", "ModelError", "Policy", "ReplayPolicy", "ScriptError", "ScriptPolicy", "StepContext",
    "TargetHealer", "TaskFileError", "ToolRunner", "compile_step", "load_task_file", "replay",
]
