"""Pure data: the action space, grounding math, key names, observations and tasks.

Model formats (prompts, grammars, reading and writing answers) live in :mod:`pixelpilot.profiles`.
"""

from .grounding import DEFAULT_GRID, Grid, ground
from .models import (
    ACTION_TYPES,
    ACTIONS_BY_ENV,
    FINAL_ACTIONS,
    Action,
    Answer,
    Back,
    Click,
    DoubleClick,
    Drag,
    Key,
    LongPress,
    Move,
    Navigate,
    OpenApp,
    Scroll,
    Swipe,
    SystemButton,
    Terminate,
    Tool,
    TripleClick,
    Type,
    Wait,
    action_from_dict,
    action_to_dict,
    is_coordinate_action,
)
from .observation import Observation, Outcome, png_size
from .schema import bounded_string
from .task import Task
from .vars import EnvVar, VarError, resolve_vars, secret_values, substitute, var_refs

__all__ = [
    "ACTION_TYPES",
    "ACTIONS_BY_ENV",
    "FINAL_ACTIONS",
    "Action",
    "Answer",
    "Back",
    "Click",
    "DEFAULT_GRID",
    "DoubleClick",
    "Drag",
    "EnvVar",
    "Grid",
    "Key",
    "LongPress",
    "Move",
    "Navigate",
    "Observation",
    "OpenApp",
    "Outcome",
    "Scroll",
    "Swipe",
    "SystemButton",
    "Task",
    "Terminate",
    "Tool",
    "TripleClick",
    "Type",
    "VarError",
    "Wait",
    "action_from_dict",
    "action_to_dict",
    "bounded_string",
    "ground",
    "is_coordinate_action",
    "png_size",
    "resolve_vars",
    "secret_values",
    "substitute",
    "var_refs",
]
