"""A test double for an Android device: no emulator can run on the machines this project tests on.

``AndroidDeviceDouble`` has the part of ``adbutils.AdbDevice`` that ``AndroidEnv`` uses (``serial``,
``shell`` and ``shell2``). Its shell understands the commands the env sends — ``screencap`` (raw and
``-p``), ``input tap|swipe|draganddrop|text|keyevent|keycombination``, ``monkey -p``, ``am
start``/``am broadcast``, ``ime``, ``settings get``, ``getprop``, ``pm list packages``, ``dumpsys
window | grep`` — with the device shell's quoting, ``;``/``&&`` lists and pipes into ``grep``, and
keeps a small phone state: the app in front, the text typed into it, how far it is scrolled, the
last touch. It serves a real rendered screen (a launcher with app icons, or the app with its text
field), and records every command line in ``commands`` and what each did in ``events``, so tests
check effects, not just strings.

It answers as the Android release ``sdk`` does where releases differ: ``input draganddrop`` from API
24 and ``input keycombination`` from API 31 (older ones print ``Error: Unknown command: …``, as
``Input.java`` did), and the raw ``screencap`` header with the colour-space field from API 31. With
``displays`` > 1, ``screencap`` prints AOSP's multiple-displays warning on stderr, which ``shell``
(protocol v1) mixes in front of the image, as a real device's adbd does, and ``shell2(v2=True)``
keeps apart. ``animate(n)`` (or ``transition_frames=n``, after every ``input``) makes the next n
captures each show a different frame, ``effect_delay=n`` makes the n captures after every ``input``
still show the screen from before it (an app slow to draw), and ``capture_delay`` makes every
capture take that long.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import shlex
import struct
import time
from dataclasses import dataclass
from subprocess import list2cmdline
from typing import Any

LAUNCHER = "com.android.launcher3"
LATIN_IME = "com.android.inputmethod.latin/.LatinIME"
ADB_KEYBOARD = "com.android.adbkeyboard/.AdbIME"
DEFAULT_APPS = {
    "com.android.settings": "Settings",
    "com.android.chrome": "Chrome",
    "com.google.android.deskclock": "Clock",
    "com.example.notes": "Notes",
    "com.google.android.calculator": "Calculator",
}
_KEYCODES = {"3": "KEYCODE_HOME", "4": "KEYCODE_BACK", "61": "KEYCODE_TAB", "66": "KEYCODE_ENTER", "82": "KEYCODE_MENU"}
#: What AOSP's screencap prints on stderr when the device has several displays and no -d was given.
MULTIPLE_DISPLAYS_WARNING = (
    "[Warning] Multiple displays were found, but no display id was specified! Defaulting to the first "
    "display found, however this default is not guaranteed to be consistent across captures. A display "
    "id should be specified.\nA display ID can be specified with the [-d display-id] option.\n"
    'See "dumpsys SurfaceFlinger --display-id" for valid display IDs.\n'
)


@dataclass
class ShellResult:
    """What ``adbutils.AdbDevice.shell2(…, encoding=None)`` returns (its ``ShellReturnRaw``)."""

    command: str
    returncode: int
    stdout: bytes = b""
    stderr: bytes = b""
    output: bytes = b""


@dataclass
class _Streams:
    """A command's stdout and stderr, kept apart until a shell protocol mixes them."""

    stdout: bytes
    stderr: str


class AndroidDeviceDouble:
    """A pretend phone behind adbutils' device interface; see the module docstring."""

    def __init__(
        self,
        serial: str = "double-1",
        *,
        size: tuple[int, int] = (1080, 2400),
        apps: dict[str, str] | None = None,
        adb_keyboard: bool = False,
        sdk: int = 34,
        displays: int = 1,
        transition_frames: int = 0,
        effect_delay: int = 0,
        capture_delay: float = 0.0,
        shell_v2: bool = True,
    ) -> None:
        self.serial = serial
        self.size = size
        self.sdk = sdk
        self.displays = displays
        self.transition_frames = transition_frames
        self.effect_delay = effect_delay
        self._stale: tuple[int, tuple[Any, ...], bytes] | None = None  # captures left, the old frame
        self.capture_delay = capture_delay
        self.shell_v2 = shell_v2
        self.captures = 0
        self._animating = 0  # captures left that show a new frame each
        self._tick = 0
        self.apps = dict(DEFAULT_APPS if apps is None else apps)  # package -> label (launchable)
        self.imes = [LATIN_IME] + ([ADB_KEYBOARD] if adb_keyboard else [])
        self.ime = LATIN_IME
        self.foreground = LAUNCHER
        self.texts: dict[str, str] = {}
        self.scroll: dict[str, int] = {}
        self.last_touch: tuple[int, int] | None = None
        self.commands: list[str] = []
        self.events: list[tuple[Any, ...]] = []
        self._cache: tuple[tuple[Any, ...], bytes] | None = None

    # --- adbutils' interface -----------------------------------------------------------------

    def shell(
        self,
        cmdargs: str | list[str] | tuple[str, ...],
        stream: bool = False,
        timeout: float | None = None,
        encoding: str | None = "utf-8",
        rstrip: bool = True,
    ) -> str | bytes:
        """Shell protocol v1: stderr and stdout in one stream, stderr first (it is written first)."""
        if stream:
            raise NotImplementedError("the Android double does not stream shell output")
        out = self._run_line(self._command(cmdargs))
        data = _bytes(out)
        if encoding is None:
            return data
        text = data.decode(encoding, "replace")
        return text.rstrip() if rstrip else text

    def shell2(
        self,
        cmdargs: str | list[str] | tuple[str, ...],
        timeout: float | None = None,
        encoding: str | None = "utf-8",
        rstrip: bool = False,
        v2: bool = False,
    ) -> ShellResult:
        """With ``v2`` on a device that has it (``shell_v2``), shell protocol v2: stdout and stderr
        apart. Else v1, as adbutils falls back to: one stream, in ``output`` only. Bytes only."""
        if encoding is not None:
            raise NotImplementedError("the Android double's shell2 returns bytes only (encoding=None)")
        cmd = self._command(cmdargs)
        out = self._run_line(cmd)
        stdout, stderr = (out.stdout, out.stderr.encode()) if isinstance(out, _Streams) else (_bytes(out), b"")
        if not (v2 and self.shell_v2):
            return ShellResult(cmd, 0, output=stderr + stdout)
        return ShellResult(cmd, 0, stdout=stdout, stderr=stderr, output=stderr + stdout)

    def _command(self, cmdargs: str | list[str] | tuple[str, ...]) -> str:
        cmd = cmdargs if isinstance(cmdargs, str) else list2cmdline(list(cmdargs))  # as adbutils joins them
        self.commands.append(cmd)
        return cmd

    # --- the phone -----------------------------------------------------------------------------

    @property
    def text(self) -> str:
        """What has been typed into the app in front."""
        return self.texts.get(self.foreground, "")

    def icon_center(self, package: str) -> tuple[int, int]:
        """Where the launcher shows an app's icon, in physical pixels."""
        i = list(self.apps).index(package)
        w = self.size[0] // 4
        return w * (i % 4) + w // 2, 400 + 320 * (i // 4) + 110

    def render(self) -> Any:
        """The screen as a PIL image."""
        from PIL import Image, ImageDraw, ImageFont

        w, h = self.size
        font = ImageFont.load_default(size=44)
        if self.foreground == LAUNCHER:
            img = Image.new("RGB", (w, h), (20, 40, 90))
            d = ImageDraw.Draw(img)
            for pkg, label in self.apps.items():
                cx, cy = self.icon_center(pkg)
                d.rounded_rectangle((cx - 80, cy - 110, cx + 80, cy + 50), 30, fill=_color(pkg))
                d.text((cx, cy + 90), label, font=font, anchor="mm", fill="white")
        else:
            img = Image.new("RGB", (w, h), (250, 250, 250))
            d = ImageDraw.Draw(img)
            offset = self.scroll.get(self.foreground, 0)
            for k in range(-1, h // 200 + 2):  # content rows that move with the scroll position
                y = 400 + k * 200 - offset % 200
                d.rectangle((0, y, w, y + 8), fill=(200, 200, 220))
                d.text((40, y + 40), f"item {k + offset // 200}", font=font, fill=(60, 60, 60))
            d.rectangle((0, 0, w, 300), fill=_color(self.foreground))
            d.text((40, 150), self.apps.get(self.foreground, self.foreground), font=font, fill="white")
            d.rectangle((40, 320, w - 40, 380), fill="white", outline=(90, 90, 90), width=3)
            d.text((56, 350), self.text.replace("\n", " ⏎ ")[-40:], font=font, anchor="lm", fill="black")
        if self._tick:  # where an animation has got to
            x = 97 * self._tick % (w - 200)
            d.rectangle((x, h - 600, x + 200, h - 400), fill=(255, 200, 0))
        d.rectangle((0, 0, w, 60), fill=(0, 0, 0))  # status bar
        if self.last_touch:
            x, y = self.last_touch
            d.ellipse((x - 20, y - 20, x + 20, y + 20), outline=(255, 80, 80), width=6)
        return img

    # --- the shell -----------------------------------------------------------------------------

    def _run_line(self, line: str) -> str | bytes | _Streams:
        lex = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lex.whitespace_split = True
        words = list(lex)
        outputs: list[str | bytes | _Streams] = []
        pipeline: list[list[str]] = [[]]
        for word in words + [";"]:
            if word in (";", "&&"):
                outputs.append(self._run_pipeline(pipeline))
                pipeline = [[]]
            elif word == "|":
                pipeline.append([])
            else:
                pipeline[-1].append(word)
        if len(outputs) == 1:
            return outputs[0]  # binary output (screencap) stays bytes
        return "".join(_bytes(o).decode(errors="replace") for o in outputs)

    def _run_pipeline(self, pipeline: list[list[str]]) -> str | bytes | _Streams:
        out = self._run(pipeline[0]) if pipeline[0] else ""
        for argv in pipeline[1:]:
            if argv[:1] != ["grep"]:
                return f"/system/bin/sh: {argv[0]}: the double pipes only into grep\n"
            pattern = re.compile(argv[-1])
            text = _bytes(out).decode(errors="replace")
            out = "".join(ln + "\n" for ln in text.splitlines() if pattern.search(ln))
        return out

    def _run(self, argv: list[str]) -> str | bytes | _Streams:
        name, args = argv[0], argv[1:]
        if name == "screencap":
            return self._screencap(png="-p" in args)
        if name == "input" and args:
            return self._input(args[0], args[1:])
        if name == "monkey" and "-p" in args:
            pkg = args[args.index("-p") + 1]
            if pkg not in self.apps:
                return "** No activities found to run, monkey aborted.\n"
            self._launch(pkg)
            return "  // Allowing start of Intent { cat=[android.intent.category.LAUNCHER] }\nEvents injected: 1\n"
        if name == "am" and args[:1] == ["start"] and "-d" in args:
            url = args[args.index("-d") + 1]
            self._launch("com.android.chrome")
            self.events.append(("view", url))
            return "Starting: Intent { act=android.intent.action.VIEW }\n"
        if name == "am" and args[:3] == ["broadcast", "-a", "ADB_INPUT_B64"]:
            text = base64.b64decode(args[args.index("--es") + 2]).decode("utf-8")
            if self.ime == ADB_KEYBOARD:
                self._type(text)
            return (
                "Broadcasting: Intent { act=ADB_INPUT_B64 flg=0x400000 (has extras) }\nBroadcast completed: result=0\n"
            )
        if name == "ime":
            return self._ime(args)
        if argv == ["settings", "get", "secure", "default_input_method"]:
            return self.ime + "\n"
        if argv == ["pm", "list", "packages"]:
            return "".join(f"package:{p}\n" for p in [LAUNCHER, *self.apps])
        if name == "dumpsys" and args[:1] == ["window"]:
            activity = ".uioverride.QuickstepLauncher" if self.foreground == LAUNCHER else ".MainActivity"
            comp = f"{self.foreground}/{activity}"
            return (
                f"  mCurrentFocus=Window{{5d1c2e3 u0 {comp}}}\n  mFocusedApp=ActivityRecord{{a1b2c3 u0 {comp} t12}}\n"
            )
        if argv == ["getprop", "ro.build.version.sdk"]:
            return f"{self.sdk}\n"
        if argv == ["wm", "size"]:
            return f"Physical size: {self.size[0]}x{self.size[1]}\n"
        if name == "sleep":
            return ""
        return f"/system/bin/sh: {name}: inaccessible or not found\n"

    def animate(self, frames: int) -> None:
        """Make each of the next ``frames`` captures show a new frame (a transition, a spinner)."""
        self._animating = frames

    def _screencap(self, *, png: bool) -> _Streams:
        self.captures += 1
        if self.capture_delay:
            time.sleep(self.capture_delay)  # runs in the env's worker thread, as adbutils' shell does
        if self._stale and self._stale[1][0] == png:  # the app has not drawn the effect yet
            left, key, data = self._stale
            self._stale = (left - 1, key, data) if left > 1 else None
            return _Streams(data, MULTIPLE_DISPLAYS_WARNING if self.displays > 1 else "")
        if self._animating:
            self._animating -= 1
            self._tick += 1
        else:
            self._tick = 0  # the animation is over: its block is gone
        key = (png, self.foreground, self.text, self.scroll.get(self.foreground), self.last_touch, self._tick)
        if not (self._cache and self._cache[0] == key):
            self._cache = (key, self._encode(self.render(), png))
        # the same screen is served as the same frame, as fast as a phone would
        return _Streams(self._cache[1], MULTIPLE_DISPLAYS_WARNING if self.displays > 1 else "")

    def _encode(self, img: Any, png: bool) -> bytes:
        if png:
            buf = io.BytesIO()
            img.save(buf, format="PNG", compress_level=1)
            return buf.getvalue()
        w, h = img.size
        # RGBA_8888 (format 1); from Android 12 the colour space follows (1: sRGB)
        header = struct.pack("<IIII", w, h, 1, 1) if self.sdk >= 31 else struct.pack("<III", w, h, 1)
        return header + img.convert("RGBA").tobytes()

    def _input(self, verb: str, args: list[str]) -> str:
        if (verb == "draganddrop" and self.sdk < 24) or (verb == "keycombination" and self.sdk < 31):
            verb = "?" + verb  # this release's `input` has no such command
        if self.transition_frames:
            self.animate(self.transition_frames)
        if self.effect_delay and self._cache:
            self._stale = (self.effect_delay, *self._cache)
        if verb == "tap":
            x, y = int(args[0]), int(args[1])
            self.events.append(("tap", x, y))
            self.last_touch = (x, y)
            if self.foreground == LAUNCHER:
                for pkg in self.apps:
                    cx, cy = self.icon_center(pkg)
                    if abs(x - cx) <= 80 and cy - 110 <= y <= cy + 50:
                        self._launch(pkg)
        elif verb == "swipe":
            x1, y1, x2, y2 = map(int, args[:4])
            ms = int(args[4]) if len(args) > 4 else 300
            if (x1, y1) == (x2, y2):
                self.events.append(("long_press", x1, y1, ms))
            else:
                self.events.append(("swipe", x1, y1, x2, y2, ms))
                self.scroll[self.foreground] = max(0, self.scroll.get(self.foreground, 0) + y1 - y2)
            self.last_touch = (x2, y2)
        elif verb == "draganddrop":  # a long press, then the move (Android 7 and later)
            x1, y1, x2, y2 = map(int, args[:4])
            self.events.append(("drag", x1, y1, x2, y2, int(args[4]) if len(args) > 4 else 300))
            self.last_touch = (x2, y2)
        elif verb == "text":
            raw = args[0] if args else ""
            if not raw.isascii():
                return f"Exception occurred while executing 'text': cannot find key events for {raw!r}\n"
            self._type(re.sub(r"%s", " ", raw))  # `input`'s own escape for spaces
        elif verb == "keyevent":
            for arg in args:  # `input keyevent A B` sends A, then B
                key = _KEYCODES.get(arg, arg)
                self.events.append(("key", key))
                if key in ("KEYCODE_HOME", "KEYCODE_BACK"):
                    self.foreground = LAUNCHER
                elif key == "KEYCODE_ENTER":
                    self._type("\n")
                elif key == "KEYCODE_TAB":
                    self._type("\t")
        elif verb == "keycombination":  # keys held together (Android 12 and later)
            self.events.append(("keys", *(_KEYCODES.get(arg, arg) for arg in args)))
        else:
            return f"Error: Unknown command: {verb.lstrip('?')}\nUsage: input [<source>] <command> [<arg>...]\n"
        return ""

    def _ime(self, args: list[str]) -> str:
        if args[:2] == ["list", "-s"]:
            return "".join(i + "\n" for i in self.imes)
        if args[:1] in (["enable"], ["set"]) and len(args) > 1:
            if args[1] not in self.imes:
                verb = "selected" if args[0] == "set" else "enabled"
                return f"Unknown input method {args[1]} cannot be {verb} for user #0\n"
            if args[0] == "set":
                self.ime = args[1]
                self.events.append(("ime", args[1]))
                return f"Input method {args[1]} selected for user #0\n"
            return f"Input method {args[1]}: already enabled for user #0\n"
        return "ime: unknown command\n"

    def _type(self, text: str) -> None:
        self.events.append(("text", text))
        self.texts[self.foreground] = self.text + text

    def _launch(self, pkg: str) -> None:
        self.foreground = pkg
        self.events.append(("start", pkg))


def _bytes(out: str | bytes | _Streams) -> bytes:
    """A command's output as one stream of bytes (stderr first, as shell protocol v1 sends it)."""
    if isinstance(out, _Streams):
        return out.stderr.encode() + out.stdout
    return out if isinstance(out, bytes) else out.encode()


def _color(package: str) -> tuple[int, int, int]:
    digest = hashlib.sha256(package.encode()).digest()
    return 40 + digest[0] % 160, 40 + digest[1] % 160, 40 + digest[2] % 160
