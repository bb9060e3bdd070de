"""The loop that ties the parts together: policies, the runner, task files."""

from .gate import ApprovalRequest, ApprovalRules, Approver, Gate, GateDecision
from .loops import LoopDetector
from .policy import Decision, ModelError, Policy, StepContext
from .replay import ReplayPolicy, TargetHealer, replay
from .runner import Agent, Limits, ToolRunner
from .script import ScriptError, ScriptPolicy, compile_step
from .taskfile import TaskFileError, load_task_file

__all__ = [
    "Agent",
    "ApprovalRequest",
    "ApprovalRules",
    "Approver",
    "Decision",
    "Gate",
    "GateDecision",
    "Limits",
    "LoopDetector",
    "ModelError",
    "Policy",
    "ReplayPolicy",
    "ScriptError",
    "ScriptPolicy",
    "StepContext",
    "TargetHealer",
    "TaskFileError",
    "ToolRunner",
    "compile_step",
    "load_task_file",
    "replay",
]
