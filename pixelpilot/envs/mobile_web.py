"""The mobile web: Chromium as a phone (viewport, device scale, touch, user agent), driven by touch.

``MobileWebEnv()`` (also ``BrowserEnv.phone()``) is a ``BrowserEnv`` whose env kind is "mobile":
``click`` is a touchscreen tap, ``swipe`` a finger drag sent as real touch events through the
DevTools protocol (``Input.dispatchTouchEvent``), so the page scrolls the way it does under a
finger, touch handlers fire, and a fast swipe flings. ``long_press`` holds a touch;
``system_button`` back goes back in history and enter presses Enter. The input space is CSS
pixels of the phone's viewport.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from .base import EnvKind, PixelAction, handles
from .browser import BrowserEnv

if TYPE_CHECKING:
    from playwright.async_api import CDPSession, Page

#: A Pixel 8's viewport in CSS pixels, its device pixel ratio, and Chrome for Android's user agent.
PHONE_VIEWPORT = (412, 915)
PHONE_SCALE = 2.625
PHONE_USER_AGENT = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)
#: Touch moves are sent one frame apart, as a finger's would be.
_FRAME = 1 / 60


@dataclass(kw_only=True, eq=False)
class MobileWebEnv(BrowserEnv):
    """Chromium with a phone profile; touch input for taps, swipes and long presses."""

    kind: ClassVar[EnvKind] = "mobile"
    label = "a mobile web page"

    viewport: tuple[int, int] = PHONE_VIEWPORT
    device_scale_factor: float = PHONE_SCALE
    user_agent: str | None = PHONE_USER_AGENT
    is_mobile: bool = field(default=True, init=False)
    has_touch: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._cdp: tuple[Page, CDPSession] | None = None

    async def _touch_session(self, page: Page) -> CDPSession:
        if self._cdp is None or self._cdp[0] is not page:
            self._cdp = (page, await page.context.new_cdp_session(page))
        return self._cdp[1]

    async def _touch(self, points: list[tuple[float, float]], hold: float = 0.0) -> None:
        """One finger down at the first point, through the rest one frame apart, up at the last."""
        cdp = await self._touch_session(self.page)
        x, y = points[0]
        await cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
        for x, y in points[1:]:
            await asyncio.sleep(_FRAME)
            await cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
        if hold:
            await asyncio.sleep(hold)
        await cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})

    @handles("click")
    async def _tap(self, a: PixelAction) -> None:
        await self.page.touchscreen.tap(a["x"], a["y"])

    @handles("swipe")
    async def _swipe(self, a: PixelAction) -> None:
        steps = max(2, round(a["seconds"] / _FRAME))
        path = [
            (a["x"] + (a["x2"] - a["x"]) * i / steps, a["y"] + (a["y2"] - a["y"]) * i / steps) for i in range(steps + 1)
        ]
        await self._touch(path)

    @handles("long_press")
    async def _long_press(self, a: PixelAction) -> None:
        await self._touch([(a["x"], a["y"])], hold=a["seconds"])

    @handles("system_button")
    async def _system_button(self, a: PixelAction) -> str | None:
        if a["button"] == "back":
            return await self._back(a)
        if a["button"] == "enter":
            await self.page.keyboard.press("Enter")
            return None
        return f"a mobile web page has no {a['button']} button; use back or enter"

    @handles("open_app")
    async def _open_app(self, a: PixelAction) -> str:
        return "a mobile web page cannot open apps; use navigate with a URL"

    async def aclose(self) -> None:
        self._cdp = None
        await super().aclose()
