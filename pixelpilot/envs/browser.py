"""A real Chromium driven through Playwright's async API.

The input space is CSS pixels of the viewport: a click at grid (500, 500) lands at the centre of
the viewport whatever the device scale factor. Screenshots are taken at CSS scale by default
(``screenshot_scale="device"`` keeps the HiDPI pixels). Chromium is launched by
:mod:`pixelpilot.envs.chromium`; the JavaScript the env runs in pages lives in ``envs/js/``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast
from urllib.parse import urljoin

from ..actions import Action, Observation, Task, ground, is_coordinate_action, png_size
from . import base
from .base import CLICKS, Env, EnvCrashed, EnvError, EnvKind, PixelAction, handles
from .chromium import SharedChromium
from .pagewatch import PageWatch, Watches
from .urlpolicy import NavigationBlocked, UrlPolicy

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, CDPSession, Frame, Page

    from .mobile_web import MobileWebEnv
    from .urlguard import UrlGuard

__all__ = ["LOOK_FRESH_FOR", "PLAYWRIGHT_KEYS", "BrowserEnv", "playwright_key"]

#: How long (seconds) the frame a settle captured stands for the page: an observe() sooner than
#: that after execute() returns it instead of capturing again.
LOOK_FRESH_FOR = 0.1

#: Canonical key names (:mod:`pixelpilot.actions.keys`) to Playwright's key names. Single
#: characters are passed as they are; a canonical key missing here (f13, a phone's volume_up …)
#: has no key on Playwright's keyboard.
PLAYWRIGHT_KEYS: dict[str, str] = {
    "ctrl": "Control",
    "alt": "Alt",
    "shift": "Shift",
    "meta": "Meta",
    "ctrl_right": "ControlRight",
    "alt_right": "AltRight",
    "shift_right": "ShiftRight",
    "meta_right": "MetaRight",
    "enter": "Enter",
    "escape": "Escape",
    "tab": "Tab",
    "space": "Space",
    "backspace": "Backspace",
    "delete": "Delete",
    "insert": "Insert",
    "home": "Home",
    "end": "End",
    "pageup": "PageUp",
    "pagedown": "PageDown",
    "up": "ArrowUp",
    "down": "ArrowDown",
    "left": "ArrowLeft",
    "right": "ArrowRight",
    "capslock": "CapsLock",
    "numlock": "NumLock",
    "scrolllock": "ScrollLock",
    "pause": "Pause",
    "printscreen": "PrintScreen",
    "menu": "ContextMenu",
    **{f"num{i}": f"Numpad{i}" for i in range(10)},
    "multiply": "NumpadMultiply",
    "add": "NumpadAdd",
    "subtract": "NumpadSubtract",
    "decimal": "NumpadDecimal",
    "divide": "NumpadDivide",
    **{f"f{i}": f"F{i}" for i in range(1, 13)},
}


def playwright_key(keys: list[str]) -> str:
    """``["ctrl", "a"]`` -> ``"Control+a"``: canonical key names to Playwright's combo syntax.

    Raises ValueError naming a key the browser does not have.
    """
    out = []
    for k in keys:
        if len(k) == 1:
            out.append(k)
        elif k in PLAYWRIGHT_KEYS:
            out.append(PLAYWRIGHT_KEYS[k])
        else:
            raise ValueError(f"the browser has no {k!r} key")
    return "+".join(out)


@cache
def page_script(name: str) -> str:
    """The source of ``envs/js/<name>.js`` (its leading comment lines dropped): a function for ``page.evaluate``."""
    text = files("pixelpilot.envs").joinpath("js", f"{name}.js").read_text(encoding="utf-8")
    lines = text.splitlines()
    while lines and (not lines[0].strip() or lines[0].lstrip().startswith("//")):
        lines.pop(0)
    return "\n".join(lines).strip()


@dataclass(kw_only=True, eq=False)
class BrowserEnv(
    Env, base.Recoverable, base.UrlGuarded, base.TextQueries, base.DescribesTargets, base.PageScripting, base.Tabs
):
    """Chromium through Playwright: headless by default, one page in focus (the newest tab).

    ``browser=`` shares Chromium between envs (each env then owns only its context): a launched
    Playwright ``Browser``, or a :class:`~pixelpilot.envs.chromium.SharedChromium`, from which a
    crashed env takes a relaunched browser in :meth:`recover`. Without it the env launches its own.
    ``url_policy`` is enforced on every navigation, redirect, popup and tab (see
    :mod:`pixelpilot.envs.urlguard`); its decisions are taken with :meth:`url_decisions`.
    """

    kind: ClassVar[EnvKind] = "browser"
    label = "the browser"

    headless: bool = True
    viewport: tuple[int, int] = (1280, 800)
    device_scale_factor: float = 1.0
    executable_path: str | None = None
    extra_args: tuple[str, ...] = ()
    screenshot_scale: Literal["css", "device"] = "css"
    #: Chromium compresses the PNG for speed (the same pixels; on a text-heavy page about half the
    #: time and a third more bytes). Applies where the capture goes through the page's own session.
    fast_png: bool = True
    settle_timeout: float = 3.0
    #: A frame counts as settled only this long after the last DOM mutation (0: the first frame with none).
    settle_quiet_ms: int = 0
    navigation_timeout: float = 30.0
    user_agent: str | None = None
    is_mobile: bool = False
    has_touch: bool = False
    #: Where Chromium comes from: a :class:`SharedChromium`, a launched Playwright ``Browser``, or
    #: None for a Chromium of this env's own.
    browser: Browser | SharedChromium | None = None
    url_policy: UrlPolicy | None = None

    def __post_init__(self) -> None:
        given = self.browser
        self._owns_browser = given is None
        self._launcher: SharedChromium | None = given if isinstance(given, SharedChromium) else None
        self._browser: Browser | None = None if given is None or isinstance(given, SharedChromium) else given
        if self._owns_browser:
            self._launcher = SharedChromium(
                headless=self.headless, executable_path=self.executable_path, extra_args=self.extra_args
            )
        self._context: BrowserContext | None = None
        self._page: Page | None = None
        self._events: list[str] = []
        self._watches = Watches()
        #: The frame the last settle captured: (page, when, png, title), for the observe() after it.
        self._look: tuple[Page, float, bytes, str | None] | None = None
        self.dialogs: list[dict[str, str]] = []
        self._guard: UrlGuard | None = None
        self._crash: str | None = None  # why the browser or the page died, once it has
        self._last_url: str | None = None  # where to come back to after a crash

    @classmethod
    def phone(cls, **kwargs: Any) -> MobileWebEnv:
        """Chromium as a phone with touch input (``mobile_web.MobileWebEnv``): clicks become taps."""
        from .mobile_web import MobileWebEnv

        return MobileWebEnv(**kwargs)

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Have a browser: take it from the launcher (launching Chromium when needed)."""
        if self._browser is None:
            if self._launcher is None:
                raise EnvError("the browser this env was given is closed; pass a running one")
            self._browser = await self._launcher.get()

    def _crashed(self, why: str) -> None:
        self._crash = self._crash or why

    async def reset(self, task: Task | None = None) -> Observation:
        """A fresh browser context (no cookies, no storage), opened at ``task.url`` if given."""
        await self._new_context()
        self._last_url = None
        if task is not None and task.url:
            from playwright.async_api import Error as PlaywrightError

            try:
                await self._goto(task.url)
            except PlaywrightError as e:
                raise EnvError(f"could not open the task's url {task.url}: {str(e).splitlines()[0]}") from e
        return await self.observe()

    async def recover(self) -> Observation:
        """After a crash: a browser from the launcher (relaunched if it died) and the last page reopened."""
        if self._browser is not None and not self._browser.is_connected():
            if self._launcher is None:
                raise EnvError("the shared browser is gone; relaunch it and pass it again")
            self._browser = None
        self._crash = None
        await self._new_context()
        if self._last_url:
            try:
                await self._goto(self._last_url)
            except Exception as e:  # the page itself may be what crashed Chromium: stay on a blank tab
                self._events.append(f"could not reopen {self._last_url}: {str(e).splitlines()[0]}")
        self._events.append("the browser crashed and was restarted")
        return await self.observe()

    def url_decisions(self) -> list[base.UrlDecision]:
        """The URL policy's decisions since the last call (navigations, redirects, popups, refused loads)."""
        return self._guard.drain() if self._guard is not None else []

    async def _new_context(self) -> None:
        await self.start()
        assert self._browser is not None
        if self._context is not None:
            try:
                await self._context.close()
            except Exception:
                pass  # gone with a crashed browser
        opts: dict[str, Any] = {
            "viewport": {"width": self.viewport[0], "height": self.viewport[1]},
            "device_scale_factor": self.device_scale_factor,
            "is_mobile": self.is_mobile,
            "has_touch": self.has_touch,
        }
        if self.user_agent:
            opts["user_agent"] = self.user_agent
        policy = self.url_policy if self.url_policy is not None and self.url_policy.active else None
        if policy is not None:
            opts["service_workers"] = "block"  # a service worker's own requests bypass every route
        self._context = await self._browser.new_context(**opts)
        self._context.set_default_navigation_timeout(self.navigation_timeout * 1000)
        self._guard = None
        if policy is not None:
            from .urlguard import UrlGuard

            self._guard = UrlGuard(policy)
            await self._guard.attach(self._context)
        self._watches.clear()
        self._context.on("page", self._on_page)
        self._look = None
        self._events.clear()
        self.dialogs.clear()
        self._page = None
        self._page = await self._context.new_page()
        if self._guard is not None:
            await self._guard.settled()
        self._events.clear()  # the first page is not news

    async def aclose(self) -> None:
        """Close the context, and Chromium if this env launched it."""
        if self._context is not None:
            try:
                await self._context.close()
            except Exception:
                pass  # already gone with its browser
            self._context = None
        if self._owns_browser and self._launcher is not None:
            await self._launcher.aclose()
            self._browser = None
        elif self._launcher is not None:
            self._browser = None  # the launcher's: take it (maybe relaunched) again on the next start

    # --- pages, dialogs, navigation tracking -----------------------------------------------

    @property
    def running_browser(self) -> Browser | None:
        """The Playwright browser this env uses, once started (None before, or after it closed)."""
        return self._browser

    @property
    def page(self) -> Page:
        """The page in focus: the tab last focused (the newest, unless :meth:`focus_tab` chose), while it is open."""
        if self._context is None or self._page is None:
            raise EnvError("the browser is not started; call reset() first")
        if self._page.is_closed():
            open_pages = self._open_pages()
            if not open_pages:
                raise EnvError("every tab of the browser is closed")
            self._page = open_pages[-1]
        return self._page

    def _open_pages(self) -> list[Page]:
        return [p for p in self._context.pages if not p.is_closed()] if self._context is not None else []

    def _on_page(self, page: Page) -> None:
        if self._guard is not None:
            self._guard.watch(page)
        page.on("crash", lambda _: self._crashed("the page crashed"))
        page.on("dialog", self._on_dialog)
        self._watches.add(page)
        if self._page is not None:
            self._events.append("a new tab opened; it now has focus")
        self._page = page

    async def _on_dialog(self, dialog: Any) -> None:
        info = {"type": dialog.type, "message": dialog.message}
        self.dialogs.append(info)
        self._events.append(f"a {dialog.type} dialog was dismissed: {dialog.message!r}")
        try:
            await dialog.dismiss()
        except Exception:
            pass  # the page went away first

    async def _goto(self, url: str) -> None:
        page = self.page
        target = urljoin(page.url, url) if page.url and page.url != "about:blank" else url
        if self._guard is not None and not self._guard.check_navigation(target):
            reason = self._guard.policy.check(target).reason
            raise NavigationBlocked(f"navigation to {target[:200]} was blocked: {reason}")
        await page.goto(target, wait_until="load")

    # --- Env ---------------------------------------------------------------------------------

    async def observe(self) -> Observation:
        self._raise_if_crashed()
        page = self.page
        look, self._look = self._look, None
        for attempt in range(3):
            if look is not None and look[0] is page and time.monotonic() - look[1] < LOOK_FRESH_FOR:
                _, _, png, title = look  # the frame the settle just captured
                break
            try:
                png, title = await self._capture(page)
                break
            except Exception as e:
                self._raise_if_crashed()
                # A navigation that commits mid-capture fails the screenshot, and a refused popup
                # may close under us: settle, then look (at the tab in focus) again.
                if attempt == 2 or self._browser is None or not self._browser.is_connected():
                    raise EnvError(f"could not take a screenshot: {str(e).splitlines()[0]}") from e
                await self.settle()
                page = self.page
        if self.page is not page:
            # A popup opened while we looked: show the page that now has focus instead.
            await self.settle()
            return await self.observe()
        if page.url.startswith(("http:", "https:", "file:")):
            self._last_url = page.url
        w, h = png_size(png)
        events, self._events = self._events, []
        vw, vh = self.viewport
        return Observation(
            png=png,
            width=w,
            height=h,
            input_width=vw,
            input_height=vh,
            input_space="css",
            url=page.url,
            title=title,
            app="chromium",
            events=events,
        )

    @property
    def _plain_capture(self) -> bool:
        """Whether the page's own DevTools session can take the screenshot: at a device scale factor
        of 1 without mobile emulation (that session sees the page unemulated; other pages go
        through Playwright, whose session set the emulation)."""
        return not self.is_mobile and self.device_scale_factor == 1

    async def _capture(self, page: Page) -> tuple[bytes, str | None]:
        """The viewport's PNG and the title: through the page's own DevTools session where it can
        (fewer round trips), else through Playwright."""
        watch = await self._watches.get(page) if self._plain_capture else None
        if watch is not None:
            return await watch.capture(fast=self.fast_png)
        png, title = await asyncio.gather(page.screenshot(type="png", scale=self.screenshot_scale), self._title(page))
        return png, title

    @staticmethod
    async def _title(page: Page) -> str | None:
        try:
            return await page.title()
        except Exception:
            return None  # mid-navigation

    def _raise_if_crashed(self) -> None:
        if self._crash is None and self._browser is not None and not self._browser.is_connected():
            self._crash = "the browser process exited"
        if self._crash is not None:
            raise EnvCrashed(self._crash)

    # --- primitives for Env.execute ------------------------------------------------------------

    async def input_size(self) -> tuple[int, int]:
        self._raise_if_crashed()
        self.page  # noqa: B018 - raises EnvError before reset()
        return self.viewport

    def on_error(self, error: Exception, action: PixelAction) -> str:
        from playwright.async_api import Error as PlaywrightError

        if isinstance(error, NavigationBlocked):
            return str(error)
        if isinstance(error, PlaywrightError):
            self._raise_if_crashed()
            return str(error).splitlines()[0]
        return super().on_error(error, action)

    def outcome_info(self) -> dict[str, Any]:
        return {"url": self.page.url}

    def before_action(self) -> None:
        self._watches.mark()
        self._look = None

    async def settle(self) -> None:
        """Return after the first frame rendered once nothing the action started is under way (bounded
        by ``settle_timeout``).

        Under way: a navigation a frame asked for or is loading, a window opened that has not
        arrived as a page, a request sent since the action began (see :mod:`.pagewatch`), a DOM
        mutation while the frame rendered, a finite animation or transition still running
        (``js/settle.js``). A popup that takes the focus is settled too. Past the bound the page is
        observed as it is. Each time nothing is under way, the screenshot is asked for together with
        the settling frame; it is the next observe()'s look when that first frame settled the page
        and nothing started meanwhile (one frame and one round trip sooner than observing after).
        """
        from playwright.async_api import Error as PlaywrightError

        deadline = time.monotonic() + self.settle_timeout
        looked: tuple[PageWatch, int, int] | None = None  # the page and its activity at the last capture tried
        while (left := deadline - time.monotonic()) > 0:
            page = self.page
            try:
                watch = await asyncio.wait_for(self._watches.get(page), left)
            except TimeoutError:
                return  # the page's DevTools session never came up: observe it as it is
            if self._watches.busy(watch):
                await self._watches.changed(left)
                continue
            try:
                await page.wait_for_load_state("load", timeout=left * 1000)
                # Capture with the settling frame, once per burst of activity: a page that needed
                # more frames is waited on below; one that started something during it, after that ends.
                if watch is not None and self._plain_capture and looked != (now := self._activity(watch)):
                    looked = now
                    shot = await asyncio.wait_for(
                        watch.settle_and_capture(self.settle_quiet_ms, left * 1000, fast=self.fast_png), left
                    )
                    if shot is not None and self.page is page and self._activity(watch) == now:
                        self._look = (page, time.monotonic(), *shot)
                        return
                elif watch is not None:
                    await asyncio.wait_for(watch.frame(self.settle_quiet_ms, left * 1000), left)
                else:  # no DevTools session of its own (it could not be opened): the script alone
                    await asyncio.wait_for(
                        page.evaluate(page_script("settle"), [self.settle_quiet_ms, left * 1000]), left
                    )
            except (TimeoutError, PlaywrightError) as e:
                if "closed" in str(e) and self._context is not None and not self._context.pages:
                    raise EnvError("the browser closed every tab") from e
                if self._crash is not None or (self._browser is not None and not self._browser.is_connected()):
                    return  # nothing left to wait for: observe() says what happened
                await asyncio.sleep(0.005)  # the document was replaced mid-check: check the new one
                continue
            if self.page is page and not self._watches.busy(watch):
                return
            # a popup took the focus, or the frame started something: settle that too

    def _activity(self, watch: PageWatch) -> tuple[PageWatch, int, int]:
        """What the action has started so far: equal before and after a capture when nothing started
        meanwhile (the page was not busy before it, so then nothing is under way either)."""
        return watch, watch.activity, self._watches.windows

    # --- handlers ------------------------------------------------------------------------------

    @handles(*CLICKS)
    async def _click(self, a: PixelAction) -> None:
        await self.page.mouse.click(a["x"], a["y"], button=a.get("button", "left"), click_count=CLICKS[a["action"]])

    @handles("move")
    async def _move(self, a: PixelAction) -> None:
        await self.page.mouse.move(a["x"], a["y"])

    @handles("drag")
    async def _drag(self, a: PixelAction) -> None:
        mouse = self.page.mouse
        await mouse.move(a["x"], a["y"])
        await mouse.down()
        await mouse.move(a["x2"], a["y2"], steps=12)
        await mouse.up()

    @handles("scroll")
    async def _scroll(self, a: PixelAction) -> None:
        mouse = self.page.mouse
        await mouse.move(a["x"], a["y"])
        watch = await self._watches.get(self.page)
        if watch is not None:
            try:
                await watch.mark_scroll(a["x"], a["y"], a["dx"], a["dy"])
            except Exception:
                pass  # mid-navigation: the settle waits for the new document anyway
        await mouse.wheel(a["dx"], a["dy"])

    @handles("type")
    async def _type(self, a: PixelAction) -> None:
        await self.page.keyboard.type(a["text"])

    @handles("key")
    async def _key(self, a: PixelAction) -> str | None:
        try:
            combo = playwright_key(a["keys"])
        except ValueError as e:  # a canonical key with no key on this keyboard, told to the model
            return str(e)
        await self.page.keyboard.press(combo)
        return None

    @handles("navigate")
    async def _navigate(self, a: PixelAction) -> None:
        await self._goto(a["url"])

    @handles("back")
    async def _back(self, a: PixelAction) -> str | None:
        if await self.page.go_back(wait_until="load") is None:
            return "there is no earlier page to go back to"
        return None

    # --- capabilities ----------------------------------------------------------------------------

    async def find_text(self, text: str, *, role: str | None = None) -> list[base.TextMatch]:
        """Every element of the page in focus whose text (or aria-label, placeholder, title, alt)
        matches ``text``, in document order, with CSS-pixel boxes relative to the viewport.

        A label bound to a control stands for the control, text inside a button or link for the
        button or link; ``role`` is the ARIA role, else the input's kind (button, checkbox, radio,
        textbox), else the tag; clipped, covered or off-viewport elements are not ``visible``
        (``js/find_text.js``). With ``role``, only elements of that role (:func:`base.role_matches`).
        """
        found = await self.page.evaluate(page_script("find_text"), text)
        matches = [
            base.TextMatch(base.Box(*m["box"]), m["text"], m["exact"], m["visible"], m["role"], "dom") for m in found
        ]
        return [m for m in matches if role is None or base.role_matches(role, m.role)]

    async def describe_target(self, action: Action) -> base.TargetInfo | None:
        """The element ``action`` would act on: under the pointer for clicks, else the focused one,
        inside frames and shadow roots (closed ones too).

        ``{"tag", "type", "form", "submit"}`` or None; the safety gate's approval rules read it. It
        is read through the DevTools protocol in an isolated world, out of the page's reach.
        """
        point = None
        if is_coordinate_action(action):
            px = ground(action, *self.viewport, self.grid)
            point = (float(px["x"]), float(px["y"]))
        try:
            return await _Inspector(self.page).describe(point)
        except Exception:
            return None  # mid-navigation, or the page closed: nothing to describe

    async def page_text(self) -> str:
        """The visible text of the page in focus."""
        return cast(str, await self.page.evaluate(page_script("page_text")))

    @property
    def url(self) -> str:
        """The URL of the page in focus."""
        return self.page.url

    async def evaluate(self, expression: str, arg: Any = None) -> Any:
        """Run JavaScript in the page in focus (Playwright's ``page.evaluate``)."""
        self._look = None  # the script may change the page
        return await self.page.evaluate(expression, arg)

    async def tabs(self) -> list[base.TabInfo]:
        """The open tabs, oldest first; ``active`` marks the one in focus."""
        focused = self.page
        return [
            base.TabInfo(index=i, url=p.url, title=await self._title(p) or "", active=p is focused)
            for i, p in enumerate(self._open_pages())
        ]

    async def focus_tab(self, index: int) -> None:
        """Put the tab at ``index`` in focus (and in front); later actions and looks go to it."""
        pages = self._open_pages()
        if not 0 <= index < len(pages):
            raise ValueError(f"there is no tab {index}; {len(pages)} tab(s) are open")
        self._page = pages[index]
        await self._page.bring_to_front()


class _TooDeep(Exception):
    """Frames and shadow roots nest deeper than the gate's inspector looks."""


class _Inspector:
    """Finds the element an action acts on with the DevTools protocol, for the safety gate.

    A page's own JavaScript cannot be trusted to tell (it can redefine ``activeElement`` or
    ``type``) nor to see everything (closed shadow roots; cross-site frames run in another
    process). The protocol sees the whole tree: ``DOM.getNodeForLocation`` hit-tests through shadow
    roots and same-process frames, ``DOM.describeNode`` lists a host's shadow roots, closed ones
    included, and a frame's document; a cross-site frame is asked through a session of its own.
    ``js/target.js`` then describes the element in an isolated world, whose prototypes the page
    cannot touch.
    """

    WORLD = "pixelpilot-gate"
    #: How deep frames and shadow roots may nest before the search gives up …
    MAX_DEPTH = 32
    #: … and what it then reports: the worst case, so that the gate asks (a page that hides a
    #: field this deep is hiding it from the gate).
    UNSEEN: ClassVar[base.TargetInfo] = {"tag": "", "type": "password", "form": True, "submit": True}

    def __init__(self, page: Page) -> None:
        self.page = page
        self._sessions: list[CDPSession] = []
        self._depth = 0

    def _descend(self) -> None:
        """One level deeper (into a frame or a shadow root, or a first look); raises past MAX_DEPTH."""
        self._depth += 1
        if self._depth > self.MAX_DEPTH:
            raise _TooDeep

    async def describe(self, point: tuple[float, float] | None) -> base.TargetInfo | None:
        session = await self._open(self.page)
        try:
            root = (await session.send("Page.getFrameTree"))["frameTree"]["frame"]["id"]
            try:
                found = await (self._focused(session, root) if point is None else self._at(session, root, *point))
            except _TooDeep:
                return self.UNSEEN.copy()
            if found is None:
                return None
            session, obj = found
            result = await session.send(
                "Runtime.callFunctionOn",
                {"functionDeclaration": page_script("target"), "objectId": obj, "returnByValue": True},
            )
            return cast("base.TargetInfo", result["result"].get("value"))
        finally:
            for s in self._sessions:
                try:
                    await s.detach()
                except Exception:
                    pass  # its page or frame went away first

    async def _open(self, target: Page | Frame) -> CDPSession:
        session = await self.page.context.new_cdp_session(target)
        self._sessions.append(session)
        return session

    async def _world(self, session: CDPSession, frame_id: str) -> int:
        made = await session.send("Page.createIsolatedWorld", {"frameId": frame_id, "worldName": self.WORLD})
        return int(made["executionContextId"])

    async def _call(self, session: CDPSession, obj: str, body: str) -> str | None:
        """``this.<body>`` of a remote object, as a remote object id (None for null)."""
        result = await session.send(
            "Runtime.callFunctionOn", {"functionDeclaration": f"function () {{ return this.{body} }}", "objectId": obj}
        )
        return result["result"].get("objectId")

    async def _resolve(self, session: CDPSession, backend_id: int, context: int) -> str:
        resolved = await session.send("DOM.resolveNode", {"backendNodeId": backend_id, "executionContextId": context})
        return str(resolved["object"]["objectId"])

    async def _focused(self, session: CDPSession, frame_id: str) -> tuple[CDPSession, str] | None:
        """The focused element of a frame's document, through nested frames and shadow roots."""
        context = await self._world(session, frame_id)
        found = await session.send("Runtime.evaluate", {"expression": "document.activeElement", "contextId": context})
        obj = found["result"].get("objectId")
        while True:
            self._descend()
            if obj is None:
                return None
            node = (await session.send("DOM.describeNode", {"objectId": obj, "pierce": True, "depth": 1}))["node"]
            if node.get("frameId") and node["nodeName"] in ("IFRAME", "FRAME"):
                child = node["frameId"]
                if "contentDocument" not in node:  # a cross-site frame, in a process of its own
                    return await self._focused(await self._frame_session(child), child)
                context = await self._world(session, child)
                document = await self._resolve(session, node["contentDocument"]["backendNodeId"], context)
                obj = await self._call(session, document, "activeElement")
                continue
            roots = [r for r in node.get("shadowRoots", []) if r.get("shadowRootType") != "user-agent"]
            inner = None
            if roots:
                inner = await self._call(
                    session, await self._resolve(session, roots[0]["backendNodeId"], context), "activeElement"
                )
            if inner is None:
                return session, obj
            obj = inner

    async def _at(self, session: CDPSession, frame_id: str, x: float, y: float) -> tuple[CDPSession, str] | None:
        """The element a click at (x, y) of this frame's viewport lands on."""
        while True:
            self._descend()
            hit = await session.send(
                "DOM.getNodeForLocation",
                {"x": round(x), "y": round(y), "includeUserAgentShadowDOM": False, "ignorePointerEventsNone": True},
            )
            node = (await session.send("DOM.describeNode", {"backendNodeId": hit["backendNodeId"]}))["node"]
            frame_id = hit.get("frameId", frame_id)
            if node.get("frameId") and node["nodeName"] in ("IFRAME", "FRAME") and "contentDocument" not in node:
                # A cross-site frame: hit-test again inside it, at the point relative to its content box.
                box = (await session.send("DOM.getBoxModel", {"backendNodeId": hit["backendNodeId"]}))["model"]
                x, y = x - box["content"][0], y - box["content"][1]
                frame_id = node["frameId"]
                session = await self._frame_session(frame_id)
                continue
            return session, await self._resolve(session, hit["backendNodeId"], await self._world(session, frame_id))

    async def _frame_session(self, frame_id: str) -> CDPSession:
        """A session for a cross-site frame (an out-of-process iframe): Playwright opens one per such frame."""
        for frame in self.page.frames:
            if frame is self.page.main_frame:
                continue
            try:
                session = await self._open(frame)
            except Exception:
                continue  # a frame in its parent's process has no session of its own
            if (await session.send("Page.getFrameTree"))["frameTree"]["frame"]["id"] == frame_id:
                return session
        raise EnvError(f"no session for frame {frame_id}")
