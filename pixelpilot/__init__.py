"""pixelpilot: a vision-language model drives browsers, desktops and phones, and every step is recorded.

The public API is re-exported here. Environments are imported lazily, so ``import pixelpilot``
needs nothing beyond the base install.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .actions import Action, Grid, Observation, Outcome, Task
from .agent import Agent, Decision, Limits, ModelError, Policy, ReplayPolicy, ScriptPolicy, StepContext, load_task_file
from .envs import Env, EnvError
from .profiles import ActionParseError, Profile, action_schema, get_profile, parse_output
from .trajectories import Episode, Recorder, Step, load_episode

if TYPE_CHECKING:
    from .agent.model_policy import ModelPolicy
    from .envs import AndroidEnv, BrowserEnv, DesktopEnv, MobileWebEnv
    from .tools import ToolRegistry, tool

__version__ = "0.10.1"

__all__ = [
    "Action",
    "ActionParseError",
    "Agent",
    "BrowserEnv",
    "Decision",
    "Env",
    "EnvError",
    "Episode",
    "Grid",
    "Limits",
    "ModelError",
    "Observation",
    "Outcome",
    "Policy",
    "Profile",
    "Recorder",
    "ReplayPolicy",
    "ScriptPolicy",
    "Step",
    "StepContext",
    "Task",
    "__version__",
    "action_schema",
    "get_profile",
    "load_episode",
    "load_task_file",
    "parse_output",
]
__all__ += ["AndroidEnv", "DesktopEnv", "MobileWebEnv"]
__all__ += ["ToolRegistry", "tool"]
__all__ += ["ModelPolicy"]


def __getattr__(name: str) -> Any:
    if name == "BrowserEnv":
        from .envs.browser import BrowserEnv

        return BrowserEnv
    if name in ("DesktopEnv", "AndroidEnv", "MobileWebEnv"):
        from . import envs

        return getattr(envs, name)
    if name in ("ToolRegistry", "tool"):
        from . import tools

        return getattr(tools, name)
    if name == "ModelPolicy":
        from .agent.model_policy import ModelPolicy

        return ModelPolicy
    raise AttributeError(f"module 'pixelpilot' has no attribute {name!r}")
