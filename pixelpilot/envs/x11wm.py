"""A window manager in a virtual display, its windows through EWMH, and the X clipboard.

``WindowManager("openbox")`` starts a small window manager on a display and waits (bounded) until
it manages the screen: the ``_NET_SUPPORTING_WM_CHECK`` root property is set. Without one, a bare
Xvfb has no title bars, focus follows the pointer and dialogs open at (0, 0).

The window functions speak EWMH (the Extended Window Manager Hints) on a python-xlib connection:
``_NET_CLIENT_LIST`` lists the windows, and client messages to the root window ask the manager to
activate (``_NET_ACTIVE_WINDOW``), move and resize (``_NET_MOVERESIZE_WINDOW``) or close
(``_NET_CLOSE_WINDOW``) one, as a pager or taskbar does. Each waits (bounded) until the manager has
done it. The clipboard is read and written with xclip (Debian's ``xclip``), which stays on as the
selection's owner after a write, as a copying app would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._process import stop_process
from .base import Box, EnvError, WindowInfo

#: Window managers a virtual display can run: name -> command line (``{config}`` is the packaged
#: configuration file) and the Debian package that has it.
WINDOW_MANAGERS: dict[str, tuple[list[str], str]] = {
    "openbox": (["openbox", "--sm-disable", "--config-file", "{config}"], "openbox"),
}
#: How the client messages say who asks: 2 is a pager, which managers obey without focus-stealing checks.
_SOURCE_PAGER = 2


@dataclass
class WindowManager:
    """A window manager process on one display; ``start`` waits until it manages, ``stop`` ends it."""

    name: str = "openbox"
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.name not in WINDOW_MANAGERS:
            raise ValueError(f"unknown window_manager {self.name!r}; known: {', '.join(WINDOW_MANAGERS)} (or None)")
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, display: str) -> None:
        """Start the manager on ``display`` and wait until ``_NET_SUPPORTING_WM_CHECK`` names its window."""
        argv, package = WINDOW_MANAGERS[self.name]
        if shutil.which(argv[0]) is None:
            raise EnvError(
                f"the window manager {self.name!r} is not installed: install Debian's {package} "
                "(scripts/setup.sh test does), or pass window_manager=None"
            )
        config = Path(__file__).with_name(f"{self.name}-rc.xml")
        argv = [a.replace("{config}", str(config)) for a in argv]
        self._log = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            argv,
            env={**os.environ, "DISPLAY": display},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            start_new_session=True,
        )
        from Xlib.display import Display

        d = Display(display)
        try:
            deadline = time.monotonic() + self.timeout
            while not _managed(d):
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    why = (
                        "exited"
                        if self._proc.poll() is not None
                        else f"did not manage the screen in {self.timeout:.0f} s"
                    )
                    tail = self._log_tail()
                    self.stop()
                    raise EnvError(f"the window manager {self.name} {why}{tail}")
                time.sleep(0.02)
        finally:
            d.close()

    def _log_tail(self) -> str:
        self._log.seek(0)
        lines = self._log.read().decode(errors="replace").strip().splitlines()
        return f": {lines[-1]}" if lines else ""

    def stop(self) -> None:
        """Stop the manager (terminate, then kill after 5 s). Safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process(proc)
        if self._log is not None:
            self._log.close()
            self._log = None


def _managed(d: Any) -> bool:
    """Whether a window manager has announced itself (EWMH: the check window names itself too)."""
    from Xlib import X

    atom = d.intern_atom("_NET_SUPPORTING_WM_CHECK")
    prop = d.screen().root.get_full_property(atom, X.AnyPropertyType)
    if not prop or not prop.value:
        return False
    check = d.create_resource_object("window", prop.value[0])
    try:
        own = check.get_full_property(atom, X.AnyPropertyType)
    except Exception:
        return False  # the check window is gone: a manager exiting
    return bool(own and own.value and own.value[0] == prop.value[0])


# --- windows, through the manager -----------------------------------------------------------------


def list_windows(d: Any, origin: tuple[int, int] = (0, 0)) -> list[WindowInfo]:
    """The managed top-level windows, oldest first; boxes are frames, relative to ``origin`` (the
    monitor's top-left corner). EnvError when no window manager runs (nothing keeps the list)."""
    from Xlib import X

    if not _managed(d):
        raise EnvError("window actions need a window manager on the display (DesktopEnv(window_manager='openbox'))")
    root = d.screen().root
    clients = root.get_full_property(d.intern_atom("_NET_CLIENT_LIST"), X.AnyPropertyType)
    active = root.get_full_property(d.intern_atom("_NET_ACTIVE_WINDOW"), X.AnyPropertyType)
    active_id = active.value[0] if active and active.value else 0
    net_name, utf8 = d.intern_atom("_NET_WM_NAME"), d.intern_atom("UTF8_STRING")
    extents_atom = d.intern_atom("_NET_FRAME_EXTENTS")
    out = []
    for wid in clients.value if clients else ():
        win = d.create_resource_object("window", wid)
        try:
            name = win.get_full_property(net_name, utf8)
            title = name.value if name and name.value else win.get_wm_name() or ""
            wm_class = win.get_wm_class()
            geo = win.get_geometry()
            pos = root.translate_coords(win, 0, 0)
            ext = win.get_full_property(extents_atom, X.AnyPropertyType)
        except Exception:
            continue  # closed while we looked
        left, right, top, bottom = ext.value if ext and len(ext.value) == 4 else (0, 0, 0, 0)
        box = Box(
            pos.x - left - origin[0], pos.y - top - origin[1], geo.width + left + right, geo.height + top + bottom
        )
        text = title.decode("utf-8", "replace") if isinstance(title, bytes) else str(title)
        out.append(WindowInfo(wid, text, wm_class[1] if wm_class else None, box, wid == active_id))
    return out


def _window(d: Any, window: int) -> Any:
    if not any(w.id == window for w in list_windows(d)):
        raise ValueError(f"no window {window:#x}; list_windows() names the open ones")
    return d.create_resource_object("window", window)


def _ask(d: Any, window: int, message: str, data: list[int]) -> None:
    """Send the manager an EWMH client message about ``window`` (as the root window's listeners get it)."""
    from Xlib import X
    from Xlib.protocol import event

    root = d.screen().root
    ev = event.ClientMessage(
        window=d.create_resource_object("window", window),
        client_type=d.intern_atom(message),
        data=(32, (data + [0] * 5)[:5]),
    )
    root.send_event(ev, event_mask=X.SubstructureRedirectMask | X.SubstructureNotifyMask)
    d.flush()


def _until(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def wait_for_window(d: Any, before: set[int], proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait (bounded) until the manager lists a window that is not in ``before``; False when none
    came, or ``proc`` failed first (a launcher that hands its window to another process exits 0)."""

    def shown() -> bool:
        return any(w.id not in before for w in list_windows(d)) or (proc.poll() or 0) != 0

    return _until(shown, timeout) and (proc.poll() or 0) == 0


def focus_window(d: Any, window: int, timeout: float = 2.0) -> None:
    """Activate ``window`` (raise it, give it the keyboard focus) and wait until it is the active one."""
    from Xlib import X

    _window(d, window)
    _ask(d, window, "_NET_ACTIVE_WINDOW", [_SOURCE_PAGER, X.CurrentTime, 0])
    if not _until(lambda: any(w.id == window and w.focused for w in list_windows(d)), timeout):
        raise EnvError(f"the window manager did not focus window {window:#x} within {timeout} s")


def move_resize_window(d: Any, window: int, box: Box, origin: tuple[int, int] = (0, 0), timeout: float = 2.0) -> None:
    """Put ``window``'s frame in ``box`` (relative to ``origin``), and wait (bounded) until it is there.

    The message gives the client's size, so the frame's extents come off the box; an app with a
    minimum or fixed size may end up elsewhere, which is not an error (the screen shows it)."""
    from Xlib import X

    win = _window(d, window)
    before = next(w.box for w in list_windows(d, origin) if w.id == window)
    ext = win.get_full_property(d.intern_atom("_NET_FRAME_EXTENTS"), X.AnyPropertyType)
    left, right, top, bottom = ext.value if ext and len(ext.value) == 4 else (0, 0, 0, 0)
    x, y, w, h = (round(v) for v in box)
    width, height = max(w - left - right, 1), max(h - top - bottom, 1)
    # Flags: NorthWest gravity (1: x, y is the frame's corner), x y width height given (bits 8-11),
    # asked by a pager (bits 12-13).
    flags = 1 | 0xF << 8 | _SOURCE_PAGER << 12
    _ask(d, window, "_NET_MOVERESIZE_WINDOW", [flags, x + origin[0], y + origin[1], width, height])
    want = Box(x, y, width + left + right, height + top + bottom)

    def there() -> bool:
        # At the corner, and at the size asked for, or at another size the app chose (xterm keeps
        # to whole character cells).
        now = next((w.box for w in list_windows(d, origin) if w.id == window), None)
        return now is None or (now[:2] == want[:2] and (now[2:] == want[2:] or now[2:] != before[2:]))

    _until(there, timeout)


def close_window(d: Any, window: int, timeout: float = 2.0) -> None:
    """Ask ``window`` to close, as its close button does, and wait (bounded) until it has; an app
    that asks first (unsaved changes) stays open with its question on screen, which is not an error."""
    from Xlib import X

    _window(d, window)
    _ask(d, window, "_NET_CLOSE_WINDOW", [X.CurrentTime, _SOURCE_PAGER])
    _until(lambda: all(w.id != window for w in list_windows(d)), timeout)


# --- the clipboard, through xclip ------------------------------------------------------------------


def _xclip(display: str) -> list[str]:
    exe = shutil.which("xclip")
    if exe is None:
        raise EnvError("the clipboard needs xclip: install Debian's xclip (scripts/setup.sh test does)")
    return [exe, "-display", display, "-selection", "clipboard", "-target", "UTF8_STRING"]


def read_clipboard(display: str, timeout: float = 5.0) -> str:
    """The CLIPBOARD selection's text, "" when nobody holds one (or it is not text)."""
    out = subprocess.run([*_xclip(display), "-out"], capture_output=True, timeout=timeout, check=False)
    return out.stdout.decode("utf-8", "replace") if out.returncode == 0 else ""


def write_clipboard(display: str, text: str, timeout: float = 5.0) -> None:
    """Own the CLIPBOARD selection with ``text``: xclip reads it, then stays in the background to
    hand it to whoever pastes, until another program copies (or the display ends)."""
    # xclip's background half keeps the output files open: a pipe would never reach its end.
    with tempfile.TemporaryFile() as err:
        done = subprocess.run(
            [*_xclip(display), "-in"],
            input=text.encode(),
            stdout=subprocess.DEVNULL,
            stderr=err,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            err.seek(0)
            raise EnvError(f"xclip could not take the clipboard: {err.read().decode(errors='replace').strip()}")
    # The selection is xclip's once it answers a read.
    if not _until(lambda: read_clipboard(display) == text, timeout):
        raise EnvError(f"the clipboard did not take the text within {timeout} s")


__all__ = [
    "WINDOW_MANAGERS",
    "WindowManager",
    "close_window",
    "focus_window",
    "list_windows",
    "move_resize_window",
    "read_clipboard",
    "wait_for_window",
    "write_clipboard",
]
