"""The environment contract: the :class:`Env` base class and the optional capabilities an env declares.

An env is a screen to look at and a place to send input. :class:`Env` fixes the contract (think
Gymnasium's ``Env``): ``reset`` opens a task, ``observe`` looks, ``execute`` acts, ``aclose`` lets
go, and ``async with env:`` starts and closes it. ``execute`` is written once, here: it grounds the
grid action into the env's input space, dispatches it through the env's handler table, lets the
screen settle and times both phases. Each env supplies only its primitives:

- :meth:`Env.input_size` — the input space to ground into (and whether the env can take input now);
- its handlers — coroutines that perform actions on grounded (pixel) values, each method marked with
  :func:`handles` and the action kinds it performs (:meth:`Env.handlers` gathers them into a table);
- :meth:`Env.settle` — wait until the screen shows what the action did;
- :meth:`Env.on_error` — what an exception from a handler means: an error outcome the model is
  told about, a crash (:class:`EnvCrashed`) or a broken env (:class:`EnvError`);
- :meth:`Env.before_action` and :meth:`Env.outcome_info`, when the env needs them.

An env's configuration is its dataclass fields (``@dataclass(kw_only=True, eq=False)``, ``grid``
from :class:`Env`); what it sets up at runtime, it sets up in ``__post_init__``.

What only some envs can do is a capability: a small abstract class the env inherits explicitly
(:class:`Recoverable`, :class:`UrlGuarded`, :class:`TextQueries`, :class:`AccessibilityTree`,
:class:`DescribesTargets`, :class:`PageScripting`, :class:`Tabs`, :class:`Windows`, :class:`Clipboard`), so
callers ask
``isinstance(env, TextQueries)``.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self, TypedDict, TypeVar

from ..actions import DEFAULT_GRID, Action, Grid, Observation, Outcome, Task, ground
from ..actions.task import EnvKind

__all__ = [
    "CLICKS",
    "AccessibilityTree",
    "AccessibleNode",
    "Box",
    "Clipboard",
    "DescribesTargets",
    "Env",
    "EnvCrashed",
    "EnvError",
    "EnvKind",
    "Handler",
    "PageScripting",
    "PixelAction",
    "Recoverable",
    "TabInfo",
    "Tabs",
    "TargetInfo",
    "TextMatch",
    "normalize_text",
    "TextQueries",
    "UrlDecision",
    "UrlGuarded",
    "WindowInfo",
    "Windows",
    "handles",
    "is_control",
    "rank_matches",
    "role_matches",
]


class EnvError(RuntimeError):
    """The environment broke in a way the agent cannot recover from (browser gone, display lost)."""


class EnvCrashed(EnvError):
    """The environment's process died. An env that is :class:`Recoverable` can be relaunched at the
    same place with ``recover()``; the agent does that once per episode."""


class Box(tuple[float, float, float, float]):
    """A rectangle in input-space pixels: (left, top, width, height)."""

    __slots__ = ()

    def __new__(cls, left: float, top: float, width: float, height: float) -> Box:
        return super().__new__(cls, (left, top, width, height))

    @property
    def center(self) -> tuple[float, float]:
        left, top, width, height = self
        return left + width / 2, top + height / 2


#: An action grounded into the env's input space: ``ground(action, w, h, grid)``, what a handler
#: receives and what the trajectory records as the pixel action.
PixelAction = dict[str, Any]
#: One entry of a handler table: performs a grounded action; returns None when it was done, or
#: the reason it could not be (told to the model as an error outcome).
Handler = Callable[[PixelAction], Awaitable[str | None]]
#: The click actions and how many clicks each is.
CLICKS = {"click": 1, "double_click": 2, "triple_click": 3}

_Method = TypeVar("_Method", bound=Callable[..., Awaitable[str | None]])


def handles(*kinds: str) -> Callable[[_Method], _Method]:
    """Marks an env's method as the handler of the action ``kinds`` (``@handles(*CLICKS)``);
    :meth:`Env.handlers` gathers the marked methods of the env's class and of its bases."""

    def mark(method: _Method) -> _Method:
        method.__dict__["_action_kinds"] = kinds  # read by Env.__init_subclass__
        return method

    return mark


@dataclass(kw_only=True, eq=False)
class Env(ABC):
    """A screen to look at and a place to send input; see the module docstring for the contract.

    ``execute`` takes an action in normalized grid units (``grid``) and returns an
    :class:`~pixelpilot.actions.Outcome` whose ``pixel_action`` is the grounded action and whose
    ``info`` holds ``act_ms`` and ``settle_ms``. An action the env has no handler for is an error
    outcome naming the actions it has, never an exception. Exceptions mean the env itself is
    gone: :class:`EnvCrashed` (relaunch with ``recover()`` when the env is :class:`Recoverable`)
    or :class:`EnvError`.
    """

    #: "browser", "desktop" or "mobile": which action set (``ACTIONS_BY_ENV``) a model is offered.
    kind: ClassVar[EnvKind]
    #: How messages name this env ("the browser", "a phone").
    label: ClassVar[str] = "this environment"
    #: The normalized grid actions arrive on.
    grid: Grid = DEFAULT_GRID
    #: Action kind -> the name of the method marked to handle it, over the class and its bases (a
    #: subclass's mark for a kind replaces its base's); set by ``__init_subclass__``.
    _handler_names: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        marked = {kind: name for name, value in vars(cls).items() for kind in getattr(value, "_action_kinds", ())}
        cls._handler_names = {**cls._handler_names, **marked}

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:  # noqa: B027 - an env with nothing to launch keeps this no-op
        """Launch or connect what the env needs. Idempotent; ``reset`` and ``async with`` call it."""

    @abstractmethod
    async def reset(self, task: Task | None = None) -> Observation:
        """Start an episode (at ``task.url`` where the env has URLs) and return the first look."""

    @abstractmethod
    async def observe(self) -> Observation:
        """The screen as it is now."""

    @abstractmethod
    async def aclose(self) -> None:
        """Let go of everything the env started. Safe to call twice."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- acting: written once ---------------------------------------------------------------------

    async def execute(self, action: Action) -> Outcome:
        """Ground ``action`` into the input space, perform it with its handler, let the screen settle."""
        width, height = await self.input_size()
        pixels = ground(action, width, height, self.grid)
        handler = self.handlers().get(action.action)
        if handler is None:
            return Outcome(ok=False, error=self.cannot(action.action), pixel_action=pixels)
        self.before_action()
        started = time.perf_counter()
        try:
            error = await handler(pixels)
        except Exception as e:
            error = self.on_error(e, pixels)
        acted = time.perf_counter()
        timing = {"act_ms": _ms(acted - started)}
        if error is not None:
            return Outcome(ok=False, error=error, pixel_action=pixels, info=timing)
        await self.settle()
        timing["settle_ms"] = _ms(time.perf_counter() - acted)
        return Outcome(ok=True, pixel_action=pixels, info={**self.outcome_info(), **timing})

    @property
    def actions(self) -> tuple[str, ...]:
        """The action kinds this env performs (its handler table's keys)."""
        return tuple(self.handlers())

    def cannot(self, kind: str) -> str:
        """The error for an action kind the env has no handler for, naming those it has."""
        return f"{self.label} cannot do {kind!r}; it can do {', '.join(self.actions)}"

    # --- primitives each env supplies -------------------------------------------------------------

    @abstractmethod
    async def input_size(self) -> tuple[int, int]:
        """The size (width, height) of the input space actions ground into, now.

        Raises :class:`EnvError` when the env cannot take input (not started, display gone) and
        :class:`EnvCrashed` when it died.
        """

    def handlers(self) -> Mapping[str, Handler]:
        """The handler table: action kind -> the coroutine performing it on grounded values; the
        methods marked with :func:`handles`, in the order the classes define them, then :meth:`wait`."""
        return {**{kind: getattr(self, name) for kind, name in self._handler_names.items()}, "wait": self.wait}

    def before_action(self) -> None:  # noqa: B027 - optional hook
        """Called just before a handler runs (drop what the action will make stale)."""

    async def settle(self) -> None:  # noqa: B027 - optional hook
        """Wait (bounded) until the screen shows what the last action did."""

    def on_error(self, error: Exception, action: PixelAction) -> str:
        """What an exception from a handler means: return the error outcome's text, or raise
        :class:`EnvCrashed` / :class:`EnvError` when the env itself is gone.

        By default an :class:`EnvError` is raised on, and anything else is an error outcome.
        """
        if isinstance(error, EnvError):
            raise error
        return f"{action['action']} failed: {error}"

    def outcome_info(self) -> dict[str, Any]:
        """Facts to put in a successful outcome's ``info`` (the page an action led to, say)."""
        return {}

    async def wait(self, action: PixelAction) -> None:
        """The ``wait`` handler every env shares."""
        await asyncio.sleep(action["seconds"])


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


# --- capabilities ---------------------------------------------------------------------------------


class UrlDecision(TypedDict):
    """One decision of the URL policy, as recorded in the step: ``kind`` is navigation, redirect,
    popup, committed or subresource."""

    kind: str
    url: str
    allowed: bool
    reason: str
    host: str | None


class TargetInfo(TypedDict):
    """The element an action would act on, as the safety gate reads it."""

    tag: str
    type: str
    form: bool
    submit: bool


class TabInfo(TypedDict):
    """One open tab: its position, where it is, and whether it has focus."""

    index: int
    url: str
    title: str
    active: bool


class Recoverable(ABC):
    """An env that can be relaunched after :class:`EnvCrashed`, reopened where it was."""

    @abstractmethod
    async def recover(self) -> Observation:
        """Relaunch and return the first look; raises :class:`EnvError` when it cannot."""


class UrlGuarded(ABC):
    """An env that enforces a URL policy and reports its decisions."""

    @abstractmethod
    def url_decisions(self) -> list[UrlDecision]:
        """The policy's decisions since the last call (taken: a second call returns only newer ones)."""


@dataclass(frozen=True)
class TextMatch:
    """One element whose text matches what a step looks for, as an env's own structure (a DOM, an
    accessibility tree) or OCR found it.

    ``box`` is in input-space pixels and is the thing to act on (the control a label names, not the
    label); ``exact`` says the whole (normalised) text equals what was asked, not merely contains
    it; ``visible`` is False when the element is clipped or partly off screen; ``role`` is the
    element's role (an accessibility role, or the tag for a DOM element), "" when unknown;
    ``source`` is where it came from: "dom", "a11y" or "ocr".
    """

    box: Box
    text: str
    exact: bool
    visible: bool = True
    role: str = ""
    source: str = ""


#: Role names that mean the same thing across a DOM (tags, ARIA roles) and AT-SPI, each mapped to
#: one canonical name; a name not listed is its own canonical name.
_ROLE_ALIASES = {
    "push button": "button",
    "toggle button": "button",
    "summary": "button",
    "a": "link",
    "img": "image",
    "icon": "image",
    **{f"h{i}": "heading" for i in range(1, 7)},
    "input": "textbox",
    "textarea": "textbox",
    "entry": "textbox",
    "text": "textbox",
    "password text": "textbox",
    "searchbox": "textbox",
    "select": "combobox",
    "combo box": "combobox",
    "li": "listitem",
    "list item": "listitem",
    "menu item": "menuitem",
    "check box": "checkbox",
    "radio button": "radio",
    "page tab": "tab",
    "spin button": "spinbutton",
}
#: Canonical roles of the things a person operates (as opposed to text that only labels or tells).
_CONTROL_ROLES = frozenset(
    "button link textbox checkbox radio combobox menuitem tab option switch slider spinbutton".split()
)


def _canonical_role(role: str) -> str:
    name = re.sub(r"[\s_-]+", " ", role).strip().lower()
    return _ROLE_ALIASES.get(name, name).replace(" ", "")


def normalize_text(text: str) -> str:
    """``text`` as text matching compares it: runs of whitespace as one space, trimmed, lowercase."""
    return " ".join(text.split()).lower()


def role_matches(wanted: str, role: str) -> bool:
    """Whether an element's ``role`` is the ``wanted`` one, compared loosely: case, spaces, ``_`` and
    ``-`` do not count, and a DOM tag, an ARIA role and an AT-SPI role name for the same thing are one
    role (``button`` matches ``push button`` and ``toggle button``; ``link`` matches ``a``; ``textbox``
    matches ``input``, ``textarea``, ``entry`` and ``text``)."""
    return _canonical_role(wanted) == _canonical_role(role)


def is_control(role: str) -> bool:
    """Whether ``role`` names a thing a person operates (button, link, field, checkbox, tab …)."""
    return _canonical_role(role) in _CONTROL_ROLES


def rank_matches(matches: Iterable[TextMatch], near: tuple[float, float] | None = None) -> list[TextMatch]:
    """Text matches best first, by one rule: exact before fuzzy (the text only contains what was
    asked), visible before clipped or off screen, a control (button, link, field …) before other
    text, then nearest to ``near`` (an input-space point: the last pointer position) by the distance
    between centres; without ``near``, top to bottom, then left to right."""

    def key(m: TextMatch) -> tuple[bool, bool, bool, float, float]:
        if near is None:
            place = (m.box[1], m.box[0])
        else:
            cx, cy = m.box.center
            place = (math.hypot(cx - near[0], cy - near[1]), 0.0)
        return (not m.exact, not m.visible, not is_control(m.role), *place)

    return sorted(matches, key=key)


class TextQueries(ABC):
    """An env that can find text on its screen and read it without OCR (a DOM, an accessibility
    tree)."""

    @abstractmethod
    async def find_text(self, text: str, *, role: str | None = None) -> list[TextMatch]:
        """Every element whose text matches ``text`` (of ``role``, compared by :func:`role_matches`,
        when given), in the env's own order; boxes are what to act on (the control a label names)."""

    async def locate_text(self, text: str) -> Box | None:
        """The input-space box of the best match for ``text`` (:meth:`find_text`'s first by
        :func:`rank_matches`), or None."""
        ranked = rank_matches(await self.find_text(text))
        return ranked[0].box if ranked else None

    @abstractmethod
    async def page_text(self) -> str:
        """The visible text of what is in focus."""


@dataclass(frozen=True)
class AccessibleNode:
    """One showing element of an accessibility tree.

    ``role`` is the toolkit's accessibility role ("push button", "text", "frame"); ``name`` its
    accessible name (a button's label, a window's title); ``text`` the contents of a text element
    (an editor's document, an entry's value; "" elsewhere, and always "" for password fields);
    ``box`` its rectangle in input-space pixels; ``depth`` how deep it sits under its application
    (1 for a window); ``visible`` False when the box is clipped by its window or the screen;
    ``states`` the states a reader acts on ("focused", "checked", "sensitive", "editable", …).
    """

    role: str
    name: str
    box: Box
    depth: int
    text: str = ""
    visible: bool = True
    states: frozenset[str] = frozenset()


class AccessibilityTree(ABC):
    """An env that can list what its screen shows as an accessibility tree (an optional observation
    part: nothing reads it unless a policy asks)."""

    @abstractmethod
    async def accessible_nodes(self) -> list[AccessibleNode]:
        """The showing elements, each window's in document order (a parent before its children);
        empty when no tree can be read."""

    async def accessibility_text(self) -> str:
        """The tree as compact text, one line per named, editable or focused element, indented by depth:
        ``push button "7" [12,40,30,28]`` (the box as left, top, width, height in input pixels)."""
        lines = []
        for node in await self.accessible_nodes():
            label = " ".join(part for part in (node.name, node.text) if part)
            if not label and node.depth > 1 and not {"editable", "focused"} & node.states:
                continue  # unnamed containers: their children carry the content
            left, top, width, height = (round(v) for v in node.box)
            label = f" {json.dumps(label, ensure_ascii=False)}" if label else ""
            lines.append(f"{'  ' * (node.depth - 1)}{node.role}{label} [{left},{top},{width},{height}]")
        return "\n".join(lines)


class DescribesTargets(ABC):
    """An env that can say what an action would act on."""

    @abstractmethod
    async def describe_target(self, action: Action) -> TargetInfo | None:
        """The element under the pointer for pointer actions, else the focused one; None if none."""


class PageScripting(ABC):
    """An env whose page in focus runs JavaScript (what task checkers evaluate)."""

    @property
    @abstractmethod
    def url(self) -> str:
        """The URL of the page in focus."""

    @abstractmethod
    async def evaluate(self, expression: str, arg: Any = None) -> Any:
        """Evaluate a JavaScript expression (or function source, called with ``arg``) in the page in
        focus and return its JSON-able result."""


class Tabs(ABC):
    """An env with several tabs, one of them in focus."""

    @abstractmethod
    async def tabs(self) -> list[TabInfo]:
        """The open tabs, oldest first."""

    @abstractmethod
    async def focus_tab(self, index: int) -> None:
        """Give the tab at ``index`` (as :meth:`tabs` lists them) the focus; ValueError if there is none."""


@dataclass(frozen=True)
class WindowInfo:
    """One top-level window of a desktop, as its window manager lists it.

    ``id`` is the X window id; ``app`` its WM_CLASS class ("XTerm", "Mousepad"), None when it sets
    none; ``box`` the whole window with its frame (title bar, borders) in input-space pixels;
    ``focused`` whether it is the active window.
    """

    id: int
    title: str
    app: str | None
    box: Box
    focused: bool

    def matches(self, name: str) -> bool:
        """Whether ``name`` names this window: its title or app, whole or in part, ignoring case."""
        want = name.strip().casefold()
        return bool(want) and any(want in t.casefold() for t in (self.title, self.app or ""))


class Windows(ABC):
    """An env whose windows can be listed, focused, moved, resized and closed (a window manager's
    work, asked through its protocol)."""

    @abstractmethod
    async def list_windows(self) -> list[WindowInfo]:
        """The top-level windows, oldest first."""

    async def find_window(self, name: str) -> WindowInfo | None:
        """The window ``name`` names: one whose title or app is ``name`` exactly (ignoring case),
        else the first whose title or app contains it; the focused one first among equals."""
        windows = sorted(await self.list_windows(), key=lambda w: not w.focused)
        want = name.strip().casefold()
        exact = [w for w in windows if want in (w.title.casefold(), (w.app or "").casefold())]
        return next(iter(exact or [w for w in windows if w.matches(name)]), None)

    async def wait_for_window(self, name: str, timeout: float) -> WindowInfo | None:
        """:meth:`find_window`, asked again until the window shows or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while (found := await self.find_window(name)) is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return found

    @abstractmethod
    async def focus_window(self, window: int) -> None:
        """Raise the window with this id and give it the keyboard focus; ValueError if there is none."""

    @abstractmethod
    async def move_resize_window(self, window: int, box: Box) -> None:
        """Put the window with this id, frame included, in ``box`` (input-space pixels)."""

    @abstractmethod
    async def close_window(self, window: int) -> None:
        """Ask the window with this id to close, as its close button does (the app may ask first)."""


class Clipboard(ABC):
    """An env with a clipboard that can be read and written."""

    @abstractmethod
    async def read_clipboard(self) -> str:
        """The clipboard's text ("" when it holds none)."""

    @abstractmethod
    async def write_clipboard(self, text: str) -> None:
        """Put ``text`` on the clipboard, as a copy in an app does."""
