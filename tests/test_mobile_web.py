"""The phone profile of BrowserEnv in real Chromium: taps hit elements, swipes scroll by touch."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pixelpilot import load_episode
from pixelpilot.actions import Click, LongPress, OpenApp, Swipe, SystemButton, Task
from pixelpilot.envs.browser import BrowserEnv
from pixelpilot.envs.mobile_web import PHONE_VIEWPORT, MobileWebEnv

PAGE = b"""<!doctype html>
<html><head><meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{margin:0;font:18px sans-serif} #tap{margin:40px 20px;width:200px;height:80px}
.row{height:120px;border-bottom:1px solid #ccc;padding:8px}</style></head>
<body>
<button id="tap">Tap me</button>
<p id="status">idle</p>
<div id="rows"></div>
<script>
  const log = window.touchLog = [];
  for (let i = 0; i < 60; i++) {
    const d = document.createElement('div'); d.className = 'row'; d.textContent = 'row ' + i;
    document.getElementById('rows').appendChild(d);
  }
  let pointer = null, downAt = 0;
  document.getElementById('tap').addEventListener('pointerdown', e => pointer = e.pointerType);
  document.getElementById('tap').addEventListener('click', () => {
    document.getElementById('status').textContent = 'tapped by ' + pointer;
  });
  for (const t of ['touchstart', 'touchmove', 'touchend'])
    document.addEventListener(t, () => log.push(t), {passive: true});
  // event times are stamped when the input arrives, so a busy page does not skew the hold
  document.addEventListener('touchstart', e => downAt = e.timeStamp, {passive: true});
  document.addEventListener('touchend', e => window.lastHold = e.timeStamp - downAt, {passive: true});
</script></body></html>"""


@pytest.fixture(scope="module")
def site():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
async def phone(site: str, shared_browser):
    env = BrowserEnv.phone(browser=shared_browser)
    await env.reset(Task(instruction="mobile web test", url=site))
    yield env
    await env.aclose()


@pytest.fixture
async def page(phone: MobileWebEnv, site: str):
    await phone.page.goto(site)
    await phone.page.evaluate("() => window.touchLog.length = 0")
    return phone.page


async def test_phone_profile(phone: MobileWebEnv, page) -> None:
    assert phone.kind == "mobile"
    facts = await page.evaluate(
        "() => [innerWidth, innerHeight, devicePixelRatio, navigator.maxTouchPoints, navigator.userAgent]"
    )
    assert facts[:2] == list(PHONE_VIEWPORT)
    assert facts[2] == 2.625 and facts[3] > 0 and "Mobile" in facts[4] and "Android" in facts[4]
    obs = await phone.observe()
    assert (obs.input_width, obs.input_height) == PHONE_VIEWPORT and obs.input_space == "css"


async def test_tap_hits_the_element(phone: MobileWebEnv, page) -> None:
    box = await phone.locate_text("Tap me")
    assert box is not None
    x, y = phone.grid.point_to_grid(*box.center, *phone.viewport)
    outcome = await phone.execute(Click(x=x, y=y))
    assert outcome.ok, outcome.error
    assert await page.text_content("#status") == "tapped by touch"
    assert await page.evaluate("() => window.touchLog") == ["touchstart", "touchend"]


async def test_swipe_up_scrolls_the_page_by_touch(phone: MobileWebEnv, page) -> None:
    before = await phone.observe()
    assert await page.evaluate("() => scrollY") == 0
    outcome = await phone.execute(Swipe(x=500, y=800, x2=500, y2=200, seconds=0.4))
    assert outcome.ok, outcome.error
    scrolled = await page.evaluate("() => scrollY")
    finger = 600 * PHONE_VIEWPORT[1] / 1000  # CSS px the finger travelled
    assert scrolled >= 0.8 * finger, scrolled  # the content followed the finger (and may have flung on)
    log = await page.evaluate("() => window.touchLog")
    assert log[0] == "touchstart" and log[-1] == "touchend" and log.count("touchmove") >= 5
    after = await phone.observe()
    assert after.sha256 != before.sha256
    # and a swipe down brings the top back
    for _ in range(4):
        await phone.execute(Swipe(x=500, y=150, x2=500, y2=900, seconds=0.2))
    assert await page.evaluate("() => scrollY") == 0


async def test_long_press_holds_the_touch(phone: MobileWebEnv, page) -> None:
    assert (await phone.execute(LongPress(x=500, y=700, seconds=0.6))).ok
    hold = await page.evaluate("() => window.lastHold")
    assert hold >= 550  # held for the 600 ms asked


async def test_buttons_and_apps(phone: MobileWebEnv, page) -> None:
    out = await phone.execute(SystemButton(button="home"))
    assert not out.ok and "no home button" in out.error
    out = await phone.execute(OpenApp(name="Settings"))
    assert not out.ok and "cannot open apps" in out.error


def test_cli_runs_a_task_with_env_mobile_web(site: str, tmp_path: Path) -> None:
    task = tmp_path / "phone.yaml"
    task.write_text(
        "instruction: Tap the button on the phone, then scroll down.\n"
        "steps:\n"
        "  - click: Tap me\n"
        "  - expect: {text: tapped by touch}\n"
        "  - {action: swipe, x: 500, y: 800, x2: 500, y2: 200}\n"
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pixelpilot.cli",
            "run",
            str(task),
            "--url",
            site,
            "--env",
            "mobile-web",
            "--out",
            str(tmp_path / "runs"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    episode = load_episode(out.stdout.splitlines()[-1].removeprefix("episode: "))
    assert episode.env == "mobile" and episode.status == "success"
    assert [s.action["action"] for s in episode.steps] == ["click", "swipe", "terminate"]
    assert episode.steps[0].extra["target"]["text"] == "Tap me"


def test_cli_rejects_an_unknown_env(tmp_path: Path) -> None:
    task = tmp_path / "t.yaml"
    task.write_text("instruction: x\nsteps:\n  - wait: 0\n")
    out = subprocess.run(
        [sys.executable, "-m", "pixelpilot.cli", "run", str(task), "--env", "fridge"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (
        out.returncode == 2
        and "--env: unknown env 'fridge'; known: browser, mobile-web, desktop, android" in out.stderr
    )
