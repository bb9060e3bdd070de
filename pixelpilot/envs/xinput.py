"""Pointer and keyboard input to one X display through the XTEST extension, on a given connection.

pyautogui, used before, holds one X connection for the whole process, so one process could drive
one display. An ``XInput`` sends its fake events on the python-xlib connection it is handed, so any
number of envs, each on its own display, run at once in one process.

python-xlib connections are not thread-safe (short of importing ``Xlib.threaded`` for the whole
process), and the env sends input from worker threads while it reads window titles on the event
loop: whoever uses the connection holds ``lock``. Pauses (between clicks, along a drag, while apps
read a changed keymap) are taken with the lock released, so a title lookup waits a few requests at most.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from Xlib import XK, X
from Xlib.ext.xtest import fake_input

from .base import EnvError

BUTTONS = {"left": 1, "middle": 2, "right": 3}
# X delivers wheel clicks as clicks of buttons 4/5 (up/down) and 6/7 (left/right).
WHEEL_UP, WHEEL_DOWN, WHEEL_LEFT, WHEEL_RIGHT = 4, 5, 6, 7
DRAG_STEP_S = 0.05  # one pointer motion per 50 ms along a drag, as pyautogui did

#: Canonical key names (:mod:`pixelpilot.actions.keys`) to X keysym names. Single characters are
#: their own keysyms (:func:`char_keysym`); a canonical key missing here (a phone's volume_up …) has
#: no key on an X keyboard.
X_KEYSYMS: dict[str, str] = {
    "ctrl": "Control_L",
    "ctrl_right": "Control_R",
    "alt": "Alt_L",
    "alt_right": "Alt_R",
    "shift": "Shift_L",
    "shift_right": "Shift_R",
    "meta": "Super_L",
    "meta_right": "Super_R",
    "enter": "Return",
    "escape": "Escape",
    "tab": "Tab",
    "space": "space",
    "backspace": "BackSpace",
    "delete": "Delete",
    "insert": "Insert",
    "home": "Home",
    "end": "End",
    "pageup": "Page_Up",
    "pagedown": "Page_Down",
    "up": "Up",
    "down": "Down",
    "left": "Left",
    "right": "Right",
    "capslock": "Caps_Lock",
    "numlock": "Num_Lock",
    "scrolllock": "Scroll_Lock",
    "pause": "Pause",
    "printscreen": "Print",
    "menu": "Menu",
    "select": "Select",
    "execute": "Execute",
    "help": "Help",
    **{f"num{i}": f"KP_{i}" for i in range(10)},
    "multiply": "KP_Multiply",
    "add": "KP_Add",
    "separator": "KP_Separator",
    "subtract": "KP_Subtract",
    "decimal": "KP_Decimal",
    "divide": "KP_Divide",
    **{f"f{i}": f"F{i}" for i in range(1, 25)},
}


class FailSafe(EnvError):
    """A person threw the pointer into a screen corner to stop the agent."""


def x_keysyms(keys: list[str]) -> list[int]:
    """``["ctrl", "shift", "T"]`` -> the keysyms Control_L, Shift_L, t: canonical key names to X keysyms.

    A single character is its own keysym: alone it keeps its case (``["A"]`` types shift+a), in a
    combo it is lowercased (ctrl+shift+T presses the t key, as a person does). Raises ValueError
    naming the first key an X keyboard does not have.
    """
    out = []
    for k in keys:
        if len(k) == 1:
            out.append(char_keysym(k.lower() if len(keys) > 1 else k))
        elif k in X_KEYSYMS:
            out.append(XK.string_to_keysym(X_KEYSYMS[k]))
        else:
            raise ValueError(f"the desktop has no {k!r} key")
    return out


def char_keysym(ch: str) -> int:
    """The X keysym of a character: Latin-1 keysyms are their code points, the rest 0x01000000 + it."""
    special = {"\n": XK.XK_Return, "\r": XK.XK_Return, "\t": XK.XK_Tab, "\b": XK.XK_BackSpace}
    if ch in special:
        return special[ch]
    code = ord(ch)
    return code if 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xFF else 0x01000000 | code


class XInput:
    """XTEST pointer and keyboard input on one python-xlib connection (``Xlib.display.Display``).

    Coordinates are absolute screen pixels. The methods block on X round trips and pauses: call
    them off the event loop. With ``failsafe``, every step first checks that the pointer is not in a
    screen corner and raises ``FailSafe`` if it is (the env keeps its own targets off the corners).
    """

    def __init__(self, display: Any, *, failsafe: bool) -> None:
        self.display = display
        self.failsafe = failsafe
        self.lock = threading.Lock()
        screen = display.screen()
        w, h = screen.width_in_pixels, screen.height_in_pixels
        self._root = screen.root
        self._corners = {(0, 0), (0, h - 1), (w - 1, 0), (w - 1, h - 1)}
        self._shift = display.keysym_to_keycode(XK.XK_Shift_L)
        self._spare: list[int] | None = None  # keycodes with no keysyms, looked up on first need
        self._bound: set[int] = set()  # spare keycodes we have bound

    # --- pointer (each method holds the lock for its X requests, not its pauses) ---------------

    def _check_failsafe(self) -> None:
        if self.failsafe:
            p = self._root.query_pointer()
            if (p.root_x, p.root_y) in self._corners:
                raise FailSafe("stopped by the fail-safe: the pointer was thrown into a screen corner")

    def _button(self, button: int, *, press: bool = True, release: bool = True) -> None:
        if press:
            fake_input(self.display, X.ButtonPress, button)
        if release:
            fake_input(self.display, X.ButtonRelease, button)

    def move(self, x: int, y: int) -> None:
        with self.lock:
            self._check_failsafe()
            fake_input(self.display, X.MotionNotify, x=x, y=y)
            self.display.sync()

    def click(self, x: int, y: int, *, button: str = "left", clicks: int = 1, interval: float = 0.02) -> None:
        """``clicks`` clicks of ``button`` (left, middle, right) at (x, y), ``interval`` seconds apart."""
        number = BUTTONS[button]
        for i in range(clicks):
            if i:
                time.sleep(interval)
            with self.lock:
                self._check_failsafe()
                fake_input(self.display, X.MotionNotify, x=x, y=y)
                self._button(number)
                self.display.sync()

    def drag(self, x: int, y: int, x2: int, y2: int, seconds: float, *, button: int = 1) -> None:
        """Press at (x, y), move along the line to (x2, y2) over ``seconds``, release there."""
        with self.lock:
            self._check_failsafe()
            fake_input(self.display, X.MotionNotify, x=x, y=y)
            self._button(button, release=False)
            self.display.sync()
        steps = max(1, round(seconds / DRAG_STEP_S))
        try:
            for i in range(1, steps + 1):
                time.sleep(seconds / steps)
                with self.lock:
                    self._check_failsafe()
                    fake_input(
                        self.display,
                        X.MotionNotify,
                        x=round(x + (x2 - x) * i / steps),
                        y=round(y + (y2 - y) * i / steps),
                    )
                    self.display.sync()
        finally:  # never leave the button held down, fail-safe or not
            with self.lock:
                self._button(button, press=False)
                self.display.sync()

    def scroll(self, x: int, y: int, down: int, right: int) -> None:
        """``down`` and ``right`` wheel clicks at (x, y); negative amounts scroll up and left."""
        with self.lock:
            self._check_failsafe()
            fake_input(self.display, X.MotionNotify, x=x, y=y)
            for _ in range(abs(down)):
                self._button(WHEEL_DOWN if down > 0 else WHEEL_UP)
            for _ in range(abs(right)):
                self._button(WHEEL_RIGHT if right > 0 else WHEEL_LEFT)
            self.display.sync()

    # --- keyboard --------------------------------------------------------------------------------

    def press_keys(self, names: list[str]) -> None:
        """Press keys together (``["ctrl", "shift", "t"]``): in order, then released in reverse.

        Raises ValueError for a key the keyboard does not have before pressing anything. Shift is held for a key
        on its key's shifted level; a keysym on no key at all is bound to a spare keycode first.
        """
        keysyms = x_keysyms(names)
        with self.lock:
            self._check_failsafe()
            codes = self._keycodes(keysyms)
        if any(ks not in codes for ks in keysyms):
            with self.lock:
                codes.update(self._bind([ks for ks in keysyms if ks not in codes]))
            time.sleep(0.05)  # see _bind
        order: list[int] = []
        for ks in keysyms:
            code, shifted = codes[ks]
            for c in (self._shift, code) if shifted else (code,):
                if c not in order:  # Shift once, however many keys need it
                    order.append(c)
        with self.lock:
            for code in order:
                fake_input(self.display, X.KeyPress, code)
            for code in reversed(order):
                fake_input(self.display, X.KeyRelease, code)
            self.display.sync()

    def type_text(self, text: str) -> None:
        """Type ``text``: characters the keymap has through their keys (Shift where the keysym needs it),
        the others (accents, CJK, emoji on a US map) through spare keycodes bound to them.

        Binding is what ``xdotool type`` does, except that xdotool rebinds one scratch keycode per
        character and unbinds it as soon as it is done, and an app that looks a keysym up a moment
        later reads the changed map and drops characters (seen here in one run of three). We bind
        every unmapped character of a run first, pause, type the run, and keep the bindings until a
        later run needs the keycodes back, or ``close``.
        """
        keysyms = [char_keysym(ch) for ch in text]
        with self.lock:
            self._check_failsafe()
            mapped = self._keycodes(keysyms)
            spare = self._spares() if len(mapped) < len(set(keysyms)) else []
        runs: list[list[int]] = [[]]
        unmapped: set[int] = set()
        for ks in keysyms:  # runs with no more distinct unmapped keysyms than there are spare keycodes
            if ks not in mapped and ks not in unmapped:
                if len(unmapped) == len(spare):
                    runs.append([])
                    unmapped = set()
                unmapped.add(ks)
            runs[-1].append(ks)
        for i, run in enumerate(runs):
            codes = dict(mapped)
            if any(ks not in mapped for ks in run):
                if i:
                    time.sleep(0.1)  # let the app read the previous run's keys before they are rebound
                with self.lock:
                    codes.update(self._bind([ks for ks in run if ks not in mapped]))
                time.sleep(0.05)
            with self.lock:
                for ks in run:
                    code, shifted = codes[ks]
                    if shifted:
                        fake_input(self.display, X.KeyPress, self._shift)
                    fake_input(self.display, X.KeyPress, code)
                    fake_input(self.display, X.KeyRelease, code)
                    if shifted:
                        fake_input(self.display, X.KeyRelease, self._shift)
                self.display.sync()

    def _keycodes(self, keysyms: list[int]) -> dict[int, tuple[int, bool]]:
        """keysym -> (keycode, needs Shift) for those of ``keysyms`` on the keymap's first two levels.

        Our bound spare keycodes don't count: they are rebound as needed.
        """
        out = {}
        for ks in set(keysyms):
            for code, index in self.display.keysym_to_keycodes(ks):
                if index < 2 and code not in self._bound:
                    out[ks] = (code, index == 1)
                    break
        return out

    def _spares(self) -> list[int]:
        if self._spare is None:
            first, last = self.display.display.info.min_keycode, self.display.display.info.max_keycode
            keymap = self.display.get_keyboard_mapping(first, last - first + 1)
            self._spare = [first + i for i, syms in enumerate(keymap) if not any(syms)]
        if not self._spare:
            raise RuntimeError("the keyboard map has no free keycode to type this text with")
        return self._spare

    def _bind(self, keysyms: list[int]) -> dict[int, tuple[int, bool]]:
        """Bind distinct keysyms (no more than there are spare keycodes) to spare keycodes; lock held.

        Apps refresh their copy of the keymap as the MappingNotify events arrive: the caller gives
        them that moment (50 ms) before pressing, or a key can be looked up in the old map.
        """
        codes = dict(zip(dict.fromkeys(keysyms), self._spares(), strict=False))
        for ks, code in codes.items():
            self.display.change_keyboard_mapping(code, [(ks, ks)])
        self.display.sync()
        self._bound.update(codes.values())
        return {ks: (code, False) for ks, code in codes.items()}

    def close(self) -> None:
        """Give the bound spare keycodes back to the keymap (the connection stays the caller's)."""
        with self.lock:
            if self._bound:
                try:
                    for code in self._bound:
                        self.display.change_keyboard_mapping(code, [(0, 0)])
                    self.display.sync()
                except Exception:
                    pass  # the display is gone, and its keymap with it
            self._bound.clear()
