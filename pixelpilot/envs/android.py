"""An Android phone (or emulator) over adb, through adbutils.

Commands go through adbutils' device interface: ``device.shell(cmd, encoding=…)`` for ``input`` and
the queries, ``device.shell2(cmd, encoding=None, v2=True)`` for screenshots, so any object with those
two methods and a ``serial`` can stand in for a device (see ``android_double``).

Coordinates. The input space is the display's physical pixels in its current orientation, which
is exactly the size ``screencap`` reports; ``input tap``/``swipe`` take the same pixels.

Actions. ``click`` is ``input tap``; ``long_press`` a swipe that starts and ends at one point;
``swipe`` ``input swipe``; ``scroll`` a swipe against the scroll direction, as long as the amount
(split in two when one swipe would leave the screen); ``drag`` ``input draganddrop`` (a long press,
then the move; Android 7 and later); ``key`` one ``input keyevent``, a combination one ``input
keycombination`` (Android 12 and later), a character without a key of its own (``A``, ``!``)
``input text``. Whatever ``input`` prints as an error (an unknown command on an older device) is
told back as the action's error.

Screenshots. ``screencap`` without ``-p`` returns raw pixels behind a header (width, height, pixel
format, and from Android 12 a colour space): no PNG encode on the phone (hundreds of ms on many
devices); the PNG for the model is encoded here, lazily. The capture runs on adb's shell protocol
v2, which keeps the command's stderr (``[Warning] Multiple displays were found…``) and a terminal's
newline translation out of the bytes; where a device lacks it, text in front of the header is
skipped. A frame whose raw bytes do not parse is taken again with ``screencap -p``: that frame
only, the next one tries raw again.

Settling. After an action the env captures until two frames in a row match, at most
``settle_interval`` apart (a capture that takes longer is not padded), bounded by
``settle_timeout``; a screen identical to the one before the action must stay so for
``settle_grace`` seconds, so an effect that has not been drawn yet is not taken for a still screen.

Text. Printable ASCII goes through ``input text``: the text is single-quoted for the device's
shell, spaces are written ``%s`` (``input``'s own escape), a literal ``%s`` is split across two
calls, newlines and tabs are ENTER and TAB key events. ``input`` cannot type anything else, so
text with other characters goes through ADBKeyboard (``com.android.adbkeyboard``, installed by
the user): the env switches the input method to it, broadcasts the text base64-encoded
(``ADB_INPUT_B64``), and switches back to the previous input method.
"""

from __future__ import annotations

import asyncio
import base64
import io
import math
import os
import re
import shlex
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, cast

from ..actions import Observation, Task, png_size
from .base import Env, EnvError, EnvKind, PixelAction, handles

if TYPE_CHECKING:
    from PIL.Image import Image

ADB_KEYBOARD = "com.android.adbkeyboard/.AdbIME"
#: The API levels that brought ``input draganddrop`` (Android 7) and ``input keycombination`` (Android 12).
DRAGANDDROP_API = 24
KEYCOMBINATION_API = 31
#: Scroll and drag swipes move this many pixels a millisecond: slow enough that the content follows
#: the finger with little fling, at least ``MIN_SWIPE_MS`` long.
SWIPE_PX_PER_MS = 1.0
MIN_SWIPE_MS = 300
#: Scroll swipes keep this share of the screen's width and height clear of each edge, where the
#: system's own gestures (back, home, the notification shade) start.
EDGE_MARGIN = 0.08
#: The phone's system buttons (``SystemButton.button``) as key events.
SYSTEM_BUTTONS = {"back": "KEYCODE_BACK", "home": "KEYCODE_HOME", "menu": "KEYCODE_MENU", "enter": "KEYCODE_ENTER"}
#: Canonical key names (:mod:`pixelpilot.actions.keys`) to Android key codes. Letters, digits and
#: common punctuation are single characters (:func:`android_keycodes`); a canonical key missing
#: here has no key on a phone.
ANDROID_KEYCODES: dict[str, str] = {
    "ctrl": "KEYCODE_CTRL_LEFT",
    "ctrl_right": "KEYCODE_CTRL_RIGHT",
    "alt": "KEYCODE_ALT_LEFT",
    "alt_right": "KEYCODE_ALT_RIGHT",
    "shift": "KEYCODE_SHIFT_LEFT",
    "shift_right": "KEYCODE_SHIFT_RIGHT",
    "meta": "KEYCODE_META_LEFT",
    "meta_right": "KEYCODE_META_RIGHT",
    "enter": "KEYCODE_ENTER",
    "escape": "KEYCODE_ESCAPE",
    "tab": "KEYCODE_TAB",
    "space": "KEYCODE_SPACE",
    "backspace": "KEYCODE_DEL",
    "delete": "KEYCODE_FORWARD_DEL",
    "insert": "KEYCODE_INSERT",
    "home": "KEYCODE_MOVE_HOME",
    "end": "KEYCODE_MOVE_END",
    "pageup": "KEYCODE_PAGE_UP",
    "pagedown": "KEYCODE_PAGE_DOWN",
    "up": "KEYCODE_DPAD_UP",
    "down": "KEYCODE_DPAD_DOWN",
    "left": "KEYCODE_DPAD_LEFT",
    "right": "KEYCODE_DPAD_RIGHT",
    "capslock": "KEYCODE_CAPS_LOCK",
    "numlock": "KEYCODE_NUM_LOCK",
    "scrolllock": "KEYCODE_SCROLL_LOCK",
    "pause": "KEYCODE_BREAK",
    "printscreen": "KEYCODE_SYSRQ",
    "menu": "KEYCODE_MENU",
    "help": "KEYCODE_HELP",
    **{f"num{i}": f"KEYCODE_NUMPAD_{i}" for i in range(10)},
    "multiply": "KEYCODE_NUMPAD_MULTIPLY",
    "add": "KEYCODE_NUMPAD_ADD",
    "separator": "KEYCODE_NUMPAD_COMMA",
    "subtract": "KEYCODE_NUMPAD_SUBTRACT",
    "decimal": "KEYCODE_NUMPAD_DOT",
    "divide": "KEYCODE_NUMPAD_DIVIDE",
    **{f"f{i}": f"KEYCODE_F{i}" for i in range(1, 13)},
    "back": "KEYCODE_BACK",
    "volume_up": "KEYCODE_VOLUME_UP",
    "volume_down": "KEYCODE_VOLUME_DOWN",
    "volume_mute": "KEYCODE_VOLUME_MUTE",
    "power": "KEYCODE_POWER",
    "camera": "KEYCODE_CAMERA",
    "search": "KEYCODE_SEARCH",
}
_CHAR_KEYCODES = {
    " ": "SPACE",
    "\n": "ENTER",
    "\t": "TAB",
    ",": "COMMA",
    ".": "PERIOD",
    "-": "MINUS",
    "=": "EQUALS",
    "/": "SLASH",
    "\\": "BACKSLASH",
    ";": "SEMICOLON",
    "'": "APOSTROPHE",
    "[": "LEFT_BRACKET",
    "]": "RIGHT_BRACKET",
    "`": "GRAVE",
    "@": "AT",
    "+": "PLUS",
    "*": "STAR",
    "#": "POUND",
}
#: Labels of common apps whose package names do not contain the label.
COMMON_APPS = {
    "settings": "com.android.settings",
    "chrome": "com.android.chrome",
    "play store": "com.android.vending",
    "gmail": "com.google.android.gm",
    "camera": "com.android.camera2",
    "phone": "com.android.dialer",
    "messages": "com.google.android.apps.messaging",
    "photos": "com.google.android.apps.photos",
    "files": "com.google.android.documentsui",
    "clock": "com.google.android.deskclock",
    "calendar": "com.google.android.calendar",
    "contacts": "com.google.android.contacts",
    "maps": "com.google.android.apps.maps",
    "youtube": "com.google.android.youtube",
    "calculator": "com.google.android.calculator",
}
_FOCUS_RE = re.compile(r"(?:mCurrentFocus|mFocusedApp)=.*?\s([\w.]+)/([\w.$]+)")
#: What ``input`` prints when it refuses a command: the old ``Input.java`` (``Error: Unknown command:
#: …``, ``Error: Invalid arguments…``) and the ``cmd input`` shell command of Android 12 and later.
_INPUT_ERROR = re.compile(r"^(?:Error: |Exception occurred while executing|Unknown command: ).*$", re.M)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: ``screencap``'s raw pixel formats (AOSP ``PixelFormat``) that Pillow reads: (mode, raw mode, bytes per pixel).
_RAW_FORMATS = {1: ("RGBA", "RGBA", 4), 2: ("RGB", "RGBX", 4), 3: ("RGB", "RGB", 3)}  # RGBA_8888, RGBX_8888, RGB_888
#: The raw header: width, height, format (12 bytes); Android 12 and later add the colour space (16).
_RAW_HEADERS = (12, 16)


class ShellResult(Protocol):
    """The part of what ``adbutils.AdbDevice.shell2`` returns (``ShellReturnRaw``) that AndroidEnv
    reads: on shell protocol v2 the command's stdout on its own; on v1 only ``output``, stdout and
    stderr mixed."""

    stdout: bytes
    output: bytes


class AdbDevice(Protocol):
    """The part of ``adbutils.AdbDevice`` that AndroidEnv uses."""

    @property
    def serial(self) -> str | None: ...

    def shell(
        self,
        cmdargs: str,
        stream: bool = False,
        timeout: float | None = None,
        encoding: str | None = "utf-8",
        rstrip: bool = True,
    ) -> Any: ...

    def shell2(
        self,
        cmdargs: str,
        timeout: float | None = None,
        encoding: str | None = "utf-8",
        rstrip: bool = False,
        v2: bool = False,
    ) -> Any: ...


def input_text_commands(text: str) -> list[str] | None:
    """Shell commands that type ``text`` with ``input text``; None when it needs ADBKeyboard.

    >>> input_text_commands("a b & c")
    ["input text 'a%sb%s&%sc'"]
    """
    if not all(c in "\n\t" or " " <= c <= "~" for c in text):
        return None
    commands: list[str] = []
    chunk = ""

    def flush() -> None:
        nonlocal chunk
        if chunk:
            commands.append("input text " + shlex.quote(chunk.replace(" ", "%s")))
            chunk = ""

    for i, ch in enumerate(text):
        if ch in "\n\t":
            flush()
            commands.append("input keyevent " + ("KEYCODE_ENTER" if ch == "\n" else "KEYCODE_TAB"))
            continue
        chunk += ch
        if ch == "%" and text[i + 1 : i + 2] == "s":
            flush()  # `input` reads "%s" as a space: end the call between the two characters
    flush()
    return commands


def android_keycodes(keys: list[str]) -> list[str]:
    """Canonical key names to Android key codes: ``["ctrl", "a"]`` -> KEYCODE_CTRL_LEFT, KEYCODE_A.

    A letter is its key whatever its case. Raises ValueError naming the first key a phone does not have.
    """
    codes = []
    for k in keys:
        if k in ANDROID_KEYCODES:
            codes.append(ANDROID_KEYCODES[k])
        elif len(k) == 1 and k.isascii() and k.isalnum():
            codes.append(f"KEYCODE_{k.upper()}")
        elif k in _CHAR_KEYCODES:
            codes.append(f"KEYCODE_{_CHAR_KEYCODES[k]}")
        else:
            raise ValueError(f"a phone has no {k!r} key")
    return codes


def typed_key(keys: list[str]) -> str | None:
    """The character to type for a key pressed alone that has no key of its own on a phone's
    keyboard (``A``, ``!``, ``?``): ``input text`` presses it with shift; else None."""
    if len(keys) != 1 or len(k := keys[0]) != 1 or not " " < k <= "~":
        return None
    return None if k.islower() or k.isdigit() or k in _CHAR_KEYCODES else k


def scroll_swipes(x: int, y: int, dx: int, dy: int, width: int, height: int) -> list[tuple[int, int, int, int, int]]:
    """The swipes ``(x1, y1, x2, y2, ms)`` that scroll the content at (x, y) by (dx, dy) pixels.

    The finger moves against the scroll (content further down comes into view as it moves up), as
    far as the amount. Both ends stay ``EDGE_MARGIN`` clear of the screen's edges: the start moves
    off (x, y) as little as that needs, and an amount longer than the room is split into equal
    swipes.
    """
    lo_x, lo_y = round(width * EDGE_MARGIN), round(height * EDGE_MARGIN)
    hi_x, hi_y = width - 1 - lo_x, height - 1 - lo_y
    n = max(1, math.ceil(abs(dx) / (hi_x - lo_x)), math.ceil(abs(dy) / (hi_y - lo_y)))
    swipes = []
    for i in range(n):
        # equal parts that add up to the amount exactly
        px = dx * (i + 1) // n - dx * i // n
        py = dy * (i + 1) // n - dy * i // n
        sx = min(max(x, lo_x + max(px, 0)), hi_x + min(px, 0))
        sy = min(max(y, lo_y + max(py, 0)), hi_y + min(py, 0))
        ms = max(MIN_SWIPE_MS, round(math.hypot(px, py) / SWIPE_PX_PER_MS))
        swipes.append((sx, sy, sx - px, sy - py, ms))
    return swipes


@dataclass
class Frame:
    """One screenshot: its pixel size, the PNG (made on first use when the capture was raw), and
    the image as Pillow sees it (RGB, or RGBA straight from the raw buffer)."""

    width: int
    height: int
    png: bytes | Callable[[], bytes]
    image: Callable[[], Image]

    def thumbnail(self, factor: int = 8) -> Image:
        """Grey levels at 1/``factor`` scale, for telling whether the screen changed."""
        return self.image().convert("L").reduce(factor)


def _text_prefixes(data: bytes, limit: int = 4096) -> list[int]:
    """Where the bytes could start after lines of text (a warning on a merged stderr): 0, then
    after each newline while everything before it is printable text."""
    starts = [0]
    for i, byte in enumerate(data[:limit]):
        if byte == 0x0A:
            starts.append(i + 1)
        elif not (0x20 <= byte < 0x7F or byte in (0x09, 0x0D)):
            break
    return starts


def parse_raw_screencap(data: bytes, png_compress_level: int = 1) -> Frame | None:
    """A raw ``screencap`` capture: a 12- or 16-byte header (width, height, pixel format[, colour
    space]) then the pixels, possibly behind lines of text (a warning printed to a merged stderr).
    None when the data is not that, or in a pixel format Pillow does not read (RGB_565, say)."""
    for start in _text_prefixes(data):
        if len(data) - start < 12:
            break
        w, h, fmt = struct.unpack_from("<III", data, start)
        if fmt not in _RAW_FORMATS or w == 0 or h == 0:
            continue
        mode, rawmode, bpp = _RAW_FORMATS[fmt]
        offset = len(data) - w * h * bpp
        if offset - start in _RAW_HEADERS:
            return _raw_frame(memoryview(data)[offset:], w, h, mode, rawmode, png_compress_level)
    return None


def _raw_frame(pixels: memoryview, w: int, h: int, mode: str, rawmode: str, png_compress_level: int) -> Frame:
    def image() -> Image:
        from PIL import Image

        # A memoryview is a buffer Pillow reads in place (no copy); its stubs name only bytes-likes.
        return Image.frombuffer(mode, (w, h), cast(bytes, pixels), "raw", rawmode, 0, 1)

    def encode() -> bytes:
        buf = io.BytesIO()
        image().convert("RGB").save(buf, format="PNG", compress_level=png_compress_level)  # opaque anyway
        return buf.getvalue()

    return Frame(w, h, encode, image)


def parse_png_screencap(data: bytes) -> Frame | None:
    """A ``screencap -p`` capture (a PNG, possibly behind lines of text); None when there is no PNG."""
    start = data.find(_PNG_SIGNATURE, 0, 4096)
    if start < 0:
        return None
    png = data[start:]
    from PIL import Image

    w, h = png_size(png)
    return Frame(w, h, png, lambda: Image.open(io.BytesIO(png)))


def changed_fraction(a: Image, b: Image, *, threshold: int = 24) -> float:
    """The share of pixels that differ by more than ``threshold`` grey levels between two thumbnails."""
    from PIL import ImageChops

    if a.size != b.size:
        return 1.0
    diff = ImageChops.difference(a, b).point(lambda v: 255 if v > threshold else 0)
    return diff.histogram()[255] / (a.width * a.height)


@dataclass(kw_only=True, eq=False)
class AndroidEnv(Env):
    """A phone over adb: screencap to see, ``input`` to act; the device is chosen by serial.

    ``serial=None`` takes ``$ANDROID_SERIAL``, else the only device attached. ``device=`` passes a
    device object directly (an ``adbutils.AdbDevice`` or a double). ``apps`` maps labels to
    package names for ``open_app`` on top of installed package names and common labels. Besides
    the phone's actions it presses keys (``key``: one key event, or a combination through
    ``input keycombination``, Android 13 and later).
    """

    kind: ClassVar[EnvKind] = "mobile"
    label = "a phone"

    serial: str | None = None
    device: AdbDevice | None = None
    adb_host: str = "127.0.0.1"
    adb_port: int = 5037
    screencap: Literal["auto", "raw", "png"] = "auto"
    settle_timeout: float = 3.0
    settle_interval: float = 0.1
    settle_grace: float = 0.3
    home_on_reset: bool = True
    apps: dict[str, str] | None = None
    shell_timeout: float = 20.0
    png_compress_level: int = 1

    def __post_init__(self) -> None:
        if self.serial and self.device is not None:
            raise ValueError("pass serial= or device=, not both")
        self._own_device = self.device is None
        self._size: tuple[int, int] | None = None
        self._fresh: Frame | None = None  # a capture taken after the last action, for observe()
        self._last: Frame | None = None  # the latest capture
        self._before: Frame | None = None  # the latest capture before the action being settled
        self._api: int | None = None
        #: Frames the last settle took, and frames taken as PNG since the env was made.
        self.settle_frames = 0
        self.png_frames = 0

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to the device (through the adb server). Called by ``reset`` when needed."""
        if self.device is not None:
            return
        try:
            import adbutils
        except ImportError as e:
            raise EnvError("AndroidEnv needs adbutils: pip install 'pixelpilot[android]'") from e
        client = adbutils.AdbClient(host=self.adb_host, port=self.adb_port)
        serial = self.serial or os.environ.get("ANDROID_SERIAL")
        self.serial = pick_serial(await attached_serials(self.adb_host, self.adb_port), serial)
        self.device = client.device(self.serial)

    async def reset(self, task: Task | None = None) -> Observation:
        """Connect, press HOME (unless ``home_on_reset=False``), open ``task.url`` if any, and look."""
        await self.start()
        if self.home_on_reset:
            await self._shell("input keyevent KEYCODE_HOME")
        if task is not None and task.url:
            await self._shell(f"am start -a android.intent.action.VIEW -d {shlex.quote(task.url)}")
        if self.home_on_reset or (task is not None and task.url):
            await self.wait_until_stable()
        return await self.observe()

    async def aclose(self) -> None:
        """Let go of the device (one this env looked up); the phone itself is left as it is."""
        self._fresh = self._last = self._before = None
        self._api = None
        if self._own_device:
            self.device = None

    # --- talking to the device -----------------------------------------------------------------

    async def _adb(self, method: Literal["shell", "shell2"], cmd: str, **options: Any) -> Any:
        if self.device is None:
            raise EnvError("the device is not connected; call reset() first")
        try:
            return await asyncio.to_thread(getattr(self.device, method), cmd, timeout=self.shell_timeout, **options)
        except Exception as e:
            raise EnvError(
                f"adb shell on {self.device.serial} failed ({type(e).__name__}: {e}); "
                "is the device still attached (`adb devices`)?"
            ) from e

    async def _shell(self, cmd: str) -> str:
        """The command's output, stdout and stderr together (what ``input`` refuses is on stderr)."""
        return cast(str, await self._adb("shell", cmd, encoding="utf-8"))

    async def _exec_out(self, cmd: str) -> bytes:
        """The command's stdout as bytes, on shell protocol v2 where the device has it (stderr kept
        apart, no terminal); on v1 (no stdout of its own) the mixed output."""
        result: ShellResult = await self._adb("shell2", cmd, encoding=None, v2=True)
        return result.stdout or result.output

    async def capture(self) -> Frame:
        """A screenshot, the fastest way this device allows: raw, else (this frame only) PNG."""
        frame = None
        if self.screencap != "png":
            frame = parse_raw_screencap(await self._exec_out("screencap"), self.png_compress_level)
            if frame is None and self.screencap == "raw":
                raise EnvError(
                    "`screencap` gave no raw frame in a format this env reads; use screencap='auto' or 'png'"
                )
        if frame is None:
            data = await self._exec_out("screencap -p")
            frame = parse_png_screencap(data)
            if frame is None:
                raise EnvError(f"`screencap -p` returned no PNG: {data[:120]!r}")
            self.png_frames += 1
        self._size = (frame.width, frame.height)
        self._last = frame
        return frame

    async def api_level(self) -> int | None:
        """The device's API level (``ro.build.version.sdk``), asked once; None when it says none."""
        if self._api is None:
            out = (await self._shell("getprop ro.build.version.sdk")).strip()
            self._api = int(out) if out.isdigit() else 0
        return self._api or None

    async def foreground(self) -> tuple[str | None, str | None]:
        """The package and activity in focus."""
        out = await self._shell("dumpsys window | grep -E 'mCurrentFocus|mFocusedApp'")
        m = _FOCUS_RE.search(out)
        return (m.group(1), m.group(2)) if m else (None, None)

    async def wait_until_stable(self, timeout: float | None = None) -> bool:
        """Capture until two frames in a row match (bounded by ``settle_timeout``); True if they did.

        Frames start at most ``settle_interval`` apart: a capture slower than that is followed at
        once. Frames match when under 0.2 % of pixels differ at 1/8 scale, so a blinking cursor
        does not count as change. Right after an action, a screen identical to the frame before it
        counts as still only once ``settle_grace`` seconds have passed: the action's effect may not
        be drawn yet. The last frame is kept for the next ``observe``.
        """
        started = time.monotonic()
        deadline = started + (self.settle_timeout if timeout is None else timeout)
        before, self._before = self._before, None
        before_thumb = None
        last_thumb = None
        frames, stable = 0, False
        while True:
            taken = time.monotonic()
            frame = await self.capture()
            frames += 1
            thumb = frame.thumbnail()
            if last_thumb is not None and changed_fraction(last_thumb, thumb) < 0.002:
                if before is not None and before_thumb is None:
                    before_thumb = before.thumbnail()
                # not a pixel moved since the action (a small change such as a ripple counts here)
                unchanged = before_thumb is not None and changed_fraction(before_thumb, thumb, threshold=0) == 0
                if not unchanged or time.monotonic() - started >= self.settle_grace:
                    stable = True
                    break
            last_thumb = thumb
            pause = max(0.0, taken + self.settle_interval - time.monotonic())
            if time.monotonic() + pause >= deadline:
                break
            await asyncio.sleep(pause)
        self._fresh = frame
        self.settle_frames = frames
        return stable

    # --- Env ---------------------------------------------------------------------------------

    async def observe(self) -> Observation:
        fresh, self._fresh = self._fresh, None
        if fresh is None:
            frame, (package, activity) = await asyncio.gather(self.capture(), self.foreground())
        else:
            frame, (package, activity) = fresh, await self.foreground()
        return Observation(
            png=frame.png,
            width=frame.width,
            height=frame.height,
            input_width=frame.width,
            input_height=frame.height,
            input_space="device",
            app=package,
            title=f"{package}/{activity}" if package else None,
        )

    # --- primitives for Env.execute ------------------------------------------------------------

    async def input_size(self) -> tuple[int, int]:
        if self._size is None:
            await self.capture()
        assert self._size is not None
        return self._size

    def before_action(self) -> None:
        self._fresh = None  # the capture taken after the last action is about to be out of date
        self._before = self._last

    async def settle(self) -> None:
        if self.settle_timeout > 0:
            await self.wait_until_stable()

    # --- handlers --------------------------------------------------------------------------------

    async def _input(self, *commands: str) -> str | None:
        """Run ``input`` command lines in one shell call; what ``input`` refused, as an error."""
        out = await self._shell(" && ".join(commands))
        refused = _INPUT_ERROR.search(out)
        return None if refused is None else f"the device refused `{commands[0]}`: {refused.group(0).strip()}"

    @handles("click")
    async def _tap(self, a: PixelAction) -> str | None:
        return await self._input(f"input tap {a['x']} {a['y']}")

    @handles("long_press")
    async def _long_press(self, a: PixelAction) -> str | None:
        ms = max(round(a["seconds"] * 1000), 500)  # below ~500 ms Android sees a tap
        return await self._input(f"input swipe {a['x']} {a['y']} {a['x']} {a['y']} {ms}")

    @handles("swipe")
    async def _swipe(self, a: PixelAction) -> str | None:
        ms = max(round(a["seconds"] * 1000), 50)
        return await self._input(f"input swipe {a['x']} {a['y']} {a['x2']} {a['y2']} {ms}")

    @handles("scroll")
    async def _scroll(self, a: PixelAction) -> str | None:
        if not a["dx"] and not a["dy"]:
            return "a scroll needs an amount: dx or dy (1000 = one screen)"
        w, h = await self.input_size()
        swipes = scroll_swipes(a["x"], a["y"], a["dx"], a["dy"], w, h)
        return await self._input(*(f"input swipe {x1} {y1} {x2} {y2} {ms}" for x1, y1, x2, y2, ms in swipes))

    @handles("drag")
    async def _drag(self, a: PixelAction) -> str | None:
        api = await self.api_level()
        if api is not None and api < DRAGANDDROP_API:
            return f"drag needs `input draganddrop` (Android 7, API {DRAGANDDROP_API}); this device runs API {api}"
        ms = max(MIN_SWIPE_MS, round(math.hypot(a["x2"] - a["x"], a["y2"] - a["y"]) / SWIPE_PX_PER_MS))
        return await self._input(f"input draganddrop {a['x']} {a['y']} {a['x2']} {a['y2']} {ms}")

    @handles("type")
    async def _type_action(self, a: PixelAction) -> str | None:
        return await self._type(a["text"])

    @handles("key")
    async def _key(self, a: PixelAction) -> str | None:
        keys: list[str] = a["keys"]
        char = typed_key(keys)
        if char is not None:
            return await self._type(char)
        try:
            codes = android_keycodes(keys)
        except ValueError as e:  # told back to the model
            return str(e)
        if len(codes) == 1:
            return await self._input(f"input keyevent {codes[0]}")
        api = await self.api_level()
        if api is not None and api < KEYCOMBINATION_API:
            return (
                f"pressing {'+'.join(keys)} together needs `input keycombination` (Android 12, API "
                f"{KEYCOMBINATION_API}); this device runs API {api}: press the keys one at a time"
            )
        return await self._input(f"input keycombination {' '.join(codes)}")

    @handles("system_button")
    async def _system_button(self, a: PixelAction) -> str | None:
        return await self._input(f"input keyevent {SYSTEM_BUTTONS[a['button']]}")

    @handles("open_app")
    async def _open_app_action(self, a: PixelAction) -> str | None:
        return await self._open_app(a["name"])

    async def _type(self, text: str) -> str | None:
        commands = input_text_commands(text)
        if commands is not None:
            return await self._input(*commands) if commands else None
        current = (await self._shell("settings get secure default_input_method")).strip()
        if current != ADB_KEYBOARD and ADB_KEYBOARD not in await self._shell("ime list -s"):
            return (
                "typing non-ASCII text needs ADBKeyboard: install it (com.android.adbkeyboard) on the "
                "device; ASCII text works without it"
            )
        msg = base64.b64encode(text.encode("utf-8")).decode("ascii")
        steps = [f"am broadcast -a ADB_INPUT_B64 --es msg {msg}"]
        if current != ADB_KEYBOARD:
            # the keyboard must be the active input method to receive the broadcast
            steps = [f"ime enable {ADB_KEYBOARD}", f"ime set {ADB_KEYBOARD}", "sleep 0.3", *steps]
            if current and current != "null":
                steps.append(f"ime set {shlex.quote(current)}")
        out = await self._shell(" ; ".join(steps))
        return None if "Broadcast completed" in out else f"ADBKeyboard did not take the text: {out.strip()[-200:]}"

    async def _open_app(self, name: str) -> str | None:
        installed = {
            line.removeprefix("package:").strip()
            for line in (await self._shell("pm list packages")).splitlines()
            if line.startswith("package:")
        }
        apps = {label.lower(): package for label, package in (self.apps or {}).items()}
        package = resolve_app(name, installed, apps)
        if isinstance(package, list):
            hint = f"it could be {', '.join(package[:5])}" if package else "no installed package matches"
            return f"no app called {name!r}: {hint}; pass its package name, or AndroidEnv(apps={{label: package}})"
        out = await self._shell(f"monkey -p {shlex.quote(package)} -c android.intent.category.LAUNCHER 1")
        if "Events injected" not in out:
            return (
                f"could not start {package}: {out.strip().splitlines()[-1] if out.strip() else 'monkey said nothing'}"
            )
        return None


async def attached_serials(host: str = "127.0.0.1", port: int = 5037) -> list[str]:
    """The serials of the devices ready for use, as ``adb devices`` lists them (via the adb server)."""
    try:
        import adbutils
    except ImportError as e:
        raise EnvError("AndroidEnv needs adbutils: pip install 'pixelpilot[android]'") from e
    try:
        devices = await asyncio.to_thread(adbutils.AdbClient(host=host, port=port).device_list)
    except Exception as e:
        raise EnvError(f"cannot reach the adb server at {host}:{port} ({e}); start it with `adb start-server`") from e
    return [d.serial for d in devices]


_ATTACH_HINT = (
    "connect a phone with USB debugging on, start an emulator (`emulator -avd NAME`), or "
    "`adb connect HOST:PORT` for one over the network; `adb devices` should then list it"
)
_PICK_HINT = "pick one with AndroidEnv(serial=…), $ANDROID_SERIAL, or --android-serial"


def pick_serial(attached: list[str], wanted: str | None) -> str:
    """The device to use: ``wanted`` if attached, else the only one attached; errors name the fix."""
    if not attached:
        wanted_text = f"device {wanted!r} is not attached: " if wanted else ""
        raise EnvError(f"{wanted_text}no Android device is attached (`adb devices` lists none); {_ATTACH_HINT}")
    found = ", ".join(attached)
    if wanted is None:
        if len(attached) > 1:
            raise EnvError(f"{len(attached)} Android devices are attached ({found}); {_PICK_HINT}")
        return attached[0]
    if wanted not in attached:
        raise EnvError(f"device {wanted!r} is not attached; `adb devices` lists {found}; {_PICK_HINT}")
    return wanted


def resolve_app(name: str, installed: set[str], apps: dict[str, str]) -> str | list[str]:
    """The package for an app name (a package name, a configured or common label, or a unique
    installed package containing the label); else the candidates (possibly none)."""
    if name in installed:
        return name
    label = name.strip().lower()
    for table in (apps, COMMON_APPS):
        if table.get(label) in installed:
            return table[label]
    needle = re.sub(r"[^a-z0-9]", "", label)
    matches = sorted(p for p in installed if needle and needle in p.lower().replace("_", ""))
    return matches[0] if len(matches) == 1 else matches
