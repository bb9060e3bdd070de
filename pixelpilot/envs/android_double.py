"""A test double for an Android device: no emulator can run on the machines this project tests on.

``AndroidDeviceDouble`` has the part of ``adbutils.AdbDevice`` that ``AndroidEnv`` uses (``serial``
and ``shell``). Its shell understands the commands the env sends — ``screencap`` (raw and ``-p``),
``input tap|swipe|text|keyevent|keycombination``, ``monkey -p``, ``am start``/``am broadcast``, ``ime``,
``settings get``, ``pm list packages``, ``dumpsys window | grep`` — with the device shell's
quoting, ``;``/``&&`` lists and pipes into ``grep``, and keeps a small phone state: the app in front,
the text typed into it, how far it is scrolled, the last touch. It serves a real rendered screen
(a launcher with app icons, or the app with its text field), and records every command line in
``commands`` and what each did in ``events``, so tests check effects, not just strings.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import shlex
import struct
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


class AndroidDeviceDouble:
    """A pretend phone behind adbutils' device interface; see the module docstring."""

    def __init__(
        self,
        serial: str = "double-1",
        *,
        size: tuple[int, int] = (1080, 2400),
        apps: dict[str, str] | None = None,
        adb_keyboard: bool = False,
    ) -> None:
        self.serial = serial
        self.size = size
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
        if stream:
            raise NotImplementedError("the Android double does not stream shell output")
        cmd = cmdargs if isinstance(cmdargs, str) else list2cmdline(list(cmdargs))  # as adbutils joins them
        self.commands.append(cmd)
        out = self._run_line(cmd)
        if encoding is None:
            return out if isinstance(out, bytes) else out.encode()
        text = out.decode(encoding, "replace") if isinstance(out, bytes) else out
        return text.rstrip() if rstrip else text

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
        d.rectangle((0, 0, w, 60), fill=(0, 0, 0))  # status bar
        if self.last_touch:
            x, y = self.last_touch
            d.ellipse((x - 20, y - 20, x + 20, y + 20), outline=(255, 80, 80), width=6)
        return img

    # --- the shell -----------------------------------------------------------------------------

    def _run_line(self, line: str) -> str | bytes:
        lex = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lex.whitespace_split = True
        words = list(lex)
        outputs: list[str | bytes] = []
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
        return "".join(o.decode() if isinstance(o, bytes) else o for o in outputs)

    def _run_pipeline(self, pipeline: list[list[str]]) -> str | bytes:
        out = self._run(pipeline[0]) if pipeline[0] else ""
        for argv in pipeline[1:]:
            if argv[:1] != ["grep"]:
                return f"/system/bin/sh: {argv[0]}: the double pipes only into grep\n"
            pattern = re.compile(argv[-1])
            text = out.decode() if isinstance(out, bytes) else out
            out = "".join(ln + "\n" for ln in text.splitlines() if pattern.search(ln))
        return out

    def _run(self, argv: list[str]) -> str | bytes:
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
        if argv == ["wm", "size"]:
            return f"Physical size: {self.size[0]}x{self.size[1]}\n"
        if name == "sleep":
            return ""
        return f"/system/bin/sh: {name}: inaccessible or not found\n"

    def _screencap(self, *, png: bool) -> bytes:
        key = (png, self.foreground, self.text, self.scroll.get(self.foreground), self.last_touch)
        if self._cache and self._cache[0] == key:
            return self._cache[1]  # the screen has not changed: serve the same frame, as fast as a phone would
        data = self._encode(self.render(), png)
        self._cache = (key, data)
        return data

    @staticmethod
    def _encode(img: Any, png: bool) -> bytes:
        if png:
            buf = io.BytesIO()
            img.save(buf, format="PNG", compress_level=1)
            return buf.getvalue()
        w, h = img.size
        return struct.pack("<IIII", w, h, 1, 0) + img.convert("RGBA").tobytes()  # RGBA_8888, sRGB

    def _input(self, verb: str, args: list[str]) -> str:
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
        elif verb == "keycombination":  # keys held together (Android 13 and later)
            self.events.append(("keys", *(_KEYCODES.get(arg, arg) for arg in args)))
        else:
            return f"Error: Unknown command: {verb}\n"
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


def _color(package: str) -> tuple[int, int, int]:
    digest = hashlib.sha256(package.encode()).digest()
    return 40 + digest[0] % 160, 40 + digest[1] % 160, 40 + digest[2] % 160
