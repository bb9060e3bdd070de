"""Key names: the one table of what a model or a script may call a key.

A key is a single character (``"a"``, ``"A"``, ``"+"``) or a name. Names are case-insensitive and
come in many spellings (``Control``, ``ctrl``, ``ctrlleft``; ``Return``, ``enter``; ``PgDn``,
``page_down``); :func:`canonical_key` turns each into one canonical name. Everything downstream
speaks canonical names only: the ``Key`` action stores them, each environment maps them to its
own input system (Playwright's key names, X keysyms, Android key codes), the safety gate compares
them (:data:`CLOSING_KEYS`, :func:`closes_window`, :func:`enters_text`), and model profiles write them.

The aliases cover the spellings of the tools models learn from: pyautogui (``ctrlleft``,
``winleft``), xdotool / X keysyms (``Control_L``, ``Super_R``), the DOM's ``KeyboardEvent.code``
(``ControlLeft``, ``KeyW``, ``Digit1``, ``OSLeft``) and Playwright / the DOM's ``key``
(``Control``, ``ArrowUp``).
"""

from __future__ import annotations

from collections.abc import Iterable

#: The canonical key names, grouped as people think of them.
MODIFIERS = ("ctrl", "alt", "shift", "meta", "ctrl_right", "alt_right", "shift_right", "meta_right")
EDITING = ("enter", "escape", "tab", "space", "backspace", "delete", "insert")
NAVIGATION = ("home", "end", "pageup", "pagedown", "up", "down", "left", "right")
LOCKS_AND_SYSTEM = ("capslock", "numlock", "scrolllock", "pause", "printscreen", "menu", "select", "execute", "help")
KEYPAD = (
    *(f"num{i}" for i in range(10)),
    "multiply",
    "add",
    "separator",
    "subtract",
    "decimal",
    "divide",
)
FUNCTION = tuple(f"f{i}" for i in range(1, 25))
#: Keys a phone has (Android key events); desktops and browsers have none of these.
PHONE = ("back", "volume_up", "volume_down", "volume_mute", "power", "camera", "search")

CANONICAL: frozenset[str] = frozenset(
    (*MODIFIERS, *EDITING, *NAVIGATION, *LOCKS_AND_SYSTEM, *KEYPAD, *FUNCTION, *PHONE)
)

#: Other spellings, lowercased, of canonical names (the canonical names map to themselves).
ALIASES: dict[str, str] = {
    **dict.fromkeys(("control", "ctl", "ctrlleft", "ctrl_left", "lctrl", "controlleft", "control_l", "ctrl_l"), "ctrl"),
    **dict.fromkeys(("ctrlright", "rctrl", "control_r", "controlright", "ctrl_r"), "ctrl_right"),
    **dict.fromkeys(("option", "opt", "altleft", "alt_left", "lalt", "alt_l"), "alt"),
    **dict.fromkeys(("altright", "ralt", "altgr", "alt_r", "iso_level3_shift"), "alt_right"),
    **dict.fromkeys(("shiftleft", "shift_left", "lshift", "shift_l"), "shift"),
    **dict.fromkeys(("shiftright", "rshift", "shift_r"), "shift_right"),
    **dict.fromkeys(
        (
            *("cmd", "command", "super", "win", "windows", "winleft", "win_left", "lwin", "meta_left", "os"),
            *("metaleft", "meta_l", "super_l", "osleft", "cmd_left", "cmdleft"),
        ),
        "meta",
    ),
    **dict.fromkeys(
        ("winright", "win_right", "rwin", "cmd_right", "cmdright", "metaright", "meta_r", "super_r", "osright"),
        "meta_right",
    ),
    **dict.fromkeys(("return", "ret", "kp_enter", "numpadenter"), "enter"),
    **dict.fromkeys(("esc",), "escape"),
    **dict.fromkeys(("spacebar",), "space"),
    **dict.fromkeys(("bksp", "back_space"), "backspace"),
    **dict.fromkeys(("del", "forwarddelete"), "delete"),
    **dict.fromkeys(("ins",), "insert"),
    **dict.fromkeys(("pgup", "page_up", "prior"), "pageup"),
    **dict.fromkeys(("pgdn", "page_down", "next"), "pagedown"),
    **{alias: name for name in ("up", "down", "left", "right") for alias in (f"arrow{name}", f"arrow_{name}")},
    **dict.fromkeys(("caps_lock", "caps"), "capslock"),
    **dict.fromkeys(("num_lock",), "numlock"),
    **dict.fromkeys(("scroll_lock",), "scrolllock"),
    **dict.fromkeys(("print", "prtsc", "prtscr", "prntscrn", "print_screen", "sysrq"), "printscreen"),
    **dict.fromkeys(("apps", "contextmenu", "context_menu"), "menu"),
    **{f"numpad{i}": f"num{i}" for i in range(10)},
    **{f"kp_{i}": f"num{i}" for i in range(10)},
    # KeyboardEvent.code names of the character keys
    **{f"key{c}": c for c in "abcdefghijklmnopqrstuvwxyz"},
    **{f"digit{i}": str(i) for i in range(10)},
    **dict.fromkeys(("volumeup", "volume_raise"), "volume_up"),
    **dict.fromkeys(("volumedown", "volume_lower"), "volume_down"),
    **dict.fromkeys(("volumemute", "mute"), "volume_mute"),
    **{name: name for name in CANONICAL},
}

#: Combinations that close a tab, a window or the browser (Chromium on Linux and Windows, macOS,
#: desktop window managers), in canonical names without a side: ``ctrl_right`` counts as ``ctrl``.
CLOSING_KEYS: frozenset[frozenset[str]] = frozenset(
    frozenset(combo.split("+"))
    for combo in ("ctrl+w", "ctrl+f4", "ctrl+q", "ctrl+shift+q", "alt+f4", "meta+w", "meta+q")
)

#: Keys that move the caret, the focus or the page, or leave or clear a field, without putting
#: text into it (Enter submits: the gate's submit rule looks at that).
NON_TEXT_KEYS: frozenset[str] = frozenset(
    (*NAVIGATION, *FUNCTION, "tab", "escape", "enter", "backspace", "delete", "capslock", "numlock", "scrolllock")
)


def _sideless(key: str) -> str:
    return key.removesuffix("_right").lower()


def closes_window(keys: Iterable[str]) -> bool:
    """Whether pressing ``keys`` (canonical names, held in order) closes a tab, a window or the browser.

    A combination closes when it holds a closing one, whatever else is held with it: ``ctrl+a+w``
    presses ``w`` while ``ctrl`` is down, and a browser reads ``ctrl+alt+w`` on some layouts as ``ctrl+w``.
    """
    held = {_sideless(k) for k in keys}
    return any(combo <= held for combo in CLOSING_KEYS)


def enters_text(keys: Iterable[str]) -> bool:
    """Whether pressing ``keys`` may put text into the focused field: a character, a keypad key,
    space, or a paste (``ctrl+v``, ``shift+insert``, the context menu)."""
    return any(not is_modifier(k) and k not in NON_TEXT_KEYS for k in keys)


class UnknownKey(ValueError):
    """A key name that is neither a single character nor a known name; the message lists examples."""


def canonical_key(name: str) -> str:
    """The canonical name of a key: a single character as it is, a name through :data:`ALIASES`.

    >>> canonical_key("Control"), canonical_key("PgDn"), canonical_key("A")
    ('ctrl', 'pagedown', 'A')

    Raises :class:`UnknownKey` for anything else.
    """
    if len(name) == 1:
        return name
    found = ALIASES.get(name.strip().lower())
    if found is None:
        raise UnknownKey(
            f"unknown key {name!r}; use a single character or a name such as ctrl, alt, shift, meta, "
            "enter, escape, tab, space, backspace, delete, up, pagedown, home, f5"
        )
    return found


def canonical_keys(keys: Iterable[str]) -> list[str]:
    """:func:`canonical_key` of each key of a combination, in order."""
    return [canonical_key(k) for k in keys]


def is_modifier(name: str) -> bool:
    """Whether a canonical key name is a modifier (held while the others are pressed)."""
    return name in MODIFIERS
