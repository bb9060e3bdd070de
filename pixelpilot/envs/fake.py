"""FakeEnv: a test double of a screen, drawn with Pillow, for testing agent loops in milliseconds.

No browser, display or phone: the screen is a handful of widgets (:class:`Button`,
:class:`TextField`, :class:`PasswordField`, :class:`Text`) drawn on a plain background, and the env
reacts the way a simple form would. It is a stand-in for tests of everything above the env (the
loop, the gate, loop detection, budgets, the recorder), not a model of any real screen.
"""

from __future__ import annotations

import asyncio
import io
from abc import ABCMeta
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar
from urllib.parse import urljoin

from ..actions import ACTIONS_BY_ENV, Action, Observation, Task, ground, is_coordinate_action
from ..actions.observation import InputSpace
from . import base
from .base import CLICKS, Env, EnvCrashed, EnvError, EnvKind, Handler, PixelAction, TargetInfo, handles

__all__ = ["Button", "FakeEnv", "PasswordField", "Text", "TextField", "Widget", "default_screen"]


@dataclass
class Widget:
    """Something on the fake screen: its text and its box (left, top, width, height) in input-space
    pixels of the page (scrolling moves it up the screen)."""

    name: str
    box: tuple[int, int, int, int]

    def target(self) -> TargetInfo:
        return TargetInfo(tag="p", type="", form=False, submit=False)


@dataclass
class Text(Widget):
    """Static text."""


@dataclass
class Button(Widget):
    """A form's submit button: a click (or Enter in a field) presses it; presses show on the screen."""

    presses: int = 0

    def target(self) -> TargetInfo:
        return TargetInfo(tag="button", type="submit", form=True, submit=True)


@dataclass
class TextField(Widget):
    """A form's text input labelled ``name``: a click focuses it, typing fills it."""

    value: str = ""
    placeholder: str = ""
    password: ClassVar[bool] = False

    def target(self) -> TargetInfo:
        return TargetInfo(tag="input", type="password" if self.password else "text", form=True, submit=False)

    @property
    def shown(self) -> str:
        return "•" * len(self.value) if self.password else self.value


@dataclass
class PasswordField(TextField):
    """A text field whose value is drawn as dots (and reported to the safety gate as a password)."""

    password: ClassVar[bool] = True


def default_screen() -> list[Widget]:
    """A sign-in form: a heading, Username, Password and a Sign in button (on a 640×480 screen)."""
    return [
        Text("Sign in to Fake", (40, 30, 400, 30)),
        TextField("Username", (40, 100, 300, 32), placeholder="Username"),
        PasswordField("Password", (40, 170, 300, 32), placeholder="Password"),
        Button("Sign in", (40, 230, 120, 40)),
    ]


_INPUT_SPACE: dict[EnvKind, InputSpace] = {"browser": "css", "desktop": "screen", "mobile": "device"}


class _OneClassPerKind(ABCMeta):
    """``FakeEnv(kind="mobile")`` builds the fake of that kind. An env's kind is a class attribute,
    so each kind has its class (as ``pathlib.Path()`` builds a ``PosixPath``)."""

    kind: EnvKind

    def __call__(cls, *args: Any, kind: EnvKind | None = None, **kwargs: Any) -> Any:
        if kind is not None and kind not in _FAKE_KINDS:
            raise ValueError(f"kind must be one of {', '.join(_FAKE_KINDS)}, got {kind!r}")
        chosen = cls if kind is None or kind == cls.kind else _FAKE_KINDS[kind]
        return type.__call__(chosen, *args, **kwargs)


@dataclass(kw_only=True, eq=False)
class FakeEnv(Env, base.Recoverable, base.TextQueries, base.DescribesTargets, metaclass=_OneClassPerKind):
    """A test double of a screen; see the module docstring.

    ``FakeEnv()`` shows :func:`default_screen` at 640×480 as a "browser"; ``widgets`` chooses the
    screen, ``kind`` ("browser", "desktop" or "mobile") the action set it accepts (every action of
    ``ACTIONS_BY_ENV[kind]``), ``size`` the input space and ``scale`` how many screenshot pixels
    per input pixel (2 for a HiDPI screen).

    How it reacts (every action it performs is appended, grounded, to :attr:`received`, and what
    it did to :attr:`log` as tuples):

    - click / double_click / triple_click: a text field under the pointer takes the focus
      (``("focus", name)``); a button is pressed (``("press", name)``, drawn green with its count
      on the next screenshot); anywhere else the focus goes (``("blur",)``);
    - type: into the focused field (``("type", name, text)``; ``name`` None when nothing has focus);
    - key: backspace deletes in the focused field, tab moves the focus to the next field, enter in
      a field presses the first button; every combination is logged as ``("key", "ctrl+a")``;
    - scroll / swipe: the page moves by the grounded amount (``("scroll", dx, dy)``);
    - navigate / back: the URL changes (``back`` with no history is an error outcome);
      open_app sets the app; the rest (move, drag, wait, long_press, system_button) are only
      logged. ``wait`` does not sleep.

    Hooks for tests of the agent loop:

    - ``crash_on``: numbers of the actions (0 = the first performed after a reset) that raise
      :class:`EnvCrashed` instead of acting; from then on ``observe`` and ``execute`` raise it too,
      until :meth:`recover` brings the same screen back (with the event
      "the screen crashed and was restarted");
    - ``reset_error``: ``reset`` raises :class:`EnvError` with this message;
    - ``delay``: seconds each action takes (slept before it acts), to run into time budgets.

    ``reset`` restores the screen as constructed (and clears the logs); ``task.url`` becomes the URL.
    """

    kind: ClassVar[EnvKind] = "browser"
    label = "the fake browser"

    #: The widgets on the screen (each a copy of those given; ``reset`` restores them).
    widgets: Sequence[Widget] = field(default_factory=default_screen, kw_only=False)
    size: tuple[int, int] = (640, 480)
    scale: int = 1
    title: str = "Fake screen"
    crash_on: Iterable[int] = ()
    reset_error: str | None = None
    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.scale < 1:
            raise ValueError(f"scale must be 1 or more, got {self.scale}")
        self.crash_on = frozenset(self.crash_on)
        self._initial = [replace(w) for w in self.widgets]
        #: What the env did, as tuples (see the class docstring).
        self.log: list[tuple[Any, ...]] = []
        #: Every action performed, grounded into the input space.
        self.received: list[PixelAction] = []
        self._restore()
        self.url: str | None = "about:blank" if self.kind == "browser" else None
        self.app = "fake"
        self.crashed = False
        self.closed = False
        self._performed = 0  # actions performed since the last reset
        self._history: list[str] = []
        self._events: list[str] = []
        self._frame: tuple[tuple[Any, ...], bytes] | None = None

    def _restore(self) -> None:
        self.widgets = [replace(w) for w in self._initial]
        self.focus: TextField | None = None
        self.scroll = [0, 0]

    # --- reading the state, for tests -------------------------------------------------------------

    def widget(self, name: str) -> Widget:
        """The widget called ``name`` (KeyError if there is none)."""
        for w in self.widgets:
            if w.name == name:
                return w
        raise KeyError(f"no widget called {name!r}; there are {', '.join(w.name for w in self.widgets)}")

    def value(self, name: str) -> str:
        """What has been typed into the field called ``name``."""
        w = self.widget(name)
        if not isinstance(w, TextField):
            raise KeyError(f"{name!r} is not a text field")
        return w.value

    # --- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        self.closed = False

    async def reset(self, task: Task | None = None) -> Observation:
        await self.start()
        if self.reset_error is not None:
            raise EnvError(self.reset_error)
        self._restore()
        self.log.clear()
        self.received.clear()
        self.crashed, self._performed, self._history, self._events = False, 0, [], []
        if self.kind == "browser":
            self.url = task.url if task is not None and task.url else "about:blank"
        self.app = "fake"
        return await self.observe()

    async def recover(self) -> Observation:
        """Bring the crashed screen back as it was."""
        self.crashed = False
        self._events.append("the screen crashed and was restarted")
        return await self.observe()

    async def aclose(self) -> None:
        self.closed = True
        self._frame = None

    # --- looking ----------------------------------------------------------------------------------

    async def observe(self) -> Observation:
        if self.crashed:
            raise EnvCrashed("the fake screen crashed")
        png = self._png()
        events, self._events = self._events, []
        w, h = self.size
        return Observation(
            png=png,
            width=w * self.scale,
            height=h * self.scale,
            input_width=w,
            input_height=h,
            input_space=_INPUT_SPACE[self.kind],
            url=self.url,
            title=self.title,
            app=self.app,
            events=events,
        )

    def _png(self) -> bytes:
        state = (
            tuple(
                (type(w).__name__, w.name, w.box, getattr(w, "value", None), getattr(w, "presses", None))
                for w in self.widgets
            ),
            self.widgets.index(self.focus) if self.focus is not None else None,
            tuple(self.scroll),
        )
        if self._frame is None or self._frame[0] != state:
            self._frame = (state, self._render())
        return self._frame[1]

    def _render(self) -> bytes:
        from PIL import Image, ImageDraw, ImageFont

        w, h = self.size
        img = Image.new("RGB", (w, h), (246, 246, 246))
        draw = ImageDraw.Draw(img)
        font = ImageFont.load_default(size=16)
        small = ImageFont.load_default(size=12)
        for widget in self.widgets:
            left, top, width, height = self._on_screen(widget)
            box = (left, top, left + width, top + height)
            if isinstance(widget, TextField):
                draw.text((left, top - 16), widget.name, font=small, fill=(90, 90, 90))
                focused = widget is self.focus
                draw.rectangle(
                    box, fill="white", outline=(40, 110, 220) if focused else (150, 150, 150), width=3 if focused else 1
                )
                shown, color = (widget.shown, "black") if widget.value else (widget.placeholder, (170, 170, 170))
                draw.text((left + 8, top + height // 2), shown, font=font, anchor="lm", fill=color)
            elif isinstance(widget, Button):
                pressed = widget.presses > 0
                draw.rounded_rectangle(box, 6, fill=(40, 150, 70) if pressed else (40, 100, 200))
                label = f"{widget.name} ({widget.presses})" if pressed else widget.name
                draw.text((left + width // 2, top + height // 2), label, font=font, anchor="mm", fill="white")
            else:
                draw.text((left, top), widget.name, font=font, fill=(20, 20, 20))
        if self.scale != 1:
            img = img.resize((w * self.scale, h * self.scale), Image.Resampling.NEAREST)
        buf = io.BytesIO()
        img.save(buf, format="PNG", compress_level=1)
        return buf.getvalue()

    def _on_screen(self, widget: Widget) -> tuple[int, int, int, int]:
        left, top, width, height = widget.box
        return left - self.scroll[0], top - self.scroll[1], width, height

    def _at(self, x: float, y: float) -> Widget | None:
        for widget in reversed(self.widgets):  # the last drawn is on top
            left, top, width, height = self._on_screen(widget)
            if left <= x < left + width and top <= y < top + height:
                return widget
        return None

    # --- primitives for Env.execute ------------------------------------------------------------

    async def input_size(self) -> tuple[int, int]:
        if self.crashed:
            raise EnvCrashed("the fake screen crashed")
        return self.size

    def handlers(self) -> Mapping[str, Handler]:
        """Every action of the kind's set: the marked effects, the rest only logged; each performed
        through the hooks (counted, delayed, maybe crashed) and recorded."""
        effects = super().handlers()
        return {
            kind: self._performing(effects.get(kind, self._logged))
            for kind in ACTIONS_BY_ENV[self.kind]
            if kind not in ("answer", "terminate")
        }

    def _performing(self, effect: Handler) -> Handler:
        async def perform(a: PixelAction) -> str | None:
            number, self._performed = self._performed, self._performed + 1
            if self.delay:
                await asyncio.sleep(self.delay)
            if number in self.crash_on:
                self.crashed = True
                raise EnvCrashed(f"the fake screen crashed at action {number}")
            self.received.append(a)
            return await effect(a)

        return perform

    # --- effects ----------------------------------------------------------------------------------

    async def _logged(self, a: PixelAction) -> None:
        self.log.append((a["action"], *(v for k, v in a.items() if k != "action")))

    async def wait(self, action: PixelAction) -> None:
        """Only logged: the fake does not sleep."""
        await self._logged(action)

    @handles(*CLICKS)
    async def _click(self, a: PixelAction) -> None:
        widget = self._at(a["x"], a["y"])
        if isinstance(widget, TextField):
            self.focus = widget
            self.log.append(("focus", widget.name))
        elif isinstance(widget, Button):
            self._press(widget)
        else:
            self.focus = None
            self.log.append(("blur",))

    def _press(self, button: Button) -> None:
        button.presses += 1
        self.log.append(("press", button.name))

    @handles("type")
    async def _type(self, a: PixelAction) -> None:
        if self.focus is not None:
            self.focus.value += a["text"]
        self.log.append(("type", self.focus.name if self.focus is not None else None, a["text"]))

    @handles("key")
    async def _key(self, a: PixelAction) -> None:
        keys: list[str] = a["keys"]
        self.log.append(("key", "+".join(keys)))
        fields = [w for w in self.widgets if isinstance(w, TextField)]
        if keys == ["backspace"] and self.focus is not None:
            self.focus.value = self.focus.value[:-1]
        elif keys == ["tab"] and fields:
            self.focus = fields[(fields.index(self.focus) + 1) % len(fields)] if self.focus in fields else fields[0]
            self.log.append(("focus", self.focus.name))
        elif keys == ["enter"] and self.focus is not None:
            button = next((w for w in self.widgets if isinstance(w, Button)), None)
            if button is not None:
                self._press(button)

    @handles("scroll")
    async def _scroll(self, a: PixelAction) -> None:
        self._move_page(a["dx"], a["dy"])

    @handles("swipe")
    async def _swipe(self, a: PixelAction) -> None:
        self._move_page(a["x"] - a["x2"], a["y"] - a["y2"])  # the content follows the finger

    def _move_page(self, dx: int, dy: int) -> None:
        self.scroll = [max(0, self.scroll[0] + dx), max(0, self.scroll[1] + dy)]
        self.log.append(("scroll", dx, dy))

    @handles("navigate")
    async def _navigate(self, a: PixelAction) -> None:
        if self.url is not None:
            self._history.append(self.url)
        self.url = urljoin(self.url or "", a["url"])
        self.log.append(("navigate", self.url))

    @handles("back")
    async def _back(self, a: PixelAction) -> str | None:
        if not self._history:
            return "there is no earlier page to go back to"
        self.url = self._history.pop()
        self.log.append(("back", self.url))
        return None

    @handles("open_app")
    async def _open_app(self, a: PixelAction) -> None:
        self.app = a["name"]
        self.log.append(("open_app", a["name"]))

    # --- capabilities ----------------------------------------------------------------------------

    async def find_text(self, text: str, *, role: str | None = None) -> list[base.TextMatch]:
        """The widgets whose text (a field's label or placeholder) matches, in drawing order; a
        widget's role is its tag (``button``, ``input``, ``p``), and one partly off the screen is not
        ``visible``."""
        want = " ".join(text.split()).lower()
        matches = []
        for widget in self.widgets if want else []:
            names = [n for n in (widget.name, getattr(widget, "placeholder", "")) if n and want in n.lower()]
            tag = widget.target()["tag"]
            if not names or (role is not None and not base.role_matches(role, tag)):
                continue
            exact = [n for n in names if n.lower() == want]
            box = base.Box(*self._on_screen(widget))
            left, top, width, height = box
            visible = left >= 0 and top >= 0 and left + width <= self.size[0] and top + height <= self.size[1]
            matches.append(base.TextMatch(box, (exact or names)[0], bool(exact), visible, tag, "dom"))
        return matches

    async def page_text(self) -> str:
        """The screen's text: headings, button and field labels, and what the fields show."""
        lines = []
        for widget in self.widgets:
            lines.append(widget.name)
            if isinstance(widget, TextField) and widget.value:
                lines.append(widget.shown)
        return "\n".join(lines)

    async def describe_target(self, action: Action) -> TargetInfo | None:
        """The widget under the pointer for pointer actions, else the focused field."""
        if is_coordinate_action(action):
            px = ground(action, *self.size, self.grid)
            widget = self._at(px["x"], px["y"])
        else:
            widget = self.focus
        return widget.target() if widget is not None else None


class _FakeDesktopEnv(FakeEnv):
    kind: ClassVar[EnvKind] = "desktop"
    label = "the fake desktop"


class _FakeMobileEnv(FakeEnv):
    kind: ClassVar[EnvKind] = "mobile"
    label = "the fake phone"


_FAKE_KINDS: dict[EnvKind, type[FakeEnv]] = {"browser": FakeEnv, "desktop": _FakeDesktopEnv, "mobile": _FakeMobileEnv}
