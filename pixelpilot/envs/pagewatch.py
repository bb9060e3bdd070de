"""What a browser page is still doing after an action, seen through a DevTools session of its own.

:class:`BrowserEnv.settle` waits on it. The session reports, in the order the page did them, the
navigations a frame asked for or is loading (``Page.frameRequestedNavigation``,
``frameStartedLoading``/``frameStoppedLoading``), the windows the page opens (``Page.windowOpen``)
and the requests it sends (``Network.requestWillBeSent``/``loadingFinished``/``loadingFailed``).
Because ``js/settle.js`` runs through the same session, every event the page caused before that
script's frame arrives before the script's answer: a request started by a click handler, by a
``setTimeout(0)`` or by an ``IntersectionObserver`` in the frame is never missed.

Only requests sent since the last :meth:`Watches.mark` (the action) are waited for, so a long
poll the page had open before does not hold every step; streams (EventSource, WebSocket, media)
and fire-and-forget pings are not waited for at all.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.async_api import CDPSession, Page

__all__ = ["PageWatch", "Watches"]

#: Request kinds that may stay open for as long as the page lives, or that nothing on screen waits for.
_NOT_WAITED = frozenset({"EventSource", "WebSocket", "Media", "Ping", "CSPViolationReport", "Prefetch"})


class PageWatch:
    """One page's pending navigations and requests, and its settle script; made by :class:`Watches`."""

    def __init__(self, page: Page, session: CDPSession, owner: Watches) -> None:
        self.page = page
        self.session = session
        self.loading: set[str] = set()  # frames loading a document
        self.requested: set[str] = set()  # frames that asked for a navigation not yet started
        self._requests: set[str] = set()  # requests sent since the last action began
        #: Navigations asked for or started and requests sent since the last action began, all counted.
        self.activity = 0
        self._owner = owner

    def forget_activity(self) -> None:
        """An action begins: what the page did before is no longer waited for nor counted."""
        self._requests.clear()
        self.activity = 0

    @property
    def busy(self) -> bool:
        """Whether a navigation, or a request sent since the action began, is still under way."""
        return bool(self.loading or self.requested or self._requests)

    async def frame(self, quiet_ms: int, max_ms: float) -> None:
        """Run ``js/settle.js`` in the page: returns after the first frame rendered once the page
        stopped changing (bounded by ``max_ms``). Raises Playwright's ``Error`` when the document
        went away meanwhile (a navigation committed)."""
        from .browser import page_script

        args = json.dumps([quiet_ms, max_ms])
        await self.session.send(
            "Runtime.evaluate",
            {"expression": f"({page_script('settle')})({args})", "awaitPromise": True, "returnByValue": True},
        )

    async def capture(self, *, fast: bool = True) -> tuple[bytes, str]:
        """A PNG of the viewport, as Playwright's ``page.screenshot()`` takes it (caret hidden, web
        fonts loaded) in three round trips instead of six or more, and the title; ``fast`` has
        Chromium compress it for speed (the same pixels in more bytes).

        Only for pages at a device scale factor of 1 without mobile emulation: this session does
        not share the emulation Playwright's session set (its capture comes at CSS scale, and a
        clip would make Chromium re-emulate the page for it). Raises Playwright's ``Error`` when
        the page went away or navigated meanwhile.
        """
        ready = await self._script("false")
        try:
            shot = await self._shoot(fast)
        finally:
            await self._restore()
        return shot, str(ready.get("result", {}).get("value", ""))

    async def settle_and_capture(self, quiet_ms: int, max_ms: float, *, fast: bool = True) -> tuple[bytes, str] | None:
        """:meth:`frame` and :meth:`capture` at once, one frame sooner: the capture is asked for once
        the settle script watches the page, so Chromium draws it from a frame rendered after that.
        It is the look when the first such frame settled the page with no DOM mutation at all (the
        frame captured is that one or a later one); else None, and the page has been waited on as
        :meth:`frame` waits. The caller asks for it only while nothing the action started is under
        way, and drops it when a navigation, request or popup started meanwhile (:attr:`activity`
        changed): the page may change when those end. Raises Playwright's ``Error`` as
        :meth:`frame` does.
        """
        from .browser import page_script

        settle = f"[{page_script('settle')}, {json.dumps([quiet_ms, max_ms])}]"
        # Not awaited here: the promise is asked for once the script runs (hidden caret, observer in place).
        started = await self._script(f"false, {settle}", wait=False)
        promise = started.get("result", {}).get("objectId")
        try:
            if promise is None:
                return None
            shot, settled = await asyncio.gather(
                self._shoot(fast),
                self.session.send("Runtime.awaitPromise", {"promiseObjectId": promise, "returnByValue": True}),
            )
        finally:
            await self._restore()
        value = settled.get("result", {}).get("value")
        if not isinstance(value, list) or len(value) != 2 or value[1] != [1, 0]:
            return None  # it took more than a frame, or the page changed on its own
        return shot, str(value[0])

    async def mark_scroll(self, x: float, y: float, dx: float, dy: float) -> None:
        """A wheel at (x, y) by (dx, dy) is coming: note the scroller it will move, so that the
        settle waits until the page has heard of the scroll (``js/scroll_mark.js``)."""
        from .browser import page_script

        args = json.dumps([x, y, dx, dy])
        await self.session.send("Runtime.evaluate", {"expression": f"({page_script('scroll_mark')})({args})"})

    async def _script(self, args: str, *, wait: bool = True) -> Any:
        from .browser import page_script

        expression = f"({page_script('capture')})({args})"
        return await self.session.send(
            "Runtime.evaluate", {"expression": expression, "awaitPromise": wait, "returnByValue": wait}
        )

    async def _shoot(self, fast: bool) -> bytes:
        shot = await self.session.send("Page.captureScreenshot", {"format": "png", "optimizeForSpeed": fast})
        return base64.b64decode(shot["data"])

    async def _restore(self) -> None:
        try:
            await self._script("true")
        except Exception:
            pass  # the document went away with the caret it hid

    # --- events ---------------------------------------------------------------------------------

    def _requested(self, event: dict[str, Any]) -> None:
        self.activity += 1
        self.requested.add(event["frameId"])
        self._owner.notify()

    def _started(self, event: dict[str, Any]) -> None:
        self.activity += 1
        self.requested.discard(event["frameId"])
        self.loading.add(event["frameId"])
        self._owner.notify()

    def _stopped(self, event: dict[str, Any]) -> None:
        self.requested.discard(event["frameId"])
        self.loading.discard(event["frameId"])
        self._owner.notify()

    def _request(self, event: dict[str, Any]) -> None:
        if event.get("type") not in _NOT_WAITED:
            self._requests.add(event["requestId"])
            self.activity += 1

    def _done(self, event: dict[str, Any]) -> None:
        if event["requestId"] in self._requests:
            self._requests.discard(event["requestId"])
            self._owner.notify()


class Watches:
    """The watches of a browser context's pages, and the popups its pages opened that have not
    arrived as pages yet (a window opens at once; Playwright reports its page tens of ms later)."""

    def __init__(self) -> None:
        self._opening: dict[Page, asyncio.Future[PageWatch | None]] = {}
        self.popups = 0
        self.windows = 0  # windows opened since the last action began
        self._event = asyncio.Event()

    def add(self, page: Page) -> None:
        """A page opened: start watching it, and count it against the popups awaited."""
        self.popups -= 1  # below zero when the page came before its opener's windowOpen event
        self._opening[page] = asyncio.ensure_future(self._open(page))
        page.on("close", self._forget)
        self.notify()

    def _forget(self, page: Page) -> None:
        self._opening.pop(page, None)

    async def _open(self, page: Page) -> PageWatch | None:
        try:
            session = await page.context.new_cdp_session(page)
            watch = PageWatch(page, session, self)
            handlers = {
                "Page.frameRequestedNavigation": watch._requested,
                "Page.frameStartedLoading": watch._started,
                "Page.frameStoppedLoading": watch._stopped,
                "Page.windowOpen": self._window,
                "Network.requestWillBeSent": watch._request,
                "Network.loadingFinished": watch._done,
                "Network.loadingFailed": watch._done,
            }
            for name, handler in handlers.items():
                session.on(name, handler)
            await asyncio.gather(session.send("Page.enable"), session.send("Network.enable"))
            return watch
        except Exception:
            return None  # the page closed first

    async def get(self, page: Page) -> PageWatch | None:
        """The watch of ``page`` once it is set up (None when the page closed or was never seen)."""
        opening = self._opening.get(page)
        # Shielded: a caller's timeout ends its own wait, not the session being set up.
        return await asyncio.shield(opening) if opening is not None else None

    def mark(self) -> None:
        """An action is about to run: from now on, wait only for the requests it sends."""
        for opening in self._opening.values():
            if opening.done() and (watch := opening.result()) is not None:
                watch.forget_activity()
        self.popups = self.windows = 0

    def busy(self, watch: PageWatch | None) -> bool:
        """Whether ``watch``'s page or an awaited popup still has something under way."""
        return self.popups > 0 or (watch is not None and watch.busy)

    def notify(self) -> None:
        self._event.set()

    async def changed(self, timeout: float) -> None:
        """Wait until an event arrived (or ``timeout`` seconds passed)."""
        self._event.clear()
        try:
            await asyncio.wait_for(self._event.wait(), max(timeout, 0))
        except TimeoutError:
            pass

    def _window(self, event: dict[str, Any]) -> None:
        self.popups += 1
        self.windows += 1
        self.notify()

    def clear(self) -> None:
        """Forget every page (a new context)."""
        self._opening.clear()
        self.popups = self.windows = 0
