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
from typing import TYPE_CHECKING, Any, Literal

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

    kind: Literal["mobile"] = "mobile"  # type: ignore[assignment]

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

    async def _touch_session(self, page: Page) -> CDPSession:
        if self._cdp is None or self._cdp[0] is not page:
            self._cdp = (page, await page.context.new_cdp_session(page))
        return self._cdp[1]

    async def _touch(self, page: Page, points: list[tuple[float, float]], hold: float = 0.0) -> None:
        """One finger down at the first point, through the rest one frame apart, up at the last."""
        cdp = await self._touch_session(page)
        x, y = points[0]
        await cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
        for x, y in points[1:]:
            await asyncio.sleep(_FRAME)
            await cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
        if hold:
            await asyncio.sleep(hold)
        await cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})

    async def _dispatch(self, page: Page, kind: str, a: dict[str, Any]) -> str | None:
        if kind == "click":
            await page.touchscreen.tap(a["x"], a["y"])
        elif kind == "swipe":
            steps = max(2, round(a["seconds"] / _FRAME))
            path = [
                (a["x"] + (a["x2"] - a["x"]) * i / steps, a["y"] + (a["y2"] - a["y"]) * i / steps)
                for i in range(steps + 1)
            ]
            await self._touch(page, path)
        elif kind == "long_press":
            await self._touch(page, [(a["x"], a["y"])], hold=a["seconds"])
        elif kind == "system_button":
            if a["button"] == "back":
                return await super()._dispatch(page, "back", a)
            if a["button"] == "enter":
                await page.keyboard.press("Enter")
            else:
                return f"a mobile web page has no {a['button']} button; use back or enter"
        elif kind == "open_app":
            return "a mobile web page cannot open apps; use navigate with a URL"
        else:
            return await super()._dispatch(page, kind, a)
        return None

    async def aclose(self) -> None:
        self._cdp = None
        await super().aclose()
