"""AndroidEnv against the device double (no emulator runs here): real screens, real shell lines."""

from __future__ import annotations

import socket
import time

import pytest

from pixelpilot.actions import Click, Grid, Key, LongPress, Navigate, OpenApp, Swipe, SystemButton, Type
from pixelpilot.envs import EnvError
from pixelpilot.envs.android import AndroidEnv, android_keycodes, input_text_commands, pick_serial, resolve_app
from pixelpilot.envs.android_double import ADB_KEYBOARD, LATIN_IME, LAUNCHER, AndroidDeviceDouble

W, H = 1080, 2400


def make_env(device: AndroidDeviceDouble, **kw) -> AndroidEnv:
    return AndroidEnv(device=device, settle_interval=0.01, settle_timeout=1.0, **kw)


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


async def test_keys_are_android_key_events(phone) -> None:
    env, device = phone
    await env.execute(OpenApp(name="Notes"))
    assert (await env.execute(Key(keys=["volume_up"]))).ok
    assert "input keyevent KEYCODE_VOLUME_UP" in device.commands and device.events[-1] == ("key", "KEYCODE_VOLUME_UP")
    assert (await env.execute(Key(keys=["ctrl", "a"]))).ok
    assert device.events[-1] == ("keys", "KEYCODE_CTRL_LEFT", "KEYCODE_A")
    assert (await env.execute(Key(keys=["A"]))).ok  # an upper-case letter alone: shift and the letter
    assert device.events[-1] == ("keys", "KEYCODE_SHIFT_LEFT", "KEYCODE_A")
    assert (await env.execute(Key(keys=["enter"]))).ok and device.text == "\n"
    out = await env.execute(Key(keys=["f24"]))
    assert not out.ok and out.error == "a phone has no 'f24' key"


def test_every_canonical_key_is_a_key_code_or_refused_by_name() -> None:
    from pixelpilot.actions.keys import CANONICAL

    for name in CANONICAL:
        try:
            assert all(code.startswith("KEYCODE_") for code in android_keycodes([name]))
        except ValueError as e:
            assert str(e) == f"a phone has no {name!r} key"
    assert android_keycodes(["back", "home"]) == ["KEYCODE_BACK", "KEYCODE_MOVE_HOME"]  # home is the keyboard's


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
    assert out.error.endswith("it can do click, long_press, swipe, type, key, system_button, open_app, wait")


class FlickeringDouble(AndroidDeviceDouble):
    """A screen that never stops changing (a video, say)."""

    frames = 0

    def _screencap(self, *, png: bool) -> bytes:
        self.frames += 1
        self.foreground = LAUNCHER if self.frames % 2 else "com.example.notes"
        return super()._screencap(png=png)


async def test_wait_until_stable_is_bounded() -> None:
    env = make_env(FlickeringDouble())
    await env.start()
    t0 = time.monotonic()
    assert await env.wait_until_stable(timeout=0.3) is False
    assert time.monotonic() - t0 < 1.5
    calm = make_env(AndroidDeviceDouble())
    await calm.start()
    assert await calm.wait_until_stable(timeout=2.0) is True


class PngOnlyDouble(AndroidDeviceDouble):
    """An old device whose raw screencap is some other pixel format."""

    def _run(self, argv):
        if argv == ["screencap"]:
            return b"\x10\x00\x00\x00\x10\x00\x00\x00\x04\x00\x00\x00" + b"\x00" * 512  # RGB_565
        return super()._run(argv)


async def test_falls_back_to_png_screencap() -> None:
    device = PngOnlyDouble()
    env = make_env(device)
    obs = await env.reset()
    assert env.screencap == "png" and "screencap -p" in device.commands
    assert obs.png[:8] == b"\x89PNG\r\n\x1a\n" and (obs.width, obs.height) == (W, H)


def test_serial_selection() -> None:
    assert pick_serial(["emulator-5554"], None) == "emulator-5554"
    assert pick_serial(["a", "b"], "b") == "b"
    with pytest.raises(EnvError, match="lists a, b"):
        pick_serial(["a", "b"], None)
    with pytest.raises(EnvError, match="'c' is not attached"):
        pick_serial(["a", "b"], "c")


async def test_no_adb_server_is_a_clear_error(monkeypatch) -> None:
    # adbutils runs `adb start-server` when it cannot connect; keep it from leaving a server behind
    monkeypatch.setenv("ADBUTILS_ADB_PATH", "/bin/true")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    with pytest.raises(EnvError, match="adb start-server"):
        await AndroidEnv(adb_port=port).reset()
