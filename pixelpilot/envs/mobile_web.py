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
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from .base import EnvKind, Handler, PixelAction
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


class MobileWebEnv(BrowserEnv):
    """Chromium with a phone profile; touch input for taps, swipes and long presses."""

    kind: ClassVar[EnvKind] = "mobile"
    label = "a mobile web page"

    def __init__(
        self,
        *,
        viewport: tuple[int, int] = PHONE_VIEWPORT,
        device_scale_factor: float = PHONE_SCALE,
        user_agent: str | None = PHONE_USER_AGENT,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            viewport=viewport,
            device_scale_factor=device_scale_factor,
            user_agent=user_agent,
            is_mobile=True,
            has_touch=True,
            **kwargs,
        )
        self._cdp: tuple[Page, CDPSession] | None = None

    def handlers(self) -> Mapping[str, Handler]:
        return {
            **super().handlers(),
            "click": self._tap,
            "swipe": self._swipe,
            "long_press": self._long_press,
            "system_button": self._system_button,
            "open_app": self._open_app,
        }

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

    async def _tap(self, a: PixelAction) -> None:
        await self.page.touchscreen.tap(a["x"], a["y"])

    async def _swipe(self, a: PixelAction) -> None:
        steps = max(2, round(a["seconds"] / _FRAME))
        path = [
            (a["x"] + (a["x2"] - a["x"]) * i / steps, a["y"] + (a["y2"] - a["y"]) * i / steps) for i in range(steps + 1)
        ]
        await self._touch(path)

    async def _long_press(self, a: PixelAction) -> None:
        await self._touch([(a["x"], a["y"])], hold=a["seconds"])

    async def _system_button(self, a: PixelAction) -> str | None:
        if a["button"] == "back":
            return await self._back(a)
        if a["button"] == "enter":
            await self.page.keyboard.press("Enter")
            return None
        return f"a mobile web page has no {a['button']} button; use back or enter"

    async def _open_app(self, a: PixelAction) -> str:
        return "a mobile web page cannot open apps; use navigate with a URL"

    async def aclose(self) -> None:
        self._cdp = None
        await super().aclose()
