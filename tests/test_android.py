"""AndroidEnv against the device double (no emulator runs here): real screens, real shell lines."""

from __future__ import annotations

import socket
import struct
import time

import pytest

from pixelpilot.actions import (
    Click,
    Drag,
    Grid,
    Key,
    LongPress,
    Navigate,
    OpenApp,
    Scroll,
    Swipe,
    SystemButton,
    Type,
)
from pixelpilot.envs import EnvError
from pixelpilot.envs.android import (
    EDGE_MARGIN,
    AndroidEnv,
    android_keycodes,
    input_text_commands,
    parse_png_screencap,
    parse_raw_screencap,
    pick_serial,
    resolve_app,
    scroll_swipes,
)
from pixelpilot.envs.android_double import (
    ADB_KEYBOARD,
    LATIN_IME,
    LAUNCHER,
    MULTIPLE_DISPLAYS_WARNING,
    AndroidDeviceDouble,
)

W, H = 1080, 2400


def make_env(device: AndroidDeviceDouble, **kw) -> AndroidEnv:
    options = {"settle_interval": 0.01, "settle_timeout": 1.0, "settle_grace": 0.05, **kw}
    return AndroidEnv(device=device, **options)


@pytest.fixture
async def phone():
    device = AndroidDeviceDouble(adb_keyboard=True)
    env = make_env(device)
    await env.reset()
    yield env, device
    await env.aclose()


async def test_observation_is_the_device_screen_in_physical_pixels(phone) -> None:
    env, device = phone
    obs = await env.observe()
    assert (obs.width, obs.height) == (W, H) == (obs.input_width, obs.input_height)
    assert obs.input_space == "device"
    assert obs.app == LAUNCHER
    assert "screencap" in device.commands  # the raw path, no PNG encode on the phone
    assert obs.image.size == (W, H)
    assert obs.image.getpixel((10, 10)) == (0, 0, 0)  # the status bar
    x, y = device.icon_center("com.example.notes")
    assert obs.image.getpixel((x, y - 40)) != obs.image.getpixel((5, 1000))  # an icon is drawn there


async def test_taps_map_the_grid_to_physical_pixels(phone) -> None:
    env, device = phone
    out = await env.execute(Click(x=500, y=500))
    assert out.ok and out.pixel_action == {"action": "click", "x": 540, "y": 1200, "button": "left"}
    assert "input tap 540 1200" in device.commands
    await env.execute(Click(x=1000, y=0))
    assert "input tap 1079 0" in device.commands  # clamped to the last pixel
    # tapping where the Notes icon is opens Notes
    gx, gy = Grid().point_to_grid(*device.icon_center("com.example.notes"), W, H)
    before = await env.observe()
    assert (await env.execute(Click(x=gx, y=gy))).ok
    after = await env.observe()
    assert after.app == "com.example.notes" and after.title == "com.example.notes/.MainActivity"
    assert after.sha256 != before.sha256


async def test_swipe_scrolls_and_long_press_holds(phone) -> None:
    env, device = phone
    await env.execute(OpenApp(name="com.example.notes"))
    before = await env.observe()
    out = await env.execute(Swipe(x=500, y=800, x2=500, y2=300, seconds=0.3))
    assert out.ok and "input swipe 540 1920 540 720 300" in device.commands
    assert device.scroll["com.example.notes"] == 1200  # the content followed the finger up
    after = await env.observe()
    assert after.image.crop((0, 400, W, H)).tobytes() != before.image.crop((0, 400, W, H)).tobytes()
    assert (await env.execute(LongPress(x=250, y=250, seconds=1.2))).ok
    assert "input swipe 270 600 270 600 1200" in device.commands
    assert device.events[-1] == ("long_press", 270, 600, 1200)


@pytest.mark.parametrize(
    "text",
    [
        "hello world",
        'it\'s 100% "quoted" & $HOME; `ls` | cat > /x (a) {b} <c> \\ ~!*?#',
        "a literal %s stays %s",
        "two\nlines\tand a tab",
        "   ",
    ],
)
async def test_ascii_text_survives_the_device_shell_and_input(phone, text: str) -> None:
    env, device = phone
    await env.execute(OpenApp(name="Notes"))
    out = await env.execute(Type(text=text))
    assert out.ok, out.error
    assert device.text == text
    assert device.ime == LATIN_IME  # no input method switch for ASCII


def test_input_text_escaping() -> None:
    assert input_text_commands("a b") == ["input text a%sb"]
    assert input_text_commands("a&b c") == ["input text 'a&b%sc'"]
    assert input_text_commands("it's") == ["input text 'it'\"'\"'s'"]
    assert input_text_commands("5%s") == ["input text 5%", "input text s"]
    assert input_text_commands("a\nb") == ["input text a", "input keyevent KEYCODE_ENTER", "input text b"]
    assert input_text_commands("héllo") is None


async def test_non_ascii_text_goes_through_adbkeyboard_and_the_keyboard_is_restored(phone) -> None:
    env, device = phone
    await env.execute(OpenApp(name="Notes"))
    text = "Grüße, 日本語 ✓ and 'quotes' 😀"
    assert (await env.execute(Type(text=text))).ok
    assert device.text == text
    assert ("ime", ADB_KEYBOARD) in device.events and device.ime == LATIN_IME


async def test_non_ascii_without_adbkeyboard_is_a_clear_error() -> None:
    device = AndroidDeviceDouble(adb_keyboard=False)
    env = make_env(device)
    await env.reset()
    out = await env.execute(Type(text="café"))
    assert not out.ok and "ADBKeyboard" in out.error and "com.android.adbkeyboard" in out.error
    assert device.text == ""


@pytest.mark.parametrize(
    "button,keycode",
    [
        ("back", "KEYCODE_BACK"),
        ("home", "KEYCODE_HOME"),
        ("menu", "KEYCODE_MENU"),
        ("enter", "KEYCODE_ENTER"),
    ],
)
async def test_system_buttons_are_key_events(phone, button: str, keycode: str) -> None:
    env, device = phone
    await env.execute(OpenApp(name="Notes"))
    assert (await env.execute(SystemButton(button=button))).ok
    assert device.commands.count(f"input keyevent {keycode}") == 1 + (button == "home")  # reset pressed HOME
    expected_app = LAUNCHER if button in ("back", "home") else "com.example.notes"
    assert (await env.observe()).app == expected_app


def sent(device: AndroidDeviceDouble, since: int) -> list[str]:
    """The command lines that acted on the device since ``since`` (not the looks and queries)."""
    return [c for c in device.commands[since:] if not c.startswith(("screencap", "dumpsys", "getprop"))]


@pytest.mark.parametrize(
    "action,command",
    [
        (Click(x=500, y=500), "input tap 540 1200"),
        (LongPress(x=250, y=250, seconds=1.2), "input swipe 270 600 270 600 1200"),
        (LongPress(x=250, y=250, seconds=0.1), "input swipe 270 600 270 600 500"),  # shorter is a tap
        (Swipe(x=500, y=800, x2=500, y2=300, seconds=0.3), "input swipe 540 1920 540 720 300"),
        # a quarter screen down: the finger moves up 600 px from the point, one px a ms
        (Scroll(x=500, y=500, dy=250), "input swipe 540 1200 540 600 600"),
        # near the top: the start moves down so that the end stays clear of the edge
        (Scroll(x=500, y=100, dy=300), "input swipe 540 912 540 192 720"),
        (Scroll(x=500, y=500, dx=500), "input swipe 626 1200 86 1200 540"),
        (Scroll(x=500, y=500, dy=-100), "input swipe 540 1200 540 1440 300"),
        # a whole screen up is longer than the room: two equal swipes in one shell call
        (Scroll(x=500, y=500, dy=-1000), "input swipe 540 1007 540 2207 1200 && input swipe 540 1007 540 2207 1200"),
        (Drag(x=100, y=100, x2=900, y2=900), "input draganddrop 108 240 972 2160 2105"),
        (Key(keys=["enter"]), "input keyevent KEYCODE_ENTER"),
        (Key(keys=["volume_up"]), "input keyevent KEYCODE_VOLUME_UP"),
        (Key(keys=["Backspace"]), "input keyevent KEYCODE_DEL"),
        (Key(keys=["ctrl", "a"]), "input keycombination KEYCODE_CTRL_LEFT KEYCODE_A"),
        (Key(keys=["alt", "shift", "tab"]), "input keycombination KEYCODE_ALT_LEFT KEYCODE_SHIFT_LEFT KEYCODE_TAB"),
        (Key(keys=["A"]), "input text A"),  # no key of its own: `input` presses shift and a
        (Key(keys=["!"]), "input text '!'"),
        (SystemButton(button="back"), "input keyevent KEYCODE_BACK"),
        (Type(text="hi there"), "input text hi%sthere"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
async def test_every_action_kind_is_the_exact_adb_command(phone, action, command: str) -> None:
    env, device = phone
    await env.execute(OpenApp(name="Notes"))
    since = len(device.commands)
    out = await env.execute(action)
    assert out.ok, out.error
    assert sent(device, since) == [command]


async def test_keys_reach_the_app(phone) -> None:
    env, device = phone
    await env.execute(OpenApp(name="Notes"))
    assert (await env.execute(Key(keys=["ctrl", "a"]))).ok
    assert device.events[-1] == ("keys", "KEYCODE_CTRL_LEFT", "KEYCODE_A")
    for keys in (["A"], ["!"], ["enter"], ["b"]):
        assert (await env.execute(Key(keys=keys))).ok
    assert device.text == "A!\n" and device.events[-1] == ("key", "KEYCODE_B")
    out = await env.execute(Key(keys=["f24"]))
    assert not out.ok and out.error == "a phone has no 'f24' key"


async def test_scroll_moves_the_content_by_the_amount(phone) -> None:
    env, device = phone
    await env.execute(OpenApp(name="Notes"))
    before = await env.observe()
    assert (await env.execute(Scroll(x=500, y=500, dy=250))).ok
    assert device.scroll["com.example.notes"] == 600  # a quarter of 2400 px
    after = await env.observe()
    assert after.image.crop((0, 400, W, H)).tobytes() != before.image.crop((0, 400, W, H)).tobytes()
    assert (await env.execute(Scroll(x=500, y=500, dy=-100))).ok
    assert device.scroll["com.example.notes"] == 360
    out = await env.execute(Scroll(x=500, y=500))
    assert not out.ok and "needs an amount" in out.error


def test_scroll_swipes_add_up_to_the_amount_and_stay_clear_of_the_edges() -> None:
    for w, h in ((1080, 2400), (720, 1280), (2400, 1080)):
        lo_x, lo_y = round(w * EDGE_MARGIN), round(h * EDGE_MARGIN)
        for x, y in ((0, 0), (w // 2, h // 2), (w - 1, h - 1), (10, h - 10)):
            for dx, dy in ((0, h), (0, -h), (w, 0), (-w // 3, 0), (w // 5, -h // 7), (0, 1)):
                swipes = scroll_swipes(x, y, dx, dy, w, h)
                assert sum(x1 - x2 for x1, _, x2, _, _ in swipes) == dx
                assert sum(y1 - y2 for _, y1, _, y2, _ in swipes) == dy
                for x1, y1, x2, y2, ms in swipes:
                    assert all(lo_x <= v <= w - 1 - lo_x for v in (x1, x2))
                    assert all(lo_y <= v <= h - 1 - lo_y for v in (y1, y2))
                    assert ms >= 300
    # the start stays where the model pointed when the room allows it
    assert scroll_swipes(540, 1200, 0, 600, 1080, 2400) == [(540, 1200, 540, 600, 600)]


async def test_drag_is_a_drag_and_drop(phone) -> None:
    env, device = phone
    assert (await env.execute(Drag(x=100, y=100, x2=900, y2=900))).ok
    assert device.events[-1] == ("drag", 108, 240, 972, 2160, 2105) and device.last_touch == (972, 2160)


async def test_older_androids_say_what_they_lack() -> None:
    device = AndroidDeviceDouble(sdk=23)  # Android 6: neither draganddrop nor keycombination
    env = make_env(device)
    await env.reset()
    since = len(device.commands)
    out = await env.execute(Drag(x=100, y=100, x2=900, y2=900))
    assert not out.ok and out.error == "drag needs `input draganddrop` (Android 7, API 24); this device runs API 23"
    out = await env.execute(Key(keys=["ctrl", "c"]))
    assert not out.ok and "needs `input keycombination` (Android 12, API 31); this device runs API 23" in out.error
    assert sent(device, since) == []  # nothing was sent that the device would refuse
    assert (await env.execute(Key(keys=["A"]))).ok and "input text A" in device.commands  # typed, not a combination
    assert device.commands.count("getprop ro.build.version.sdk") == 1  # asked once


async def test_what_input_refuses_is_the_actions_error() -> None:
    device = AndroidDeviceDouble(sdk=30)
    device.sdk = 0  # a device whose API level the env cannot read: it tries, and `input` refuses
    env = make_env(device)
    await env.reset()
    out = await env.execute(Key(keys=["ctrl", "c"]))
    assert not out.ok
    assert out.error == (
        "the device refused `input keycombination KEYCODE_CTRL_LEFT KEYCODE_C`: Error: Unknown command: keycombination"
    )


def test_every_canonical_key_is_a_key_code_or_refused_by_name() -> None:
    from pixelpilot.actions.keys import CANONICAL

    for name in CANONICAL:
        try:
            assert all(code.startswith("KEYCODE_") for code in android_keycodes([name]))
        except ValueError as e:
            assert str(e) == f"a phone has no {name!r} key"
    assert android_keycodes(["back", "home"]) == ["KEYCODE_BACK", "KEYCODE_MOVE_HOME"]  # home is the keyboard's
    assert android_keycodes(["ctrl", "A"]) == ["KEYCODE_CTRL_LEFT", "KEYCODE_A"]  # in a combination, the key


async def test_open_app_by_package_label_or_name_fragment(phone) -> None:
    env, device = phone
    for name, package in [
        ("com.android.settings", "com.android.settings"),
        ("Settings", "com.android.settings"),
        ("Chrome", "com.android.chrome"),
        ("calculator", "com.google.android.calculator"),
        ("deskclock", "com.google.android.deskclock"),
    ]:
        await env.execute(SystemButton(button="home"))
        assert (await env.execute(OpenApp(name=name))).ok, name
        assert (await env.observe()).app == package, name
    assert "monkey -p com.android.settings -c android.intent.category.LAUNCHER 1" in device.commands
    out = await env.execute(OpenApp(name="Spreadsheets"))
    assert not out.ok and "no app called 'Spreadsheets'" in out.error
    mine = make_env(device, apps={"My Notes": "com.example.notes"})
    await mine.reset()
    assert (await mine.execute(OpenApp(name="my notes"))).ok and device.foreground == "com.example.notes"


def test_resolve_app_reports_ambiguity() -> None:
    installed = {"com.a.notes", "com.b.notes", "com.android.settings"}
    assert resolve_app("notes", installed, {}) == ["com.a.notes", "com.b.notes"]
    assert resolve_app("Settings", installed, {}) == "com.android.settings"


async def test_unsupported_actions_are_error_outcomes(phone) -> None:
    env, _ = phone
    out = await env.execute(Navigate(url="http://127.0.0.1/"))
    assert not out.ok and "a phone cannot do 'navigate'" in out.error
    assert out.error.endswith(
        "it can do click, long_press, swipe, scroll, drag, type, key, system_button, open_app, wait"
    )


def screen_pixels(device: AndroidDeviceDouble) -> bytes:
    return device.render().convert("RGBA").tobytes()


@pytest.mark.parametrize(
    "sdk,header",
    [
        (30, b"\x38\x04\x00\x00\x60\x09\x00\x00\x01\x00\x00\x00"),
        (34, b"\x38\x04\x00\x00\x60\x09\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00"),
    ],
    ids=["android-11-header", "android-12-header"],
)
def test_raw_screencap_headers_parse(sdk: int, header: bytes) -> None:
    device = AndroidDeviceDouble(sdk=sdk)
    data = device.shell("screencap", encoding=None)
    assert data[: len(header)] == header and len(data) == len(header) + W * H * 4  # 1080 x 2400, RGBA_8888
    frame = parse_raw_screencap(data)
    assert frame is not None and (frame.width, frame.height) == (W, H)
    assert frame.image().tobytes() == screen_pixels(device)


def test_a_warning_in_front_of_the_capture_is_skipped() -> None:
    # a phone with two displays, on shell protocol v1: the warning on stderr comes first in the stream
    device = AndroidDeviceDouble(displays=2)
    raw = device.shell("screencap", encoding=None)
    assert raw.startswith(MULTIPLE_DISPLAYS_WARNING.encode())
    frame = parse_raw_screencap(raw)
    assert frame is not None and frame.image().tobytes() == screen_pixels(device)
    png = device.shell("screencap -p", encoding=None)
    assert png.startswith(b"[Warning] Multiple displays")
    frame = parse_png_screencap(png)
    assert frame is not None and (frame.width, frame.height) == (W, H)
    assert frame.image().convert("RGBA").tobytes() == screen_pixels(device)
    # shell protocol v2 keeps the warning apart
    result = device.shell2("screencap", encoding=None, v2=True)
    assert result.stderr == MULTIPLE_DISPLAYS_WARNING.encode() and result.stdout == raw[len(result.stderr) :]


def test_raw_screencap_in_rgbx_and_rgb_888() -> None:
    from PIL import Image

    img = Image.new("RGB", (3, 2), (10, 20, 30))
    img.putpixel((2, 1), (200, 100, 50))
    rgbx = struct.pack("<IIII", 3, 2, 2, 1) + img.convert("RGBX").tobytes()  # RGBX_8888, sRGB
    rgb = struct.pack("<III", 3, 2, 3) + img.tobytes()  # RGB_888, no colour space
    for data in (rgbx, rgb):
        frame = parse_raw_screencap(data)
        assert frame is not None and frame.image().convert("RGB").tobytes() == img.tobytes()


def test_raw_screencap_that_is_not_a_frame_is_refused() -> None:
    rgb565 = b"\x10\x00\x00\x00\x10\x00\x00\x00\x04\x00\x00\x00" + b"\x00" * 512  # 16 x 16, RGB_565
    assert parse_raw_screencap(rgb565) is None
    assert parse_raw_screencap(b"/system/bin/sh: screencap: inaccessible or not found\n") is None
    assert parse_raw_screencap(b"") is None
    assert parse_png_screencap(b"Error opening file\n") is None


@pytest.mark.parametrize("shell_v2", [True, False], ids=["shell-v2", "shell-v1"])
async def test_a_phone_with_two_displays_gives_raw_frames(shell_v2: bool) -> None:
    device = AndroidDeviceDouble(displays=2, shell_v2=shell_v2)
    env = make_env(device)
    obs = await env.reset()
    assert env.png_frames == 0 and "screencap -p" not in device.commands
    assert obs.image.convert("RGBA").tobytes() == screen_pixels(device)


class FlakyRawDouble(AndroidDeviceDouble):
    """A device whose raw capture comes back cut short now and then (the first ``bad`` times)."""

    bad = 1

    def _run(self, argv):
        out = super()._run(argv)
        if argv == ["screencap"] and self.bad:
            self.bad -= 1
            out.stdout = out.stdout[: len(out.stdout) // 2]
        return out


async def test_png_is_the_fallback_for_that_frame_only() -> None:
    device = FlakyRawDouble()
    env = make_env(device, settle_timeout=0)
    first = await env.capture()
    assert device.commands == ["screencap", "screencap -p"] and env.png_frames == 1
    assert first.png[:8] == b"\x89PNG\r\n\x1a\n" and (first.width, first.height) == (W, H)
    second = await env.capture()
    assert device.commands[2:] == ["screencap"] and env.png_frames == 1  # raw again
    assert second.image().tobytes() == screen_pixels(device)


async def test_raw_only_refuses_a_bad_frame_and_png_only_never_asks_for_raw() -> None:
    env = make_env(FlakyRawDouble(), screencap="raw")
    await env.start()
    with pytest.raises(EnvError, match="no raw frame"):
        await env.capture()
    device = AndroidDeviceDouble()
    env = make_env(device, screencap="png")
    obs = await env.reset()
    assert "screencap" not in device.commands and obs.png[:8] == b"\x89PNG\r\n\x1a\n"


async def test_settle_returns_on_the_second_frame_of_a_still_screen() -> None:
    device = AndroidDeviceDouble()
    env = make_env(device)
    await env.start()
    assert await env.wait_until_stable() is True
    assert env.settle_frames == 2 and device.captures == 2


@pytest.mark.parametrize("frames", [1, 5])
async def test_settle_waits_while_the_screen_changes(frames: int) -> None:
    device = AndroidDeviceDouble()
    env = make_env(device)
    await env.start()
    device.animate(frames)
    assert await env.wait_until_stable() is True
    assert env.settle_frames == frames + 2  # each animated frame, the still one, and its match
    # after an action that starts a transition, the same
    device = AndroidDeviceDouble(transition_frames=frames)
    env = make_env(device)
    await env.reset()
    out = await env.execute(Click(x=500, y=500))
    assert out.ok and env.settle_frames == frames + 2
    assert (await env.observe()).image.convert("RGBA").tobytes() == screen_pixels(device)  # the settled frame


async def test_settle_gives_an_unchanged_screen_the_grace_to_change() -> None:
    device = AndroidDeviceDouble()
    env = make_env(device, settle_grace=0.2)
    await env.reset()
    t0 = time.monotonic()
    out = await env.execute(Key(keys=["volume_up"]))  # nothing on the screen changes
    assert out.ok and time.monotonic() - t0 >= 0.2 and env.settle_frames > 2
    await env.execute(OpenApp(name="Notes"))
    t0 = time.monotonic()
    assert (await env.execute(Scroll(dy=300))).ok  # the content moves: no grace needed
    assert env.settle_frames == 2 and time.monotonic() - t0 < 0.2


async def test_settle_waits_for_an_effect_drawn_late() -> None:
    device = AndroidDeviceDouble(effect_delay=3)  # three captures still show the screen from before
    env = make_env(device, settle_grace=0.5)
    await env.reset()
    await env.execute(OpenApp(name="Notes"))
    assert (await env.execute(Scroll(dy=300))).ok
    assert env.settle_frames == 5  # three stale frames, the scrolled one and its match
    assert (await env.observe()).image.convert("RGBA").tobytes() == screen_pixels(device)


class FlickeringDouble(AndroidDeviceDouble):
    """A screen that never stops changing (a video, say)."""

    def _screencap(self, *, png: bool):
        self.foreground = LAUNCHER if self.captures % 2 else "com.example.notes"
        return super()._screencap(png=png)


async def test_wait_until_stable_is_bounded() -> None:
    device = FlickeringDouble()
    env = make_env(device)
    await env.start()
    t0 = time.monotonic()
    assert await env.wait_until_stable(timeout=0.3) is False
    assert time.monotonic() - t0 < 1.5 and env.settle_frames == device.captures > 2


def test_serial_selection() -> None:
    assert pick_serial(["emulator-5554"], None) == "emulator-5554"
    assert pick_serial(["a", "b"], "b") == "b"
    with pytest.raises(EnvError) as e:
        pick_serial([], None)
    assert "no Android device is attached" in str(e.value) and "adb connect" in str(e.value)
    assert "pick" not in str(e.value)
    with pytest.raises(EnvError) as e:
        pick_serial(["a", "b"], None)
    assert str(e.value) == (
        "2 Android devices are attached (a, b); pick one with AndroidEnv(serial=…), $ANDROID_SERIAL, or --android-serial"
    )
    with pytest.raises(EnvError, match="'c' is not attached; `adb devices` lists a, b"):
        pick_serial(["a", "b"], "c")
    with pytest.raises(EnvError, match="'c' is not attached: no Android device is attached"):
        pick_serial([], "c")


async def test_no_adb_server_is_a_clear_error(monkeypatch) -> None:
    # adbutils runs `adb start-server` when it cannot connect; keep it from leaving a server behind
    monkeypatch.setenv("ADBUTILS_ADB_PATH", "/bin/true")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    with pytest.raises(EnvError, match="adb start-server"):
        await AndroidEnv(adb_port=port).reset()
