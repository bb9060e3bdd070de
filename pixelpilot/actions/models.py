"""The action space: every thing an agent can do, as typed data.

Coordinates are integers on the model's normalized grid (0..1000 by default, see
``grounding``). Scroll amounts are in the same units: 1000 is one full screen, so
``dy=500`` scrolls half a screen down. Nothing here does I/O.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from .keys import canonical_keys

GRID_MAX = 1000
MAX_TEXT = 2000

Coord = Annotated[int, Field(ge=0, le=GRID_MAX)]
Delta = Annotated[int, Field(ge=-GRID_MAX, le=GRID_MAX)]
Text = Annotated[str, Field(max_length=MAX_TEXT)]


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The action's name, the union's discriminator (each subclass fixes it).
    action: str


class _AtPoint(_Action):
    """An action at one point of the screen."""

    x: Coord
    y: Coord


class _FromTo(_AtPoint):
    """An action from (x, y) to (x2, y2)."""

    x2: Coord
    y2: Coord


class Click(_AtPoint):
    """Click at a point; ``button`` picks left, right or middle."""

    action: Literal["click"] = "click"
    button: Literal["left", "right", "middle"] = "left"


class DoubleClick(_AtPoint):
    action: Literal["double_click"] = "double_click"


class TripleClick(_AtPoint):
    """Three clicks: selects a line or paragraph."""

    action: Literal["triple_click"] = "triple_click"


class Move(_AtPoint):
    """Move the pointer without clicking (hover)."""

    action: Literal["move"] = "move"


class Drag(_FromTo):
    """Press at (x, y), move to (x2, y2), release."""

    action: Literal["drag"] = "drag"


class Scroll(_Action):
    """Scroll at (x, y); dy > 0 reveals content further down, dx > 0 further right.

    Amounts are grid units: 1000 is one screen height (or width).
    """

    action: Literal["scroll"] = "scroll"
    x: Coord = 500
    y: Coord = 500
    dx: Delta = 0
    dy: Delta = 0


class Type(_Action):
    """Type text into whatever has focus."""

    action: Literal["type"] = "type"
    text: Text


class Key(_Action):
    """Press keys together, e.g. ``["ctrl", "a"]`` or ``["enter"]``.

    Names are stored canonical (``"Control"`` becomes ``"ctrl"``, see :mod:`.keys`); an unknown
    name fails validation, naming the key.
    """

    action: Literal["key"] = "key"
    keys: Annotated[list[Annotated[str, Field(min_length=1, max_length=32)]], Field(min_length=1, max_length=5)]

    @field_validator("keys")
    @classmethod
    def _canonical(cls, keys: list[str]) -> list[str]:
        return canonical_keys(keys)


class Wait(_Action):
    action: Literal["wait"] = "wait"
    seconds: Annotated[float, Field(ge=0, le=60)] = 1.0


class Navigate(_Action):
    """Open a URL (browser only); relative URLs resolve against the current page."""

    action: Literal["navigate"] = "navigate"
    url: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]


class Back(_Action):
    """Go back one page in the browser's history."""

    action: Literal["back"] = "back"


class LongPress(_AtPoint):
    action: Literal["long_press"] = "long_press"
    seconds: Annotated[float, Field(ge=0, le=10)] = 1.0


class Swipe(_FromTo):
    """A touch swipe from (x, y) to (x2, y2): the content follows the finger."""

    action: Literal["swipe"] = "swipe"
    seconds: Annotated[float, Field(ge=0, le=5)] = 0.3


class SystemButton(_Action):
    action: Literal["system_button"] = "system_button"
    button: Literal["back", "home", "menu", "enter"]


class OpenApp(_Action):
    """Start an app by package name or label (mobile, desktop)."""

    action: Literal["open_app"] = "open_app"
    name: Annotated[str, Field(min_length=1, max_length=200)]


class Window(_Action):
    """Focus, move (and resize) or close a desktop window, named by its title or app.

    Task files and programs driving an env use it; no model is offered it (no model's format has
    it). ``box`` is where a ``move`` puts the whole window, frame included: (x1, y1, x2, y2) on the grid.
    """

    action: Literal["window"] = "window"
    op: Literal["focus", "move", "close"]
    window: Annotated[str, Field(min_length=1, max_length=200)]
    box: tuple[Coord, Coord, Coord, Coord] | None = None

    @model_validator(mode="after")
    def _box_for_a_move(self) -> Window:
        if (self.op == "move") != (self.box is not None):
            raise ValueError("a move needs box=(x1, y1, x2, y2); focus and close take none")
        if self.box is not None and not (self.box[0] < self.box[2] and self.box[1] < self.box[3]):
            raise ValueError(f"box {list(self.box)} must have x1 < x2 and y1 < y2")
        return self


class SetClipboard(_Action):
    """Put text on the clipboard, as a copy does (task files and programs; no model is offered it)."""

    action: Literal["set_clipboard"] = "set_clipboard"
    text: Text


class Tool(_Action):
    """Call a registered tool; its result comes back as the next observation's text."""

    action: Literal["tool"] = "tool"
    name: Annotated[str, Field(min_length=1, max_length=64)]
    arguments: dict[str, Any] = Field(default_factory=dict)


class Answer(_Action):
    """Finish the task with an answer for the user."""

    action: Literal["answer"] = "answer"
    text: Text


class Terminate(_Action):
    """Stop, declaring the task done (success) or impossible (failure)."""

    action: Literal["terminate"] = "terminate"
    status: Literal["success", "failure"] = "success"


Action = Annotated[
    Click
    | DoubleClick
    | TripleClick
    | Move
    | Drag
    | Scroll
    | Type
    | Key
    | Wait
    | Navigate
    | Back
    | LongPress
    | Swipe
    | SystemButton
    | OpenApp
    | Window
    | SetClipboard
    | Tool
    | Answer
    | Terminate,
    Field(discriminator="action"),
]

ACTION_TYPES: dict[str, type[BaseModel]] = {
    cls.model_fields["action"].default: cls
    for cls in (
        Click,
        DoubleClick,
        TripleClick,
        Move,
        Drag,
        Scroll,
        Type,
        Key,
        Wait,
        Navigate,
        Back,
        LongPress,
        Swipe,
        SystemButton,
        OpenApp,
        Window,
        SetClipboard,
        Tool,
        Answer,
        Terminate,
    )
}

FINAL_ACTIONS = ("answer", "terminate")

#: What a pointer and a keyboard do, on a desktop and in a browser alike.
_POINTER_AND_KEYBOARD = ("click", "double_click", "triple_click", "move", "drag", "scroll", "type", "key", "wait")

#: Which actions each kind of environment offers a model (``tool`` is added when tools are
#: registered). ``window`` and ``set_clipboard`` are for task files and programs only.
ACTIONS_BY_ENV: dict[str, tuple[str, ...]] = {
    "browser": (*_POINTER_AND_KEYBOARD, "navigate", "back", *FINAL_ACTIONS),
    "desktop": (*_POINTER_AND_KEYBOARD, "open_app", *FINAL_ACTIONS),
    "mobile": ("key", "click", "long_press", "swipe", "type", "system_button", "open_app", "wait", *FINAL_ACTIONS),
}

_adapter: TypeAdapter[Action] = TypeAdapter(Action)


def action_from_dict(data: dict[str, Any]) -> Action:
    """Validate a plain dict (``{"action": "click", "x": 10, "y": 20}``) into an Action.

    Raises ``pydantic.ValidationError`` when the dict is not a valid action.
    """
    return _adapter.validate_python(data)


def action_to_dict(action: BaseModel) -> dict[str, Any]:
    """The JSON-ready dict of an action, defaults included."""
    return action.model_dump(mode="json")


def is_coordinate_action(action: BaseModel) -> bool:
    """Whether the action points somewhere on the screen (it has an ``x`` and a ``y``)."""
    return "x" in type(action).model_fields
