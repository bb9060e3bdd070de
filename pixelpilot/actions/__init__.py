"""Pure data: the action space, grounding math, parsing model output, observations and tasks."""

from .grounding import DEFAULT_GRID, Grid, ground
from .models import (
    ACTION_TYPES, ACTIONS_BY_ENV, FINAL_ACTIONS, Action, Answer, Back, Click, DoubleClick, Drag, Key,
    LongPress, Move, Navigate, OpenApp, Scroll, Swipe, SystemButton, Terminate, Tool, TripleClick,
    Type, Wait, action_from_dict, action_to_dict, is_coordinate_action,
)
from .observation import Observation, Outcome, png_size
from .parse import ActionParseError, ParsedOutput, parse_output
from .schema import action_schema, bounded_string
from .task import Task
from .vars import EnvVar, VarError, resolve_vars, secret_values, substitute, var_refs

__all__ = [
    "ACTION_TYPES", "ACTIONS_BY_ENV", "FINAL_ACTIONS", "Action", "ActionParseError", "Answer", "Back",
    "Click", "DEFAULT_GRID", "DoubleClick", "Drag", "EnvVar", "Grid", "Key", "LongPress", "Move", "Navigate",
    "Observation", "OpenApp", "Outcome", "ParsedOutput", "Scroll", "Swipe", "SystemButton", "Task",
    "Terminate", "Tool", "TripleClick", "Type", "VarError", "Wait", "action_from_dict", "action_schema",
    "action_to_dict", "bounded_string", "ground", "is_coordinate_action", "parse_output", "png_size",
    "resolve_vars", "secret_values", "substitute", "var_refs",
]
