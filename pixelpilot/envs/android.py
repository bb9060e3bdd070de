"""An Android phone (or emulator) over adb, through adbutils.

Everything goes through one call of adbutils' device interface, ``device.shell(cmd, encoding=…)``,
so any object with that method and a ``serial`` can stand in for a device (see ``android_double``).

Coordinates. The input space is the display's physical pixels in its current orientation, which
is exactly the size ``screencap`` reports; ``input tap``/``swipe`` take the same pixels.

Screenshots. ``screencap`` without ``-p`` returns raw RGBA pixels: no PNG encode on the phone
(hundreds of ms on many devices); the PNG for the model is encoded here, lazily. A device whose
raw output does not parse falls back to ``screencap -p`` for the rest of the session.

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

    An upper-case letter pressed alone is Shift and the letter. Raises ValueError naming the
    first key a phone does not have.
    """
    codes = []
    for k in keys:
        if k in ANDROID_KEYCODES:
            codes.append(ANDROID_KEYCODES[k])
        elif len(k) == 1 and k.isascii() and k.isalnum():
            if k.isupper() and len(keys) == 1:
                codes.append("KEYCODE_SHIFT_LEFT")
            codes.append(f"KEYCODE_{k.upper()}")
        elif k in _CHAR_KEYCODES:
            codes.append(f"KEYCODE_{_CHAR_KEYCODES[k]}")
        else:
            raise ValueError(f"a phone has no {k!r} key")
    return codes


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


def parse_raw_screencap(data: bytes, png_compress_level: int = 1) -> Frame | None:
    """A ``screencap`` (raw) capture: a 12- or 16-byte header (width, height, format[, color space])
    then RGBA_8888 pixels. None when the data is not that."""
    if len(data) < 12:
        return None
    w, h, fmt = struct.unpack_from("<III", data)
    offset = len(data) - w * h * 4
    if fmt != 1 or w == 0 or h == 0 or offset not in (12, 16):
        return None
    pixels = memoryview(data)[offset:]

    def image() -> Image:
        from PIL import Image

        # A memoryview is a buffer Pillow reads in place (no copy); its stubs name only bytes-likes.
        return Image.frombuffer("RGBA", (w, h), cast(bytes, pixels), "raw", "RGBA", 0, 1)

    def encode() -> bytes:
        buf = io.BytesIO()
        image().convert("RGB").save(buf, format="PNG", compress_level=png_compress_level)  # opaque anyway
        return buf.getvalue()

    return Frame(w, h, encode, image)


def _png_frame(png: bytes) -> Frame:
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
        self._fresh = None
        if self._own_device:
            self.device = None

    # --- talking to the device -----------------------------------------------------------------

    async def _shell(self, cmd: str, *, binary: bool = False) -> Any:
        if self.device is None:
            raise EnvError("the device is not connected; call reset() first")
        try:
            return await asyncio.to_thread(
                self.device.shell, cmd, timeout=self.shell_timeout, encoding=None if binary else "utf-8"
            )
        except Exception as e:
            raise EnvError(
                f"adb shell on {self.device.serial} failed ({type(e).__name__}: {e}); "
                "is the device still attached (`adb devices`)?"
            ) from e

    async def capture(self) -> Frame:
        """A screenshot, the fastest way this device allows."""
        if self.screencap != "png":
            frame = parse_raw_screencap(await self._shell("screencap", binary=True), self.png_compress_level)
            if frame is not None:
                self._size = (frame.width, frame.height)
                return frame
            if self.screencap == "raw":
                raise EnvError("`screencap` gave no raw RGBA_8888 frame; use screencap='png'")
            self.screencap = "png"  # this device's raw output is something else: stay with PNG
        png = await self._shell("screencap -p", binary=True)
        if png[:8] != b"\x89PNG\r\n\x1a\n":
            raise EnvError(f"`screencap -p` returned no PNG: {png[:80]!r}")
        frame = _png_frame(png)
        self._size = (frame.width, frame.height)
        return frame

    async def foreground(self) -> tuple[str | None, str | None]:
        """The package and activity in focus."""
        out = await self._shell("dumpsys window | grep -E 'mCurrentFocus|mFocusedApp'")
        m = _FOCUS_RE.search(out)
        return (m.group(1), m.group(2)) if m else (None, None)

    async def wait_until_stable(self, timeout: float | None = None) -> bool:
        """Capture until two frames ``settle_interval`` apart match (bounded); True if they did.

        Frames match when under 0.2 % of pixels differ at 1/8 scale, so a blinking cursor
        does not count as change. The last frame is kept for the next ``observe``.
        """
        deadline = time.monotonic() + (self.settle_timeout if timeout is None else timeout)
        last = await self.capture()
        last_thumb = last.thumbnail()
        stable = False
        while time.monotonic() < deadline:
            await asyncio.sleep(self.settle_interval)
            frame = await self.capture()
            thumb = frame.thumbnail()
            last, stable = frame, changed_fraction(last_thumb, thumb) < 0.002
            if stable:
                break
            last_thumb = thumb
        self._fresh = last
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

    async def settle(self) -> None:
        if self.settle_timeout > 0:
            await self.wait_until_stable()

    # --- handlers --------------------------------------------------------------------------------

    @handles("click")
    async def _tap(self, a: PixelAction) -> None:
        await self._shell(f"input tap {a['x']} {a['y']}")

    @handles("long_press")
    async def _long_press(self, a: PixelAction) -> None:
        ms = max(round(a["seconds"] * 1000), 500)  # below ~500 ms Android sees a tap
        await self._shell(f"input swipe {a['x']} {a['y']} {a['x']} {a['y']} {ms}")

    @handles("swipe")
    async def _swipe(self, a: PixelAction) -> None:
        ms = max(round(a["seconds"] * 1000), 50)
        await self._shell(f"input swipe {a['x']} {a['y']} {a['x2']} {a['y2']} {ms}")

    @handles("type")
    async def _type_action(self, a: PixelAction) -> str | None:
        return await self._type(a["text"])

    @handles("key")
    async def _key(self, a: PixelAction) -> str | None:
        try:
            codes = android_keycodes(a["keys"])
        except ValueError as e:  # told back to the model
            return str(e)
        verb = "keyevent" if len(codes) == 1 else "keycombination"
        await self._shell(f"input {verb} {' '.join(codes)}")
        return None

    @handles("system_button")
    async def _system_button(self, a: PixelAction) -> None:
        await self._shell(f"input keyevent {SYSTEM_BUTTONS[a['button']]}")

    @handles("open_app")
    async def _open_app_action(self, a: PixelAction) -> str | None:
        return await self._open_app(a["name"])

    async def _type(self, text: str) -> str | None:
        commands = input_text_commands(text)
        if commands is not None:
            if commands:
                await self._shell(" && ".join(commands))
            return None
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


def pick_serial(attached: list[str], wanted: str | None) -> str:
    """The device to use: ``wanted`` if attached, else the only one attached; errors name the fix."""
    found = ", ".join(attached) or "none"
    if wanted is None:
        if len(attached) != 1:
            raise EnvError(f"pick a device with serial= or $ANDROID_SERIAL; `adb devices` lists {found}")
        return attached[0]
    if wanted not in attached:
        raise EnvError(f"device {wanted!r} is not attached; `adb devices` lists {found}")
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
