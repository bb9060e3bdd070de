"""BrowserEnv.settle returns early only when it may: the look right after execute shows the action's effect.

Each page turns a white box red some time after a click (or a scroll): in a microtask, in a
``setTimeout(0)``, when a slow loopback request answers, at the end of a CSS transition, on the page
a navigation or a popup opens, or when an IntersectionObserver's request answers. A settle that
returned at the first quiet frame without waiting for what the action started would observe the
white (or a half-red) box.
"""

from __future__ import annotations

import asyncio
import io
import time

import pytest
from PIL import Image

from pixelpilot.actions import Click, Scroll, Task
from pixelpilot.testing.http import LoopbackServer, QuietHandler, respond

RED = (255, 0, 0)
SLOW = 0.3  # seconds the slow routes take to answer

PAGE = """<!doctype html><html><head><style>
body {{ margin: 0; height: {height}px }}
#go {{ position: fixed; left: 20px; top: 20px; width: 120px; height: 40px }}
#box {{ position: fixed; left: 400px; top: 300px; width: 200px; height: 200px; background: {color}; {css} }}
#end {{ position: absolute; top: 1300px; height: 10px; width: 10px }}
</style></head><body><button id="go">go</button><div id="box"></div><div id="end"></div><script>
const box = document.getElementById('box');
const red = () => {{ box.style.background = 'rgb(255, 0, 0)'; }};
document.getElementById('go').onclick = () => {{ {effect} }};
{script}
</script></body></html>"""

CASES = {
    "microtask": {"effect": "Promise.resolve().then(red)"},
    "timeout0": {"effect": "setTimeout(red, 0)"},
    "fetch": {"effect": "fetch('/slow').then(r => r.text()).then(red)"},
    "fetch-then-timeout": {"effect": "fetch('/slow').then(r => r.text()).then(() => setTimeout(red, 0))"},
    "transition": {"effect": "red()", "css": "transition: background-color 400ms linear"},
    "navigation": {"effect": "location.href = '/page?case=done'"},
    "link-after-timeout": {"effect": "setTimeout(() => { location.href = '/page?case=done'; }, 0)"},
    "popup": {"effect": "window.open('/page?case=done')"},
    "lazy": {
        "effect": "",
        "script": "new IntersectionObserver(es => { if (es[0].isIntersecting) "
        "fetch('/slow').then(r => r.text()).then(red); }).observe(document.getElementById('end'));",
    },
    "done": {"color": "rgb(255, 0, 0)"},
}


class Pages(QuietHandler):
    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path != "/page":
            time.sleep(SLOW)  # /slow, and the documents a navigation or a popup opens
            respond(self, "ok", content_type="text/plain")
            return
        case = dict(p.split("=") for p in query.split("&"))["case"]
        if case == "done":
            time.sleep(SLOW)
        spec = {"effect": "", "css": "", "script": "", "color": "rgb(255, 255, 255)", "height": 3000, **CASES[case]}
        respond(self, PAGE.format(**spec))


@pytest.fixture(scope="module")
def site():
    with LoopbackServer(Pages) as server:
        yield server.url


def box_color(png: bytes) -> tuple[int, ...]:
    with Image.open(io.BytesIO(png)) as img:
        return img.convert("RGB").getpixel((500, 400))


@pytest.mark.parametrize("case", [c for c in CASES if c not in ("lazy", "done")])
async def test_the_look_after_a_click_shows_its_effect(browser_env, site, case):
    env = browser_env(settle_timeout=5.0)
    obs = await env.reset(Task(instruction="t", url=f"{site}page?case={case}"))
    assert box_color(obs.png) == (255, 255, 255)
    x, y = env.grid.point_to_grid(80, 40, *env.viewport)
    outcome = await env.execute(Click(x=x, y=y))
    assert outcome.ok, outcome.error
    obs = await env.observe()
    assert box_color(obs.png) == RED, f"{case}: observed before the effect (settled in {outcome.info['settle_ms']} ms)"
    if case in ("navigation", "link-after-timeout", "popup"):
        assert obs.url == f"{site}page?case=done"


async def test_the_look_after_a_scroll_shows_what_it_loaded(browser_env, site):
    env = browser_env(settle_timeout=5.0)
    await env.reset(Task(instruction="t", url=f"{site}page?case=lazy"))
    outcome = await env.execute(Scroll(x=500, y=500, dy=1000))
    assert outcome.ok, outcome.error
    assert box_color((await env.observe()).png) == RED


SPINNER = (
    "<style>@keyframes spin { to { transform: rotate(360deg) } }"
    "#s { width: 40px; height: 40px; background: blue; animation: spin 1s linear infinite }</style>"
    "<div id='s'></div><script>fetch('/slow?1'); setInterval(() => fetch('/slow?2'), 2000);</script>"
)


async def test_what_never_ends_is_not_waited_for(browser_env, site):
    """A spinner that turns forever and a request the page sent before the action are not the
    action's effect: a click on such a page settles well within the bound."""
    env = browser_env(settle_timeout=5.0)
    await env.reset(Task(instruction="t", url=site + "page?case=done"))
    await env.page.set_content(SPINNER)
    outcome = await env.execute(Click(x=500, y=900))
    assert outcome.ok and outcome.info["settle_ms"] < 2500, outcome.info


FORM = (
    "<body style='margin: 0; height: 3000px; font: 20px serif'>"
    "<input id='q' style='position: absolute; left: 40px; top: 60px; width: 300px; font-size: 28px'>"
    "<textarea style='position: absolute; left: 40px; top: 160px'>two\nlines</textarea>"
    "<p style='position: absolute; top: 900px'>further down</p></body>"
)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"device_scale_factor": 2},
        {"device_scale_factor": 2, "screenshot_scale": "device"},
        {"viewport": (390, 844), "device_scale_factor": 3, "is_mobile": True, "has_touch": True},
    ],
    ids=["css", "dpr2-css", "dpr2-device", "phone"],
)
async def test_the_look_has_playwrights_pixels(browser_env, site, options):
    """observe() captures through the page's own DevTools session: the same pixels as Playwright's
    page.screenshot() (which hides the text caret), with a field focused and the page scrolled.

    Not on the phone: there, focusing a field zooms into it, an animation of the compositor's that
    no settle sees end, so two looks taken a moment apart differ whoever takes them."""
    env = browser_env(**options)
    await env.reset(Task(instruction="t", url=site + "page?case=done"))
    await env.page.set_content(FORM)
    if not env.is_mobile:
        await env.page.focus("#q")
        await env.page.keyboard.type("caret after this")
    await env.page.mouse.wheel(0, 300)
    await env.settle()
    for _ in range(3):  # three looks: the caret blinks, so one could match by luck
        obs = await env.observe()
        reference = await env.page.screenshot(type="png", scale=env.screenshot_scale)
        assert obs.png == reference or _pixels(obs.png) == _pixels(reference)
        await asyncio.sleep(0.3)
    assert await env.page.evaluate("document.getElementById('q').style.caretColor") == ""  # put back


def _pixels(png: bytes) -> tuple[tuple[int, int], bytes]:
    with Image.open(io.BytesIO(png)) as img:
        return img.size, img.convert("RGB").tobytes()
