"""Enforces a UrlPolicy inside Chromium, before any byte reaches a host that is not allowed.

Three layers, because no single Playwright hook sees everything:

1. ``context.route``: the first request of every navigation, in every frame and every tab or popup,
   file: URLs included, and sub-resources when ``block_subresources`` is set (WebSockets through
   ``context.route_web_socket``; service workers, whose requests no route sees, are not allowed to
   register in a guarded context).
2. A DevTools ``Fetch`` session per page: redirect hops (HTTP 3xx), which ``route`` never sees.
   A new tab only becomes visible to Playwright after its first request is answered, too late to
   watch that request's redirects; so an allowed first request of a new tab is cancelled and made
   again by the guard once the tab is watched (a POST opened in a new tab becomes a GET).
3. A watchdog on committed main-frame URLs: what no request reveals (data:, blob:, chrome:,
   about: pages) is replaced by about:blank as soon as it commits; a popup that never reached an
   allowed page is closed, also one that committed before the guard saw it (a ``blob:`` popup).

With ``block_subresources``, the APIs whose traffic no route sees are removed from every document
before its scripts run (``js/strict_apis.js``: WebRTC, WebTransport, shared and dedicated workers).

Every navigation decision (allowed or not) and every refused sub-resource is kept until the
agent takes them with :meth:`UrlGuard.drain` and records them in the step.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from .base import UrlDecision
from .urlpolicy import UrlPolicy

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext, Frame, Page, Route, WebSocketRoute

#: Chromium's own error page, shown where a navigation was refused: leave it alone.
ERROR_PAGE = "chrome-error://chromewebdata/"


class UrlGuard:
    """Attach with :meth:`attach` to a fresh context, then :meth:`watch` every page it opens."""

    def __init__(self, policy: UrlPolicy) -> None:
        self.policy = policy
        self.decisions: list[UrlDecision] = []
        self._fresh: set[Page] = set()  # popups that have not shown an allowed page yet
        self._watched: dict[Page, asyncio.Future] = {}  # each page's redirect watch, once set up
        self._tasks: set[asyncio.Future] = set()
        self._replay: list[str] = []  # allowed first URLs of new tabs, to open once they are watched

    def drain(self) -> list[UrlDecision]:
        """The decisions since the last call."""
        out, self.decisions = self.decisions, []
        return out

    def _record(self, kind: str, url: str) -> bool:
        verdict = self.policy.check(url)
        if kind != "subresource" or not verdict.allowed:
            self.decisions.append(verdict.decision(kind))
        return verdict.allowed

    def check_navigation(self, url: str) -> bool:
        """Check a navigation the env is about to start; a refusal is recorded here (an allowed
        one is recorded by the route when its request goes out)."""
        verdict = self.policy.check(url)
        if not verdict.allowed:
            self.decisions.append(verdict.decision("navigation"))
        return verdict.allowed

    async def attach(self, context: BrowserContext) -> None:
        await context.route("**/*", self._route)
        await context.route_web_socket(lambda _: True, self._route_web_socket)
        if self.policy.block_subresources:
            from .browser import page_script

            await context.add_init_script(f"({page_script('strict_apis')})()")

    def watch(self, page: Page) -> asyncio.Future:
        """Start guarding a page (from the context's "page" event, or its first request, whichever
        comes first). Every page after the context's first is a popup or a new tab."""
        if page not in self._watched:
            if self._watched:
                self._fresh.add(page)
            page.on("framenavigated", self._on_committed)
            page.on("close", self._forget)
            self._watched[page] = self._spawn(self._watch_redirects(page))
            shown = page.main_frame.url
            if shown not in ("", "about:blank", ERROR_PAGE):
                # A popup the opener filled without a request (a blob: or data: URL) has committed
                # before anything could listen: judge what it shows now.
                self._on_committed(page.main_frame)
            elif page in self._fresh:
                self._spawn(self._open_new_tab(page, self._replay.pop(0) if self._replay else None))
        return self._watched[page]

    async def _open_new_tab(self, page: Page, url: str | None) -> None:
        await self._watched[page]
        try:
            if url is not None:
                await page.goto(url)
            elif page.url == ERROR_PAGE:
                await page.close()  # its first request was refused: nothing to show
        except Exception:
            pass  # refused on the way (recorded), or closed meanwhile

    def _forget(self, page: Page) -> None:
        self._fresh.discard(page)
        self._watched.pop(page, None)

    async def settled(self) -> None:
        """Wait until every page's redirect watch is in place."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Any) -> asyncio.Future:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- layer 1: the first request -------------------------------------------------------------

    async def _route(self, route: Route) -> None:
        request = route.request
        try:
            frame = request.frame
        except Exception:
            frame = None  # a new tab's first request, or a service worker's
        if request.is_navigation_request() and frame is None:
            if self._record("popup", request.url) and request.method == "GET":
                self._replay.append(request.url)
            return await route.abort("blockedbyclient")
        if request.is_navigation_request() and frame is not None:
            page = frame.page
            kind = "popup" if page in self._fresh else "navigation"
            if self._record(kind, request.url):
                # A new tab's redirects are only seen once its watch is up: hold the request till then.
                await asyncio.shield(self.watch(page))
                return await route.continue_()
            await route.abort("blockedbyclient")
            if page in self._fresh and frame.parent_frame is None:
                await page.close()  # a popup that only ever pointed somewhere refused
            return
        if self.policy.block_subresources and not self._record("subresource", request.url):
            return await route.abort("blockedbyclient")
        await route.continue_()

    async def _route_web_socket(self, ws: WebSocketRoute) -> None:
        """A WebSocket is a sub-resource of its page: refused with them, before its handshake."""
        if self.policy.block_subresources and not self._record("subresource", ws.url):
            return await ws.close(code=1008, reason="refused by the URL policy")
        ws.connect_to_server()  # and the messages flow both ways untouched

    # --- layer 2: redirect hops -----------------------------------------------------------------

    async def _watch_redirects(self, page: Page) -> None:
        try:
            cdp = await page.context.new_cdp_session(page)
            types = (
                [{"urlPattern": "*", "requestStage": "Request"}]
                if self.policy.block_subresources
                else [{"urlPattern": "*", "resourceType": "Document", "requestStage": "Request"}]
            )
            cdp.on("Fetch.requestPaused", lambda ev: self._spawn(self._paused(cdp, ev)))
            await cdp.send("Fetch.enable", {"patterns": types})
        except Exception:
            pass  # the page closed before the session was set up

    async def _paused(self, cdp: Any, event: dict[str, Any]) -> None:
        rid = event["requestId"]
        try:
            # First hops are layer 1's; a redirect hop carries the id of the request it redirects.
            if event.get("redirectedRequestId") is None:
                return await cdp.send("Fetch.continueRequest", {"requestId": rid})
            kind = "redirect" if event.get("resourceType") == "Document" else "subresource"
            if self._record(kind, event["request"]["url"]):
                await cdp.send("Fetch.continueRequest", {"requestId": rid})
            else:
                await cdp.send("Fetch.failRequest", {"requestId": rid, "errorReason": "BlockedByClient"})
        except Exception:
            pass  # the page or its session went away meanwhile

    # --- layer 3: what committed ----------------------------------------------------------------

    def _on_committed(self, frame: Frame) -> None:
        if frame.parent_frame is not None or frame.url in ("", ERROR_PAGE):
            return
        page = frame.page
        if not self.policy.check(frame.url).allowed:
            self._record("popup" if page in self._fresh else "committed", frame.url)
            self._spawn(self._leave(page))
        elif frame.url != "about:blank":
            self._fresh.discard(page)

    async def _leave(self, page: Page) -> None:
        try:
            if page in self._fresh:
                await page.close()
            else:
                await page.goto("about:blank")
        except Exception:
            pass  # closed meanwhile
