"""AndroidEnv on a real phone or emulator, when `adb devices` lists one; skipped otherwise.

The adb server is started for the check if none runs, and stopped again afterwards.
"""

from __future__ import annotations

import shutil
import socket
import subprocess

import pytest

from pixelpilot.actions import Click, Key, OpenApp, Scroll, Swipe, SystemButton
from pixelpilot.envs.android import AndroidEnv


def _server_running(port: int = 5037) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def serial():
    adb = shutil.which("adb")
    assert adb, "adb is missing; install Debian's adb (scripts/setup.sh test does)"
    started = not _server_running()
    try:
        out = subprocess.run([adb, "devices"], capture_output=True, text=True, timeout=30).stdout
        serials = [ln.split("\t")[0] for ln in out.splitlines()[1:] if ln.endswith("\tdevice")]
        if not serials:
            pytest.skip("no Android device or emulator: `adb devices` lists none")
        yield serials[0]
    finally:
        if started:
            subprocess.run([adb, "kill-server"], capture_output=True, timeout=30)


async def test_real_device_taps_swipes_scrolls_keys_and_launches(serial: str) -> None:
    env = AndroidEnv(serial=serial)
    try:
        home = await env.reset()
        assert home.width > 0 and home.input_space == "device"
        assert (await env.execute(OpenApp(name="com.android.settings"))).ok
        settings = await env.observe()
        assert settings.app == "com.android.settings"
        assert (await env.execute(Swipe(x=500, y=800, x2=500, y2=300))).ok
        scrolled = await env.observe()
        assert scrolled.sha256 != settings.sha256
        assert (await env.execute(Scroll(dy=-400))).ok  # back up: content further up comes into view
        assert (await env.observe()).sha256 != scrolled.sha256
        assert (await env.execute(Key(keys=["volume_down"]))).ok
        out = await env.execute(Click(x=500, y=500))
        assert out.ok and out.pixel_action["x"] == round(500 * home.input_width / 1000)
        for button in ("back", "back", "home"):
            assert (await env.execute(SystemButton(button=button))).ok
        assert (await env.observe()).app != "com.android.settings"
    finally:
        await env.aclose()
