"""A real Chromium driven through Playwright's async API.

The input space is CSS pixels of the viewport: a click at grid (500, 500) lands at the centre of
the viewport whatever the device scale factor. Screenshots are taken at CSS scale by default
(``screenshot_scale="device"`` keeps the HiDPI pixels).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urljoin

from ..actions import DEFAULT_GRID, Grid, Observation, Outcome, Task, ground, png_size
from .base import Box, EnvCrashed, EnvError
from .urlpolicy import NavigationBlocked, UrlPolicy

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page, Playwright

    from .mobile_web import MobileWebEnv

#: Chromium features Playwright's driver (1.65) turns off. Chromium honours only the last
#: ``--disable-features`` on its command line, and ours comes after Playwright's, so ours repeats
#: them (a test checks this list still covers the installed driver's).
PLAYWRIGHT_DISABLED_FEATURES = (
    "AvoidUnnecessaryBeforeUnloadCheckSync",
    "DestroyProfileOnBrowserClose",
    "HttpsUpgrades",
    "HttpsFirstBalancedModeAutoEnable",
    "LensOverlay",
    "MediaRouter",
    "PaintHolding",
    "ThirdPartyStoragePartitioning",
    "AvoidCorsURLLoaderRestartOnRedirect",
    "TcpPortRandomizationWin",
    "OptimizationHints",
    "NetworkTimeServiceQuerying",
    "AimEnabled",
    "PreconnectToSearch",
    "msForceBrowserSignIn",
    "msEdgeUpdateLaunchServicesPreferredVersion",
)
#: Chromium 15x builds each window's omnibox popup as a WebUI page of some 400 modules, and every
#: browser context opens a window: 0.55 CPU-seconds per context, about half of what a short
#: collected episode costs in all (bench/collect_throughput.py). Headless pages never show it.
DISABLED_FEATURES = (*PLAYWRIGHT_DISABLED_FEATURES, "WebUIOmniboxPopup", "WebUIOmniboxAimPopup")

#: Flags that make Debian's Chromium quiet and reliable in containers (see REFERENCE.md);
#: :func:`chromium_args` adds :data:`DISABLED_FEATURES` to them.
CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
)
SYSTEM_CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
#: Chromium's headless shell (Debian's chromium-headless-shell, the same build): no browser UI behind
#: each context, so a context and its screenshots cost about 30% less CPU than headless Chromium
#: (bench/collect_throughput.py); used whenever no window is to be shown. Playwright does the same.
HEADLESS_SHELL = ("/usr/bin/chromium-headless-shell",)

_KEY_NAMES = {
    "ctrl": "Control",
    "control": "Control",
    "alt": "Alt",
    "option": "Alt",
    "shift": "Shift",
    "cmd": "Meta",
    "command": "Meta",
    "meta": "Meta",
    "super": "Meta",
    "win": "Meta",
    "enter": "Enter",
    "return": "Enter",
    "esc": "Escape",
    "escape": "Escape",
    "tab": "Tab",
    "backspace": "Backspace",
    "delete": "Delete",
    "del": "Delete",
    "space": "Space",
    "up": "ArrowUp",
    "down": "ArrowDown",
    "left": "ArrowLeft",
    "right": "ArrowRight",
    "arrowup": "ArrowUp",
    "arrowdown": "ArrowDown",
    "arrowleft": "ArrowLeft",
    "arrowright": "ArrowRight",
    "pageup": "PageUp",
    "pagedown": "PageDown",
    "page_up": "PageUp",
    "page_down": "PageDown",
    "home": "Home",
    "end": "End",
    "insert": "Insert",
}


def playwright_key(keys: list[str]) -> str:
    """``["ctrl", "a"]`` -> ``"Control+a"``: our key names to Playwright's combo syntax."""
    out = []
    for k in keys:
        low = k.lower()
        if low in _KEY_NAMES:
            out.append(_KEY_NAMES[low])
        elif len(low) > 1 and low[0] == "f" and low[1:].isdigit():
            out.append(low.upper())
        else:
            out.append(k)
    return "+".join(out)


def chromium_args(extra: tuple[str, ...] | list[str] = ()) -> list[str]:
    """The command line to launch with: :data:`CHROMIUM_FLAGS` plus ``extra``, and one
    ``--disable-features`` holding ours and the caller's (Chromium would honour only the last)."""
    prefix = "--disable-features="
    features = list(DISABLED_FEATURES)
    rest = list(CHROMIUM_FLAGS)
    for arg in extra:
        if arg.startswith(prefix):
            features += [f for f in arg[len(prefix) :].split(",") if f and f not in features]
        else:
            rest.append(arg)
    return [*rest, prefix + ",".join(features)]


def find_chromium(
    explicit: str | os.PathLike[str] | None = None, bundled: str | None = None, *, headless: bool = True
) -> str | None:
    """The Chromium to launch: an explicit path (or $PIXELPILOT_CHROMIUM), else Playwright's own
    build when it is installed (``bundled`` is its path; ``None`` is returned to let Playwright use
    it), else the system's: Debian's headless shell when ``headless`` and installed, else
    /usr/bin/chromium.
    """
    explicit = explicit or os.environ.get("PIXELPILOT_CHROMIUM")
    if explicit:
        if not Path(explicit).exists():
            raise EnvError(f"Chromium not found at {explicit}; pass an existing executable_path")
        return str(explicit)
    if bundled and Path(bundled).exists():
        return None
    for cand in (HEADLESS_SHELL if headless else ()) + SYSTEM_CHROMIUM:
        if Path(cand).exists():
            return cand
    return shutil.which("chromium") or shutil.which("chromium-browser")


_SETTLE_JS = """([quietMs, maxMs]) => new Promise(resolve => {
  const start = performance.now();
  let timer;
  const done = () => { obs.disconnect(); requestAnimationFrame(() => requestAnimationFrame(() => resolve(true))); };
  const obs = new MutationObserver(() => {
    clearTimeout(timer);
    timer = setTimeout(done, performance.now() - start > maxMs ? 0 : quietMs);
  });
  obs.observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
  timer = setTimeout(done, quietMs);
})"""

# Finds the element whose visible text (or label, placeholder, value, alt) matches; prefers exact
# matches, then interactive elements, then the smallest box. Returns its box in CSS pixels.
_LOCATE_JS = """(needle) => {
  const norm = s => (s || '').replace(/\\s+/g, ' ').trim().toLowerCase();
  const want = norm(needle);
  if (!want) return null;
  const INTERACTIVE = 'a,button,input,select,textarea,label,summary,[role=button],[role=link],[onclick],[tabindex]';
  let best = null, bestScore = Infinity;
  for (const el of document.querySelectorAll('body *')) {
    const cands = [el.getAttribute('aria-label'), el.getAttribute('placeholder'), el.getAttribute('title'), el.getAttribute('alt')];
    if (el.tagName === 'INPUT' && ['submit', 'button', 'reset'].includes(el.type)) cands.push(el.value);
    else if (!['INPUT', 'TEXTAREA', 'SELECT', 'SCRIPT', 'STYLE'].includes(el.tagName)) cands.push(el.innerText);
    let tier = -1;
    for (const c of cands) {
      const n = norm(c);
      if (!n) continue;
      if (n === want) { tier = 0; break; }
      if (n.includes(want)) tier = 2;
    }
    if (tier < 0) continue;
    const r = el.getBoundingClientRect();
    if (r.width < 1 || r.height < 1) continue;
    const st = getComputedStyle(el);
    if (st.visibility === 'hidden' || st.display === 'none' || st.opacity === '0') continue;
    if (!el.closest(INTERACTIVE)) tier += 1;
    const score = tier * 1e9 + r.width * r.height;
    if (score < bestScore) { bestScore = score; best = r; }
  }
  return best && [best.left, best.top, best.width, best.height];
}"""


# What an action would act on: the element under the pointer, or the focused one (for typing and
# keys). The safety gate asks before typing into password fields or submitting forms.
_TARGET_JS = """([x, y]) => {
  const el = x === null ? document.activeElement : document.elementFromPoint(x, y);
  if (!el) return null;
  const control = el.closest('button, input, select, textarea, a, [contenteditable]') || el;
  const form = control.form || control.closest('form');
  const type = (control.type || control.getAttribute('type') || '').toLowerCase();
  const submit = !!form && ((control.tagName === 'BUTTON' && type === 'submit') ||
                            (control.tagName === 'INPUT' && (type === 'submit' || type === 'image')));
  return {tag: control.tagName.toLowerCase(), type, form: !!form, submit};
}"""


class BrowserEnv:
    """Chromium through Playwright: headless by default, one page in focus (the newest tab).

    Pass ``browser=`` to share one launched Playwright browser between many envs (each env then
    owns only its context). ``url_policy`` is enforced on every navigation, redirect, popup and
    tab (see :mod:`pixelpilot.envs.urlguard`); its decisions are taken with :meth:`url_decisions`.
    """

    kind: Literal["browser"] = "browser"

    def __init__(
        self,
        *,
        headless: bool = True,
        viewport: tuple[int, int] = (1280, 800),
        device_scale_factor: float = 1.0,
        executable_path: str | None = None,
        extra_args: tuple[str, ...] = (),
        grid: Grid = DEFAULT_GRID,
        screenshot_scale: Literal["css", "device"] = "css",
        settle_timeout: float = 3.0,
        settle_quiet_ms: int = 30,
        navigation_timeout: float = 30.0,
        user_agent: str | None = None,
        is_mobile: bool = False,
        has_touch: bool = False,
        browser: Browser | None = None,
        url_policy: UrlPolicy | None = None,
    ) -> None:
        self.headless = headless
        self.viewport = viewport
        self.device_scale_factor = device_scale_factor
        self.executable_path = executable_path
        self.extra_args = extra_args
        self.grid = grid
        self.screenshot_scale = screenshot_scale
        self.settle_timeout = settle_timeout
        self.settle_quiet_ms = settle_quiet_ms
        self.navigation_timeout = navigation_timeout
        self.user_agent = user_agent
        self.is_mobile = is_mobile
        self.has_touch = has_touch
        self._pw: Playwright | None = None
        self._browser: Browser | None = browser
        self._owns_browser = browser is None
        self._context: BrowserContext | None = None
        self._page: Page | None = None
        self._events: list[str] = []
        self._nav_pending = 0
        self.dialogs: list[dict[str, str]] = []
        self.url_policy = url_policy
        self._guard: Any = None
        self._crash: str | None = None  # why the browser or the page died, once it has
        self._last_url: str | None = None  # where to come back to after a crash

    @classmethod
    def phone(cls, **kwargs: Any) -> MobileWebEnv:
        """Chromium as a phone with touch input (``mobile_web.MobileWebEnv``): clicks become taps."""
        from .mobile_web import MobileWebEnv

        return MobileWebEnv(**kwargs)

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Launch Chromium (if this env owns it). Called by ``reset`` when needed."""
        if self._browser is not None:
            return
        try:
            from playwright.async_api import async_playwright
        except ImportError as e:  # pragma: no cover - depends on the install
            raise EnvError("BrowserEnv needs Playwright: pip install 'pixelpilot[browser]'") from e
        self._pw = self._pw or await async_playwright().start()
        exe: str | None = None
        try:
            exe = find_chromium(self.executable_path, self._pw.chromium.executable_path, headless=self.headless)
            self._browser = await self._pw.chromium.launch(
                executable_path=exe, headless=self.headless, args=chromium_args(self.extra_args)
            )
        except Exception as e:
            await self._pw.stop()
            self._pw = None
            if isinstance(e, EnvError):
                raise
            hint = exe or "Playwright's bundled Chromium"
            raise EnvError(
                f"could not launch Chromium ({hint}): {str(e).splitlines()[0]}; "
                "install Debian's chromium (scripts/setup.sh does) or pass executable_path"
            ) from e
        self._browser.on("disconnected", lambda _: self._crashed("the browser process exited"))

    def _crashed(self, why: str) -> None:
        self._crash = self._crash or why

    @property
    def browser(self) -> Browser | None:
        """The Playwright browser once started; other envs can share it through ``browser=``."""
        return self._browser

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
        """After a crash: relaunch Chromium (when this env launched it) and reopen the last page."""
        if not self._owns_browser and (self._browser is None or not self._browser.is_connected()):
            raise EnvError("the shared browser is gone; relaunch it and pass it again")
        if self._browser is not None and not self._browser.is_connected():
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

    def url_decisions(self) -> list[dict[str, Any]]:
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
        guarded = self.url_policy is not None and self.url_policy.active
        if guarded:
            opts["service_workers"] = "block"  # a service worker's own requests bypass every route
        self._context = await self._browser.new_context(**opts)
        self._context.set_default_navigation_timeout(self.navigation_timeout * 1000)
        self._guard = None
        if guarded:
            from .urlguard import UrlGuard

            self._guard = UrlGuard(self.url_policy)
            await self._guard.attach(self._context)
        self._context.on("page", self._on_page)
        self._events.clear()
        self.dialogs.clear()
        self._page = None
        self._page = await self._context.new_page()
        if self._guard is not None:
            await self._guard.settled()
        self._events.clear()  # the first page is not news

    async def aclose(self) -> None:
        """Close the context, and the browser if this env launched it."""
        if self._context is not None:
            try:
                await self._context.close()
            except Exception:
                pass  # already gone with its browser
            self._context = None
        if self._owns_browser and self._browser is not None:
            try:
                await self._browser.close()
            except Exception:
                pass
            self._browser = None
        if self._pw is not None:
            await self._pw.stop()
            self._pw = None

    async def __aenter__(self) -> BrowserEnv:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- pages, dialogs, navigation tracking -----------------------------------------------

    @property
    def page(self) -> Page:
        """The page in focus: the newest tab that is still open."""
        if self._context is None or self._page is None:
            raise EnvError("the browser is not started; call reset() first")
        if self._page.is_closed():
            open_pages = [p for p in self._context.pages if not p.is_closed()]
            if not open_pages:
                raise EnvError("every tab of the browser is closed")
            self._page = open_pages[-1]
        return self._page

    def _on_page(self, page: Page) -> None:
        if self._guard is not None:
            self._guard.watch(page)
        page.on("crash", lambda _: self._crashed("the page crashed"))
        page.on("dialog", self._on_dialog)
        page.on("request", self._on_request)
        page.on("requestfinished", self._on_request_done)
        page.on("requestfailed", self._on_request_done)
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

    def _on_request(self, request: Any) -> None:
        if request.is_navigation_request():
            self._nav_pending += 1

    def _on_request_done(self, request: Any) -> None:
        if request.is_navigation_request():
            self._nav_pending = max(0, self._nav_pending - 1)

    async def _goto(self, url: str) -> None:
        page = self.page
        target = urljoin(page.url, url) if page.url and page.url != "about:blank" else url
        if self._guard is not None and not self._guard.check_navigation(target):
            raise NavigationBlocked(f"navigation to {target[:200]} was blocked: {self.url_policy.check(target).reason}")
        await page.goto(target, wait_until="load")

    async def _settle(self) -> None:
        """Wait for navigations to finish, the DOM to go quiet and two frames to render (bounded)."""
        deadline = time.monotonic() + self.settle_timeout
        from playwright.async_api import Error as PlaywrightError

        await asyncio.sleep(0)
        for _ in range(3):
            while self._nav_pending and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            left = max(deadline - time.monotonic(), 0.05)
            page = self.page
            try:
                await page.wait_for_load_state("load", timeout=left * 1000)
                await asyncio.wait_for(
                    page.evaluate(_SETTLE_JS, [self.settle_quiet_ms, max(left * 1000 - 100, 50)]), left
                )
                if self.page is page:
                    return
                # a popup took focus meanwhile: settle that one too
            except (TimeoutError, PlaywrightError) as e:
                if "closed" in str(e) and self._context is not None and not self._context.pages:
                    raise EnvError("the browser closed every tab") from e
                if time.monotonic() >= deadline:
                    return  # still busy: observe it as it is
                # the document was replaced mid-check (a navigation committed): check the new one

    # --- Env ---------------------------------------------------------------------------------

    async def observe(self) -> Observation:
        self._raise_if_crashed()
        page = self.page
        for attempt in range(3):
            try:
                png, title = await asyncio.gather(
                    page.screenshot(type="png", scale=self.screenshot_scale), self._title(page)
                )
                break
            except Exception as e:
                self._raise_if_crashed()
                # A navigation that commits mid-capture fails the screenshot, and a refused popup
                # may close under us: settle, then look (at the tab in focus) again.
                if attempt == 2 or self._browser is None or not self._browser.is_connected():
                    raise EnvError(f"could not take a screenshot: {str(e).splitlines()[0]}") from e
                await self._settle()
                page = self.page
        if self.page is not page:
            # A popup opened while we looked: show the page that now has focus instead.
            await self._settle()
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

    async def execute(self, action: Any) -> Outcome:
        from playwright.async_api import Error as PlaywrightError

        self._raise_if_crashed()
        vw, vh = self.viewport
        px = ground(action, vw, vh, self.grid)
        page = self.page
        try:
            error = await self._dispatch(page, action.action, px)
        except NavigationBlocked as e:
            return Outcome(ok=False, error=str(e), pixel_action=px)
        except PlaywrightError as e:
            msg = str(e).splitlines()[0]
            self._raise_if_crashed()
            return Outcome(ok=False, error=msg, pixel_action=px)
        if error:
            return Outcome(ok=False, error=error, pixel_action=px)
        await self._settle()
        return Outcome(ok=True, pixel_action=px, info={"url": self.page.url})

    async def _dispatch(self, page: Page, kind: str, a: dict[str, Any]) -> str | None:
        mouse = page.mouse
        if kind in ("click", "double_click", "triple_click"):
            count = {"click": 1, "double_click": 2, "triple_click": 3}[kind]
            await mouse.click(a["x"], a["y"], button=a.get("button", "left"), click_count=count)
        elif kind == "move":
            await mouse.move(a["x"], a["y"])
        elif kind == "drag":
            await mouse.move(a["x"], a["y"])
            await mouse.down()
            await mouse.move(a["x2"], a["y2"], steps=12)
            await mouse.up()
        elif kind == "scroll":
            await mouse.move(a["x"], a["y"])
            await mouse.wheel(a["dx"], a["dy"])
        elif kind == "type":
            await page.keyboard.type(a["text"])
        elif kind == "key":
            await page.keyboard.press(playwright_key(a["keys"]))
        elif kind == "wait":
            await asyncio.sleep(a["seconds"])
        elif kind == "navigate":
            await self._goto(a["url"])
        elif kind == "back":
            if await page.go_back(wait_until="load") is None:
                return "there is no earlier page to go back to"
        else:
            return f"the browser cannot do {kind!r}; use click, type, key, scroll, navigate or back"
        return None

    # --- text locator (used by scripts) -------------------------------------------------------

    async def locate_text(self, text: str) -> Box | None:
        """The CSS-pixel box of the element best matching ``text``, relative to the viewport."""
        rect = await self.page.evaluate(_LOCATE_JS, text)
        return Box(*rect) if rect else None

    async def describe_target(self, action: Any) -> dict[str, Any] | None:
        """The element ``action`` would act on: under the pointer for clicks, else the focused one.

        ``{"tag", "type", "form", "submit"}`` or None; the safety gate's approval rules read it.
        """
        point = [None, None]
        if "x" in type(action).model_fields:
            px = ground(action, *self.viewport, self.grid)
            point = [px["x"], px["y"]]
        try:
            return await self.page.evaluate(_TARGET_JS, point)
        except Exception:
            return None  # mid-navigation: nothing to describe

    async def page_text(self) -> str:
        """The visible text of the page in focus."""
        return await self.page.evaluate("() => document.body ? document.body.innerText : ''")
