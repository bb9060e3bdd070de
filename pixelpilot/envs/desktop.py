"""A Linux desktop on X11: mss captures the screen, pyautogui sends the input.

``DesktopEnv()`` drives the display in ``$DISPLAY``; ``DesktopEnv(virtual_display=(1920, 1080))``
starts a private Xvfb on a free display number for headless runs and CI, and stops it on close.

Coordinates. The input space is X screen pixels of the chosen monitor (``monitor=1`` the first,
``monitor=0`` all of them as one rectangle, mss's numbering). The screenshot's pixel size may be
larger than that space on HiDPI setups where the capture has more pixels than the input
coordinates (macOS Retina through mss); grounding always uses the monitor's input-space size, and
the observation carries both sizes. On X11 the two coincide.

Scrolling. Scroll amounts are grid units (1000 = one screen). A wheel click scrolls an amount each
toolkit picks for itself, so the env takes one click as ``wheel_step_px`` screen pixels (50 by
default: three lines of text in most toolkits, a little under Chromium's 53 px): ``dy=1000`` on a
1080-pixel-high monitor is 22 clicks down. Any non-zero amount is at least one click. Horizontal
amounts use the horizontal wheel buttons (6/7).

Typing. Printable ASCII goes through pyautogui key presses; text with anything else (accents,
CJK, emoji) is typed by binding each character's keysym to a spare keycode with python-xlib and
pressing that (xdotool's method, without its race: see ``_type_unicode``).

pyautogui is set deliberately: ``PAUSE = 0`` (the env waits once per action for the screen to
settle instead of 0.1 s after every call) and ``FAILSAFE`` on for a real display (a person can
stop the agent by throwing the pointer into a screen corner; the env nudges its own targets one
pixel away from corners so only a person trips it) and off on a virtual display (nobody is there).
pyautogui talks to one X display per process (it connects when imported); an env that needs a
different display re-points it, and two envs on different displays at once are refused.
"""

from __future__ import annotations

import asyncio
import configparser
import importlib
import os
import select
import shlex
import shutil
import subprocess
import threading
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal

from ..actions import DEFAULT_GRID, Grid, Observation, Outcome, Task, ground
from .base import EnvError

if TYPE_CHECKING:
    from mss.base import MSS
    from mss.screenshot import ScreenShot

#: Our key names (see ``actions.Key``) to pyautogui's X11 names, where they differ.
_KEY_ALIASES = {
    "control": "ctrl", "option": "alt", "cmd": "win", "command": "win", "meta": "win", "super": "win",
    "return": "enter", "escape": "esc", "del": "delete", "arrowup": "up", "arrowdown": "down",
    "arrowleft": "left", "arrowright": "right", "page_up": "pageup", "page_down": "pagedown",
    "pgup": "pageup", "pgdn": "pagedown", "ins": "insert",
}


def pyautogui_keys(keys: list[str]) -> list[str]:
    """``["Ctrl", "Shift", "T"]`` -> ``["ctrl", "shift", "t"]``: our key names to pyautogui's.

    Single characters keep their case (``"A"`` is shift+a to pyautogui), names are lowercased.
    """
    out = []
    for k in keys:
        if len(k) == 1:
            out.append(k.lower() if len(keys) > 1 else k)
        else:
            low = k.lower()
            out.append(_KEY_ALIASES.get(low, low))
    return out


def _pixel_to_monitor(x: int, y: int, monitor: dict[str, int], failsafe: bool) -> tuple[int, int]:
    """A point in the monitor's input space to absolute screen coordinates.

    With the fail-safe on, an exact screen corner is moved one pixel inwards so that only a person
    throwing the pointer there stops the run.
    """
    sx, sy = monitor["left"] + x, monitor["top"] + y
    if failsafe:
        right, bottom = monitor["left"] + monitor["width"] - 1, monitor["top"] + monitor["height"] - 1
        if sx in (monitor["left"], right) and sy in (monitor["top"], bottom):
            sx += 1 if sx == monitor["left"] else -1
            sy += 1 if sy == monitor["top"] else -1
    return sx, sy


def wheel_clicks(pixels: int, step_px: int) -> int:
    """A scroll distance in screen pixels to wheel clicks (at least one for any non-zero distance)."""
    if pixels == 0:
        return 0
    clicks = max(1, round(abs(pixels) / step_px))
    return clicks if pixels > 0 else -clicks


# --- Xvfb ------------------------------------------------------------------------------------


class VirtualDisplay:
    """A private Xvfb server. Xvfb picks a free display number itself (``-displayfd``)."""

    def __init__(self, size: tuple[int, int], *, depth: int = 24, dpi: int = 96, timeout: float = 10.0) -> None:
        w, h = size
        if w < 64 or h < 64:
            raise ValueError(f"virtual_display must be at least 64×64, got {w}×{h}")
        self.size = (w, h)
        self.depth = depth
        self.dpi = dpi
        self.timeout = timeout
        self.name: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> str:
        """Start Xvfb and wait (bounded) until it accepts clients; returns the display name (``:N``)."""
        exe = shutil.which("Xvfb")
        if exe is None:
            raise EnvError("Xvfb is not installed; install Debian's xvfb (scripts/setup.sh test does)")
        w, h = self.size
        read_fd, write_fd = os.pipe()
        try:
            self._proc = subprocess.Popen(
                [exe, "-displayfd", str(write_fd), "-screen", "0", f"{w}x{h}x{self.depth}", "-dpi", str(self.dpi),
                 "-nolisten", "tcp", "-noreset"],
                pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
            )
        finally:
            os.close(write_fd)
        self._finalizer = weakref.finalize(self, _stop_process, self._proc)
        try:
            # Xvfb writes its display number, then a newline, to the fd once it is ready for
            # clients; closing our end before the newline arrives would kill it.
            deadline = time.monotonic() + self.timeout
            data = b""
            while not data.endswith(b"\n"):
                ready, _, _ = select.select([read_fd], [], [], max(deadline - time.monotonic(), 0))
                chunk = os.read(read_fd, 32) if ready else b""
                if not chunk:
                    break  # timed out, or Xvfb exited
                data += chunk
            number = data.decode().strip() if data.endswith(b"\n") else ""
        finally:
            os.close(read_fd)
        if not number:
            err = self._stderr_tail()
            self.stop()
            raise EnvError(f"Xvfb did not become ready within {self.timeout:.0f} s{err}")
        self.name = f":{number}"
        return self.name

    def _stderr_tail(self) -> str:
        assert self._proc is not None
        if self._proc.poll() is None or self._proc.stderr is None:
            return ""
        lines = self._proc.stderr.read().decode(errors="replace").strip().splitlines()
        return f": {lines[-1]}" if lines else ""

    def stop(self) -> None:
        """Stop Xvfb (terminate, then kill after 5 s). Safe to call twice."""
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None
        self._proc = None
        self.name = None


def _stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stderr is not None:
        proc.stderr.close()


# --- pyautogui, bound to one display per process --------------------------------------------

_bind_lock = threading.Lock()
_bound: dict[str, Any] = {"display": None, "users": 0}


def _bind_pyautogui(display: str, failsafe: bool) -> Any:
    """Import pyautogui connected to ``display`` and set its PAUSE and FAILSAFE; returns the module."""
    with _bind_lock:
        if _bound["users"] and _bound["display"] != display:
            raise EnvError(
                f"pyautogui is driving display {_bound['display']} for another DesktopEnv; one process drives "
                "one X display at a time: close that env first, or run this one in another process"
            )
        saved = os.environ.get("DISPLAY")
        os.environ["DISPLAY"] = display  # pyautogui's X11 backend connects to $DISPLAY when imported
        try:
            import pyautogui
            from pyautogui import _pyautogui_x11 as backend

            # A display name is reused by a new Xvfb once the old one stops, and the old connection
            # is then dead: with no env using it, reconnect rather than trust the name.
            if backend._display.get_display_name() != display or not _bound["users"]:
                try:
                    backend._display.close()
                except Exception:
                    pass  # that display is already gone
                importlib.reload(backend)  # reconnects and rebuilds the keycode table for this display
        except ImportError as e:
            raise EnvError("DesktopEnv needs pyautogui: pip install 'pixelpilot[desktop]'") from e
        finally:
            if saved is None:
                del os.environ["DISPLAY"]
            else:
                os.environ["DISPLAY"] = saved
        pyautogui.PAUSE = 0.0
        pyautogui.FAILSAFE = failsafe
        w, h = backend._size()
        pyautogui.FAILSAFE_POINTS = [(0, 0), (0, h - 1), (w - 1, 0), (w - 1, h - 1)]
        _bound["display"] = display
        _bound["users"] += 1
        return pyautogui


def _unbind_pyautogui() -> None:
    with _bind_lock:
        _bound["users"] = max(0, _bound["users"] - 1)


# --- the env ---------------------------------------------------------------------------------


class DesktopEnv:
    """An X11 desktop: mss for the screen, pyautogui (and python-xlib for non-ASCII text) for input.

    ``apps`` names the programs ``open_app`` may start (label -> argv); labels of installed
    ``.desktop`` entries work too. Model output never becomes a command line of its own.
    """

    kind: Literal["desktop"] = "desktop"

    def __init__(
        self,
        *,
        display: str | None = None,
        virtual_display: tuple[int, int] | None = None,
        monitor: int = 1,
        grid: Grid = DEFAULT_GRID,
        failsafe: bool | None = None,
        wheel_step_px: int = 50,
        drag_seconds: float = 0.3,
        settle_timeout: float = 2.0,
        settle_interval: float = 0.03,
        png_compress_level: int = 1,
        apps: dict[str, list[str]] | None = None,
    ) -> None:
        if display and virtual_display:
            raise ValueError("pass display= or virtual_display=, not both")
        if monitor < 0:
            raise ValueError(f"monitor must be 0 (all monitors) or 1.. (one monitor), got {monitor}")
        if wheel_step_px < 1:
            raise ValueError(f"wheel_step_px must be positive, got {wheel_step_px}")
        self.display = display
        self.virtual_display = virtual_display
        self.monitor = monitor
        self.grid = grid
        self.failsafe = failsafe if failsafe is not None else virtual_display is None
        self.wheel_step_px = wheel_step_px
        self.drag_seconds = drag_seconds
        self.settle_timeout = settle_timeout
        self.settle_interval = settle_interval
        self.png_compress_level = png_compress_level
        self.apps = dict(apps or {})
        self.xvfb: VirtualDisplay | None = None
        self._sct: MSS | None = None
        self._xdisplay: Any = None
        self._gui: Any = None
        self._monitor: dict[str, int] | None = None
        self._children: list[subprocess.Popen[bytes]] = []
        self._spare_keycodes: list[int] = []
        self._window: tuple[str, str | None] | None = None  # (title, app) of the active window
        self._window_stale = True
        self._bound_keycodes: set[int] = set()

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start Xvfb (if asked) and connect capture and input. Called by ``reset`` when needed."""
        if self._sct is not None:
            return
        if self.virtual_display is not None:
            self.xvfb = VirtualDisplay(self.virtual_display)
            self.display = await asyncio.to_thread(self.xvfb.start)
        self.display = self.display or os.environ.get("DISPLAY")
        if not self.display:
            raise EnvError("no X display: set $DISPLAY, pass display=':0', or use virtual_display=(1280, 800)")
        try:
            import mss
            from Xlib import X
            from Xlib.display import Display
        except ImportError as e:
            raise EnvError("DesktopEnv needs mss and python-xlib: pip install 'pixelpilot[desktop]'") from e
        try:
            self._xdisplay = Display(self.display)
            # Window maps, moves and root property changes (_NET_ACTIVE_WINDOW) mark the title stale.
            self._xdisplay.screen().root.change_attributes(event_mask=X.SubstructureNotifyMask | X.PropertyChangeMask)
            self._sct = mss.MSS(display=self.display)
            monitors = self._sct.monitors
            if self.monitor >= len(monitors):
                raise EnvError(f"monitor {self.monitor} does not exist; this display has {len(monitors) - 1} "
                               "(use 1.., or 0 for all of them)")
            self._monitor = dict(monitors[self.monitor])
            self._gui = _bind_pyautogui(self.display, self.failsafe)
        except Exception as e:
            display = self.display
            await self.close()
            if isinstance(e, EnvError):
                raise
            raise EnvError(f"cannot use X display {display}: {e}") from e

    async def reset(self, task: Task | None = None) -> Observation:
        """Connect (starting Xvfb if asked) and look at the screen. The desktop itself is not reset."""
        await self.start()
        return await self.observe()

    async def close(self) -> None:
        """Stop programs started by ``open_app``, disconnect, and stop Xvfb if this env started it."""
        for proc in self._children:
            _stop_process(proc)
        self._children.clear()
        if self._gui is not None:
            _unbind_pyautogui()
            self._gui = None
        if self._sct is not None:
            self._sct.close()
            self._sct = None
        self._unbind_keycodes()
        self._spare_keycodes = []
        self._window, self._window_stale = None, True
        if self._xdisplay is not None:
            try:
                self._xdisplay.close()
            except Exception:
                pass  # the server went first
            self._xdisplay = None
        if self.xvfb is not None:
            self.xvfb.stop()
            self.xvfb = None
            self.display = None

    async def __aenter__(self) -> "DesktopEnv":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- seeing ------------------------------------------------------------------------------

    def grab(self) -> "ScreenShot":
        """A raw capture of the monitor (BGRA pixels, no encoding)."""
        if self._sct is None or self._monitor is None:
            raise EnvError("the desktop is not started; call reset() first")
        try:
            return self._sct.grab(self._monitor)
        except Exception as e:
            raise EnvError(f"could not capture display {self.display}: {e}") from e

    async def observe(self) -> Observation:
        """The screen as it is now; the PNG is encoded only when someone reads ``obs.png``."""
        shot = self.grab()
        assert self._monitor is not None
        w, h = shot.size
        return Observation(
            png=_png_encoder(shot, self.png_compress_level), width=w, height=h,
            input_width=self._monitor["width"], input_height=self._monitor["height"], input_space="screen",
            **self._active_window(),
        )

    def _active_window(self) -> dict[str, str | None]:
        """The active window's title and app, looked up again only after an action or an X event that
        may have changed them (a lookup is several round trips to the X server; checking for events is none)."""
        d = self._xdisplay
        if d is not None and d.pending_events():
            while d.pending_events():
                d.next_event()
            self._window_stale = True
        if self._window_stale:
            self._window, self._window_stale = self.active_window(), False
        return dict(zip(("title", "app"), self._window or (None, None)))

    def active_window(self) -> tuple[str, str | None] | None:
        """The title and WM_CLASS of the active window (EWMH), else of the focused one, else of the one
        under the pointer; None when there is no titled window."""
        d = self._xdisplay
        if d is None:
            return None
        try:
            from Xlib import X

            root = d.screen().root
            prop = root.get_full_property(d.intern_atom("_NET_ACTIVE_WINDOW"), 0)
            win = d.create_resource_object("window", prop.value[0]) if prop and prop.value[0] else None
            if win is None:
                focus = d.get_input_focus().focus
                # 0/1 are None/PointerRoot: keyboard focus follows the pointer, so ask what is under it
                win = focus if not isinstance(focus, int) else root.query_pointer().child
            net_name, utf8 = d.intern_atom("_NET_WM_NAME"), d.intern_atom("UTF8_STRING")
            while win and win != root:
                name = win.get_full_property(net_name, utf8)
                title = name.value if name and name.value else win.get_wm_name()
                if title:
                    win.change_attributes(event_mask=X.PropertyChangeMask)  # hear about renames
                    wm_class = win.get_wm_class()
                    text = title.decode("utf-8", "replace") if isinstance(title, bytes) else str(title)
                    return text, wm_class[1] if wm_class else None
                win = win.query_tree().parent
        except Exception:
            return None  # a window closing under us: no title this time
        return None

    async def wait_until_stable(self, timeout: float | None = None) -> bool:
        """Wait until two captures ``settle_interval`` apart are identical (bounded); True if they were."""
        deadline = time.monotonic() + (self.settle_timeout if timeout is None else timeout)
        last = self.grab().raw
        while time.monotonic() < deadline:
            await asyncio.sleep(self.settle_interval)
            now = self.grab().raw
            if now == last:
                return True
            last = now
        return False

    # --- acting ------------------------------------------------------------------------------

    async def execute(self, action: Any) -> Outcome:
        if self._gui is None or self._monitor is None:
            raise EnvError("the desktop is not started; call reset() first")
        px = ground(action, self._monitor["width"], self._monitor["height"], self.grid)
        self._window_stale = True  # an action may focus, open or close a window
        try:
            error = await self._dispatch(action.action, px)
        except self._gui.FailSafeException as e:
            raise EnvError("stopped by pyautogui's fail-safe: the pointer was thrown into a screen corner") from e
        except Exception as e:
            if self._xdisplay is None or not _display_alive(self.display):
                raise EnvError(f"display {self.display} is gone: {e}") from e
            return Outcome(ok=False, error=f"{action.action} failed: {e}", pixel_action=px)
        if error:
            return Outcome(ok=False, error=error, pixel_action=px)
        await self.wait_until_stable()
        return Outcome(ok=True, pixel_action=px)

    def _at(self, a: dict[str, Any], fx: str = "x", fy: str = "y") -> tuple[int, int]:
        assert self._monitor is not None
        return _pixel_to_monitor(a[fx], a[fy], self._monitor, self.failsafe)

    async def _dispatch(self, kind: str, a: dict[str, Any]) -> str | None:
        gui = self._gui
        run = asyncio.to_thread
        if kind in ("click", "double_click", "triple_click"):
            x, y = self._at(a)
            clicks = {"click": 1, "double_click": 2, "triple_click": 3}[kind]
            await run(gui.click, x, y, clicks=clicks, interval=0.02, button=a.get("button", "left"))
        elif kind == "move":
            await run(gui.moveTo, *self._at(a))
        elif kind == "drag":
            x, y = self._at(a)
            x2, y2 = self._at(a, "x2", "y2")
            await run(gui.moveTo, x, y)
            await run(gui.dragTo, x2, y2, duration=self.drag_seconds, button="left")
        elif kind == "scroll":
            x, y = self._at(a)
            down, right = wheel_clicks(a["dy"], self.wheel_step_px), wheel_clicks(a["dx"], self.wheel_step_px)
            if down:
                await run(gui.scroll, -down, x, y)  # pyautogui: positive scrolls up
            if right:
                await run(gui.hscroll, right, x, y)  # positive scrolls right
        elif kind == "type":
            return await self._type(a["text"])
        elif kind == "key":
            keys = pyautogui_keys(a["keys"])
            bad = [k for k, name in zip(a["keys"], keys) if not gui.isValidKey(name)]
            if bad:
                return f"unknown key {bad[0]!r}; use names like ctrl, alt, shift, win, enter, esc, tab, up, f5, a"
            await run(gui.hotkey, *keys)
        elif kind == "wait":
            await asyncio.sleep(a["seconds"])
        elif kind == "open_app":
            return self._open_app(a["name"])
        else:
            return f"the desktop cannot do {kind!r}; use click, drag, scroll, type, key or open_app"
        return None

    async def _type(self, text: str) -> str | None:
        if all(c in "\n\t" or " " <= c <= "~" for c in text):
            await asyncio.to_thread(self._gui.write, text)
        else:
            await asyncio.to_thread(self._type_unicode, text)
        return None

    def _type_unicode(self, text: str) -> None:
        """Type any text by binding each character's keysym to a spare keycode, then pressing it.

        This is what ``xdotool type`` does, except that xdotool rebinds one scratch keycode per
        character and unbinds it as soon as it is done, and an app that looks a keysym up a moment
        later reads the changed map and drops characters (seen here in one run of three). We bind
        every character of a run first, pause, type the run, and keep the bindings until a later
        run needs the keycodes back, or the env closes.
        """
        from Xlib import X
        from Xlib.ext.xtest import fake_input

        d = self._xdisplay
        if not self._spare_keycodes:
            first, last = d.display.info.min_keycode, d.display.info.max_keycode
            keymap = d.get_keyboard_mapping(first, last - first + 1)
            self._spare_keycodes = [first + i for i, syms in enumerate(keymap) if not any(syms)]
            if not self._spare_keycodes:
                raise EnvError("the keyboard map has no free keycode to type non-ASCII text with")
        spare = self._spare_keycodes
        segments: list[str] = [""]
        for ch in text:  # runs of text with no more distinct characters than there are spare keycodes
            if ch not in segments[-1] and len(set(segments[-1])) == len(spare):
                segments.append("")
            segments[-1] += ch
        for i, segment in enumerate(segments):
            if i:
                time.sleep(0.1)  # let the app read the previous run's keys before they are rebound
            codes = {ch: spare[j] for j, ch in enumerate(dict.fromkeys(segment))}
            for ch, kc in codes.items():
                d.change_keyboard_mapping(kc, [(_keysym(ch),) * 2])
            d.sync()
            self._bound_keycodes.update(codes.values())
            # Apps refresh their copy of the keymap as the MappingNotify events arrive; give them that
            # moment before the first key of the run, or a key can be looked up in the old map.
            time.sleep(0.05)
            for ch in segment:
                fake_input(d, X.KeyPress, codes[ch])
                fake_input(d, X.KeyRelease, codes[ch])
            d.sync()

    def _unbind_keycodes(self) -> None:
        if self._bound_keycodes and self._xdisplay is not None:
            try:
                for kc in self._bound_keycodes:
                    self._xdisplay.change_keyboard_mapping(kc, [(0, 0)])
                self._xdisplay.sync()
            except Exception:
                pass  # the display is gone, and its keymap with it
        self._bound_keycodes.clear()

    def _open_app(self, name: str) -> str | None:
        argv = self.apps.get(name) or _desktop_entry(name)
        if argv is None:
            known = ", ".join(sorted(self.apps)) or "none configured"
            return f"no app called {name!r}; apps= names: {known}; installed .desktop entries work by their Name"
        try:
            proc = subprocess.Popen(argv, env={**os.environ, "DISPLAY": str(self.display)},
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True)
        except OSError as e:
            return f"could not start {name!r} ({argv[0]}): {e.strerror}"
        self._children.append(proc)
        return None


def _png_encoder(shot: "ScreenShot", level: int) -> Callable[[], bytes]:
    def encode() -> bytes:
        import io

        from PIL import Image

        img = Image.frombuffer("RGB", shot.size, shot.bgra, "raw", "BGRX", 0, 1)
        buf = io.BytesIO()
        img.save(buf, format="PNG", compress_level=level)
        return buf.getvalue()

    return encode


def _keysym(ch: str) -> int:
    """The X keysym of a character: Latin-1 keysyms are their code points, the rest 0x01000000 + it."""
    special = {"\n": 0xFF0D, "\t": 0xFF09}  # Return, Tab
    if ch in special:
        return special[ch]
    code = ord(ch)
    return code if 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xFF else 0x01000000 | code


def _display_alive(display: str | None) -> bool:
    if not display:
        return False
    try:
        from Xlib.display import Display

        Display(display).close()
        return True
    except Exception:
        return False


def _desktop_entry(label: str) -> list[str] | None:
    """The command line of an installed ``.desktop`` entry whose Name (or file name) is ``label``."""
    dirs = [os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local/share")]
    dirs += (os.environ.get("XDG_DATA_DIRS") or "/usr/local/share:/usr/share").split(":")
    want = label.strip().lower()
    for d in dirs:
        folder = Path(d) / "applications"
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.desktop")):
            parser = configparser.ConfigParser(interpolation=None, strict=False)
            try:
                parser.read(path, encoding="utf-8")
                entry = parser["Desktop Entry"]
            except (configparser.Error, KeyError, UnicodeDecodeError):
                continue
            if want not in (entry.get("Name", "").lower(), path.stem.lower()) or "Exec" not in entry:
                continue
            # Field codes (%f, %U, …) stand for files and URLs the launcher would pass; there are none.
            return [arg for arg in shlex.split(entry["Exec"]) if not (len(arg) == 2 and arg[0] == "%")]
    return None
