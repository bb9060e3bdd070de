"""A Linux desktop on X11: mss captures the screen, XTEST (python-xlib) sends the input.

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

Typing. Characters on the keyboard map are typed through their keys (with Shift where needed);
the others (accents, CJK, emoji) by binding their keysyms to spare keycodes and pressing those
(xdotool's method, without its race: see ``XInput.type_text``).

Input. Each env sends XTEST events on its own X connection (``xinput.XInput``), so several envs on
different displays run at once in one process. There is no pause after each event (the env waits
once per action for the screen to settle: until the X server reports no drawing for ``settle_interval``,
``xsettle.DamageWatch``). The fail-safe is on for a real display (a person can stop
the agent by throwing the pointer into a screen corner; the env nudges its own targets one pixel away
from corners so only a person trips it) and off on a virtual display (nobody is there).

Windows. A virtual display runs a window manager (openbox by default, ``window_manager=None`` for
none): title bars, click to focus, dialogs over their parent. Windows can be listed, focused, moved
and closed, and the clipboard read and written (``x11wm``; the ``window`` and ``set_clipboard``
actions of task files). ``open_apps`` names programs to open when the env starts.
"""

from __future__ import annotations

import asyncio
import configparser
import os
import select
import shlex
import shutil
import subprocess
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from .._process import stop_process
from ..actions import Observation, Task
from . import a11y, x11wm
from .base import (
    CLICKS,
    AccessibilityTree,
    AccessibleNode,
    Box,
    Clipboard,
    Env,
    EnvError,
    EnvKind,
    PixelAction,
    TextMatch,
    TextQueries,
    WindowInfo,
    Windows,
    handles,
)

if TYPE_CHECKING:
    from mss.base import MSS
    from mss.screenshot import ScreenShot
    from PIL.Image import Image

    from .xinput import XInput
    from .xsettle import DamageWatch

T = TypeVar("T")


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
                [
                    exe,
                    "-displayfd",
                    str(write_fd),
                    "-screen",
                    "0",
                    f"{w}x{h}x{self.depth}",
                    "-dpi",
                    str(self.dpi),
                    "-nolisten",
                    "tcp",
                    "-noreset",
                ],
                pass_fds=(write_fd,),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        finally:
            os.close(write_fd)
        self._finalizer = weakref.finalize(self, stop_process, self._proc)
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


#: How long a window action waits for its window to show (an app still starting).
WINDOW_TIMEOUT = 5.0


# --- the env ---------------------------------------------------------------------------------


@dataclass(kw_only=True, eq=False)
class DesktopEnv(Env, TextQueries, AccessibilityTree, Windows, Clipboard):
    """An X11 desktop: mss for the screen, XTEST on the env's own python-xlib connection for input.

    ``apps`` names the programs ``open_app`` may start (label -> argv); labels of installed
    ``.desktop`` entries work too. Model output never becomes a command line of its own.
    ``open_apps`` are labels to open when the env starts, each waited for (``app_timeout``) until
    its window shows where a window manager lists windows.
    ``failsafe`` None: on for a real display, off for a virtual one. ``window_manager`` runs in a
    virtual display (a display of one's own is left as it is). ``png_compress_level``: the recorded
    PNG's, 0 (fastest) to 3 (smallest); lossless at every level.

    Text is found through the accessibility tree (AT-SPI, ``envs/a11y.py``): GTK and Qt programs'
    controls by role and name, without OCR. ``accessibility`` True starts an accessibility bus with a
    virtual display (programs started by ``open_app`` or with :meth:`app_env` join it); a real
    display's session is read as it is. A program without accessibility shows no text this way.
    """

    kind: ClassVar[EnvKind] = "desktop"
    label = "the desktop"

    display: str | None = None
    virtual_display: tuple[int, int] | None = None
    monitor: int = 1
    failsafe: bool | None = None
    wheel_step_px: int = 50
    drag_seconds: float = 0.3
    settle_timeout: float = 2.0
    settle_interval: float = 0.03
    png_compress_level: int = 1
    apps: dict[str, list[str]] | None = None
    accessibility: bool = True
    open_apps: tuple[str, ...] = ()
    app_timeout: float = 15.0
    window_manager: str | None = "openbox"

    def __post_init__(self) -> None:
        if self.display and self.virtual_display:
            raise ValueError("pass display= or virtual_display=, not both")
        if self.monitor < 0:
            raise ValueError(f"monitor must be 0 (all monitors) or 1.. (one monitor), got {self.monitor}")
        if self.wheel_step_px < 1:
            raise ValueError(f"wheel_step_px must be positive, got {self.wheel_step_px}")
        if self.window_manager is not None and self.window_manager not in x11wm.WINDOW_MANAGERS:
            known = ", ".join(x11wm.WINDOW_MANAGERS)
            raise ValueError(f"unknown window_manager {self.window_manager!r}; known: {known} (or None for none)")
        if not 0 <= self.png_compress_level <= 3:
            raise ValueError(f"png_compress_level must be 0-3 (ISA-L's levels), got {self.png_compress_level}")
        self.xvfb: VirtualDisplay | None = None
        self.wm: x11wm.WindowManager | None = None
        self._sct: MSS | None = None
        self._xdisplay: Any = None
        self._input: XInput | None = None
        self._monitor: dict[str, int] | None = None
        self._children: list[subprocess.Popen[bytes]] = []
        self._window: tuple[str, str | None] | None = None  # (title, app) of the active window
        self._window_stale = True
        self._fresh: tuple[ScreenShot, float] | None = None  # the settle's last grab and when, for observe()
        self.a11y: a11y.A11ySession | None = None
        self._tree: a11y.A11yReader | None = None
        self._drawing: DamageWatch | None = None  # what the X server draws, for settle()

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

            from .xinput import XInput
            from .xsettle import DamageWatch
        except ImportError as e:
            raise EnvError("DesktopEnv needs mss and python-xlib: pip install 'pixelpilot[desktop]'") from e
        try:
            self._xdisplay = Display(self.display)
            # Window maps, moves and root property changes (_NET_ACTIVE_WINDOW) mark the title stale.
            self._xdisplay.screen().root.change_attributes(event_mask=X.SubstructureNotifyMask | X.PropertyChangeMask)
            self._sct = mss.MSS(display=self.display)
            monitors = self._sct.monitors
            if self.monitor >= len(monitors):
                raise EnvError(
                    f"monitor {self.monitor} does not exist; this display has {len(monitors) - 1} "
                    "(use 1.., or 0 for all of them)"
                )
            self._monitor = dict(monitors[self.monitor])
            failsafe = self.virtual_display is None if self.failsafe is None else self.failsafe
            self._input = XInput(self._xdisplay, failsafe=failsafe)
            if self.accessibility:
                await self._start_accessibility()
            if self.xvfb is not None and self.window_manager is not None:
                self.wm = x11wm.WindowManager(self.window_manager)
                await asyncio.to_thread(self.wm.start, self.display)
            for name in self.open_apps:
                if error := await self._launch(name, wait=True):
                    raise EnvError(f"open_apps: {error}")
            try:
                self._drawing = DamageWatch(self.display)
            except RuntimeError:
                self._drawing = None  # no DAMAGE extension: settle compares grabs
        except Exception as e:
            display = self.display
            await self.aclose()
            if isinstance(e, EnvError):
                raise
            raise EnvError(f"cannot use X display {display}: {e}") from e

    async def _start_accessibility(self) -> None:
        """An accessibility bus for a virtual display; a real display's session is used as it is.
        Without one the desktop still works, finding text by OCR only."""
        if self.xvfb is not None:
            session = a11y.A11ySession(str(self.display))
            try:
                await session.start()
            except EnvError as e:
                a11y.log.warning("no accessibility tree on %s: %s", self.display, e)
                return
            self.a11y = session
        self._tree = a11y.A11yReader(self.a11y.address if self.a11y else None)

    def app_env(self) -> dict[str, str]:
        """The environment for a program on this display: ``DISPLAY``, and the accessibility bus's
        addresses when the env started one."""
        env = {**os.environ, "DISPLAY": str(self.display)}
        if self.a11y is not None:
            env.pop("NO_AT_BRIDGE", None)
            env.update(self.a11y.env)
        return env

    async def reset(self, task: Task | None = None) -> Observation:
        """Connect (starting Xvfb if asked) and look at the screen. The desktop itself is not reset."""
        await self.start()
        return await self.observe()

    async def aclose(self) -> None:
        """Stop programs started by ``open_app``, disconnect, and stop Xvfb if this env started it."""
        for proc in self._children:
            stop_process(proc)
        self._children.clear()
        if self._tree is not None:
            self._tree.disconnect()
            self._tree = None
        if self.a11y is not None:
            self.a11y.stop()
            self.a11y = None
        if self._input is not None:
            self._input.close()
            self._input = None
        if self._sct is not None:
            self._sct.close()
            self._sct = None
        if self._drawing is not None:
            self._drawing.close()
            self._drawing = None
        self._window, self._window_stale = None, True
        if self._xdisplay is not None:
            try:
                self._xdisplay.close()
            except Exception:
                pass  # the server went first
            self._xdisplay = None
        if self.wm is not None:
            self.wm.stop()
            self.wm = None
        if self.xvfb is not None:
            self.xvfb.stop()
            self.xvfb = None
            self.display = None

    # --- seeing ------------------------------------------------------------------------------

    def grab(self) -> ScreenShot:
        """A raw capture of the monitor (BGRA pixels, no encoding)."""
        if self._sct is None or self._monitor is None:
            raise EnvError("the desktop is not started; call reset() first")
        try:
            return self._sct.grab(self._monitor)
        except Exception as e:
            raise EnvError(f"could not capture display {self.display}: {e}") from e

    async def observe(self) -> Observation:
        """The screen as it is now; the PNG is encoded only when someone reads ``obs.png``.

        Right after a settle, its last grab is the look: two grabs ``settle_interval`` apart were
        the same, so one younger than that is as good as a new one."""
        fresh, self._fresh = self._fresh, None
        shot = fresh[0] if fresh is not None and time.monotonic() - fresh[1] < self.settle_interval else self.grab()
        assert self._monitor is not None
        w, h = shot.size
        title, app = self._active_window()
        return Observation(
            png=_png_encoder(shot, self.png_compress_level),
            raw=_pixels(shot),
            width=w,
            height=h,
            input_width=self._monitor["width"],
            input_height=self._monitor["height"],
            input_space="screen",
            title=title,
            app=app,
        )

    def _active_window(self) -> tuple[str | None, str | None]:
        """The active window's title and app, looked up again only after an action or an X event that
        may have changed them (a lookup is several round trips to the X server; checking for events is none)."""
        d, inp = self._xdisplay, self._input
        if d is not None and inp is not None:
            with inp.lock:  # the connection is shared with input sent from worker threads
                if d.pending_events():
                    while d.pending_events():
                        d.next_event()
                    self._window_stale = True
        if self._window_stale:
            self._window, self._window_stale = self.active_window(), False
        return self._window or (None, None)

    def active_window(self) -> tuple[str, str | None] | None:
        """The title and WM_CLASS of the active window (EWMH), else of the focused one, else of the one
        under the pointer; None when there is no titled window."""
        d, inp = self._xdisplay, self._input
        if d is None or inp is None:
            return None
        with inp.lock:  # the connection is shared with input sent from worker threads
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
        last = self.grab()
        stable = False
        while time.monotonic() < deadline:
            await asyncio.sleep(self.settle_interval)
            now = self.grab()
            stable, last = now.raw == last.raw, now
            if stable:
                break
        self._fresh = (last, time.monotonic())
        return stable

    # --- text and the accessibility tree (envs/a11y.py) ----------------------------------------------

    def _screen(self) -> tuple[int, int, int, int] | None:
        m = self._monitor
        return None if m is None else (m["left"], m["top"], m["width"], m["height"])

    async def accessible_nodes(self) -> list[AccessibleNode]:
        """The showing elements of the programs on the monitor, boxes in input-space pixels."""
        screen = self._screen()
        if self._tree is None or screen is None:
            return []
        return [e.node for e in await self._tree.read(screen)]

    async def find_text(self, text: str, *, role: str | None = None) -> list[TextMatch]:
        """Every showing element whose accessible name or text matches ``text`` (of the AT-SPI
        ``role``, e.g. "push button"); empty when no program on the display publishes a tree."""
        screen = self._screen()
        if self._tree is None or screen is None:
            return []
        return await self._tree.find_text(text, screen, role=role)

    async def page_text(self) -> str:
        """The names and texts of the showing elements, one per line (OCR is not used)."""
        return a11y.visible_text(await self.accessible_nodes())

    # --- primitives for Env.execute ------------------------------------------------------------

    async def input_size(self) -> tuple[int, int]:
        if self._input is None or self._monitor is None:
            raise EnvError("the desktop is not started; call reset() first")
        return self._monitor["width"], self._monitor["height"]

    def before_action(self) -> None:
        self._window_stale = True  # an action may focus, open or close a window
        self._fresh = None
        if self._drawing is not None:
            self._drawing.mark()

    async def settle(self) -> None:
        """Wait until nothing was drawn for ``settle_interval`` since the action or the last drawing
        (the X server's DAMAGE reports, ``envs/xsettle.py``), bounded by ``settle_timeout``; the look
        is grabbed as the wait begins and again at its end only if something was drawn. Without
        DAMAGE: :meth:`wait_until_stable`."""
        drawing = self._drawing
        if drawing is None:
            await self.wait_until_stable()
            return
        waiting = asyncio.get_running_loop().run_in_executor(
            None, drawing.wait_quiet, self.settle_interval, self.settle_timeout
        )
        try:
            first = self.grab()  # taken while the wait runs: the look if the action drew nothing
        finally:
            _, drawn = await waiting  # the watch's connection is one caller's at a time
        self._fresh = (self.grab() if drawn else first, time.monotonic())

    def on_error(self, error: Exception, action: PixelAction) -> str:
        if isinstance(error, EnvError):
            raise error  # the fail-safe: a person stopped the run
        if self._xdisplay is None or not _display_alive(self.display):
            raise EnvError(f"display {self.display} is gone: {error}") from error
        return f"{action['action']} failed: {error}"

    # --- handlers: X round trips and pauses block, so they run off the event loop ----------------

    def _at(self, a: PixelAction, fx: str = "x", fy: str = "y") -> tuple[int, int]:
        assert self._monitor is not None
        return _pixel_to_monitor(a[fx], a[fy], self._monitor, self._xinput.failsafe)

    @property
    def _xinput(self) -> XInput:
        if self._input is None:
            raise EnvError("the desktop is not started; call reset() first")
        return self._input

    @handles(*CLICKS)
    async def _click(self, a: PixelAction) -> None:
        button, clicks = a.get("button", "left"), CLICKS[a["action"]]
        await asyncio.to_thread(self._xinput.click, *self._at(a), button=button, clicks=clicks, interval=0.02)

    @handles("move")
    async def _move(self, a: PixelAction) -> None:
        await asyncio.to_thread(self._xinput.move, *self._at(a))

    @handles("drag")
    async def _drag(self, a: PixelAction) -> None:
        await asyncio.to_thread(self._xinput.drag, *self._at(a), *self._at(a, "x2", "y2"), self.drag_seconds)

    @handles("scroll")
    async def _scroll(self, a: PixelAction) -> None:
        down, right = wheel_clicks(a["dy"], self.wheel_step_px), wheel_clicks(a["dx"], self.wheel_step_px)
        await asyncio.to_thread(self._xinput.scroll, *self._at(a), down, right)

    @handles("type")
    async def _type(self, a: PixelAction) -> None:
        await asyncio.to_thread(self._xinput.type_text, a["text"])

    @handles("key")
    async def _key(self, a: PixelAction) -> str | None:
        try:
            await asyncio.to_thread(self._xinput.press_keys, a["keys"])
        except ValueError as e:  # a key this keyboard does not have, told back to the model
            return str(e)
        return None

    @handles("open_app")
    async def _open_app(self, a: PixelAction) -> str | None:
        return await self._launch(a["name"])

    @handles("window")
    async def _window_op(self, a: PixelAction) -> str | None:
        try:
            found = await self.wait_for_window(a["window"], WINDOW_TIMEOUT)
            if found is None:
                titles = ", ".join(repr(w.title) for w in await self.list_windows()) or "none"
                return f"no window called {a['window']!r}; open windows: {titles}"
            if a["op"] == "focus":
                await self.focus_window(found.id)
            elif a["op"] == "move":
                x1, y1, x2, y2 = a["box"]
                await self.move_resize_window(found.id, Box(x1, y1, x2 - x1, y2 - y1))
            else:
                await self.close_window(found.id)
        except (EnvError, ValueError) as e:  # no window manager, or it did not do it: the step's error
            return str(e)
        return None

    @handles("set_clipboard")
    async def _set_clipboard(self, a: PixelAction) -> str | None:
        try:
            await self.write_clipboard(a["text"])
        except EnvError as e:
            return str(e)
        return None

    # --- windows and the clipboard (x11wm, on the env's connection) ------------------------------

    async def _on_x(self, fn: Callable[..., T], *args: Any) -> T:
        inp = self._xinput

        def call() -> T:
            with inp.lock:  # the connection is shared with input sent from worker threads
                return fn(self._xdisplay, *args)

        return await asyncio.to_thread(call)

    @property
    def _origin(self) -> tuple[int, int]:
        assert self._monitor is not None
        return self._monitor["left"], self._monitor["top"]

    async def list_windows(self) -> list[WindowInfo]:
        return await self._on_x(x11wm.list_windows, self._origin)

    async def focus_window(self, window: int) -> None:
        await self._on_x(x11wm.focus_window, window)

    async def move_resize_window(self, window: int, box: Box) -> None:
        await self._on_x(x11wm.move_resize_window, window, box, self._origin)

    async def close_window(self, window: int) -> None:
        await self._on_x(x11wm.close_window, window)

    async def read_clipboard(self) -> str:
        return await asyncio.to_thread(x11wm.read_clipboard, self._started_display())

    async def write_clipboard(self, text: str) -> None:
        await asyncio.to_thread(x11wm.write_clipboard, self._started_display(), text)

    def _started_display(self) -> str:
        if self._input is None or self.display is None:
            raise EnvError("the desktop is not started; call reset() first")
        return self.display

    async def _launch(self, name: str, *, wait: bool = False) -> str | None:
        """Start the program ``name`` labels; None once started (with ``wait``, once its window shows
        where a window manager lists windows), else why not."""
        apps = self.apps or {}
        argv = apps.get(name) or _desktop_entry(name)
        if argv is None:
            known = ", ".join(sorted(apps)) or "none configured"
            return f"no app called {name!r}; apps= names: {known}; installed .desktop entries work by their Name"
        before = {w.id for w in await self.list_windows()} if wait and self.wm is not None else set()
        try:
            proc = subprocess.Popen(
                argv,
                env=self.app_env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as e:
            return f"could not start {name!r} ({argv[0]}): {e.strerror}"
        self._children.append(proc)
        if wait and self.wm is not None:
            if not await self._on_x(x11wm.wait_for_window, before, proc, self.app_timeout):
                ended = f"it exited with status {proc.returncode}" if proc.poll() is not None else "none showed"
                return f"{name!r} ({shlex.join(argv)}) opened no window within {self.app_timeout:.0f} s: {ended}"
        return None


def _pixels(shot: ScreenShot) -> Callable[[], Image]:
    def convert() -> Image:
        import PIL.Image

        return PIL.Image.frombuffer("RGB", shot.size, shot.bgra, "raw", "BGRX", 0, 1)

    return convert


def _png_encoder(shot: ScreenShot, level: int) -> Callable[[], bytes]:
    def encode() -> bytes:
        from .._png import encode_png

        return encode_png(_pixels(shot)(), level=level)  # lossless; 1080p in ~10 ms, Pillow's took 40+

    return encode


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
