"""BrowserEnv.settle returns early only when it may: the look right after execute shows the action's effect.

Each page turns a white box red some time after a click (or a scroll): in a microtask, in a
``setTimeout(0)``, when a slow loopback request answers, at the end of a CSS transition, on the page
a navigation or a popup opens, or when an IntersectionObserver's request answers. A settle that
returned at the first quiet frame without waiting for what the action started would observe the
white (or a half-red) box.
"""

from __future__ import annotations

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
