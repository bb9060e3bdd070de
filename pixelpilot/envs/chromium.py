"""The one way pixelpilot launches Chromium: which build, with which flags, through Playwright.

:func:`find_chromium` picks the executable, :func:`chromium_args` builds the command line, and
:class:`SharedChromium` launches it on first use (again if it died) for as many envs as want a
context in it. ``BrowserEnv`` launches through a private :class:`SharedChromium` when it is given
no browser; the collector, the pytest plugin and the tests share one.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Self

from .base import EnvError

if TYPE_CHECKING:
    from playwright.async_api import Browser, Playwright

__all__ = [
    "CHROMIUM_FLAGS",
    "DISABLED_FEATURES",
    "HEADLESS_SHELL",
    "PLAYWRIGHT_DISABLED_FEATURES",
    "SYSTEM_CHROMIUM",
    "SharedChromium",
    "chromium_args",
    "find_chromium",
]

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


def chromium_args(extra: Sequence[str] = ()) -> list[str]:
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


class SharedChromium:
    """One Chromium for many envs: launched on the first :meth:`get`, launched again by a later
    :meth:`get` if it died, closed (with its Playwright driver) by :meth:`aclose`.

    Each env opens its own context in it (``BrowserEnv(browser=shared)``); a context is cheap
    (see :data:`DISABLED_FEATURES`). Safe to share between tasks of one event loop.
    """

    def __init__(
        self,
        *,
        headless: bool = True,
        executable_path: str | os.PathLike[str] | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.headless = headless
        self.executable_path = executable_path
        self.extra_args = tuple(extra_args)
        #: How many times Chromium was launched (a relaunch after a crash counts).
        self.launches = 0
        self._pw: Playwright | None = None
        self._browser: Browser | None = None
        self._lock = asyncio.Lock()

    @property
    def current(self) -> Browser | None:
        """The browser launched last, connected or not; None before the first launch."""
        return self._browser

    async def get(self) -> Browser:
        """The running browser: launched now if there is none, or if the last one died."""
        async with self._lock:
            if self._browser is None or not self._browser.is_connected():
                await self._close_browser()
                self._browser = await self._launch()
                self.launches += 1
            return self._browser

    async def _launch(self) -> Browser:
        try:
            from playwright.async_api import async_playwright
        except ImportError as e:  # pragma: no cover - depends on the install
            raise EnvError("a browser env needs Playwright: pip install 'pixelpilot[browser]'") from e
        self._pw = self._pw or await async_playwright().start()
        exe: str | None = None
        try:
            exe = find_chromium(self.executable_path, self._pw.chromium.executable_path, headless=self.headless)
            return await self._pw.chromium.launch(
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

    async def _close_browser(self) -> None:
        if self._browser is not None and self._browser.is_connected():
            try:
                await self._browser.close()
            except Exception:
                pass  # it went meanwhile
        self._browser = None

    async def aclose(self) -> None:
        """Close the browser and stop the Playwright driver. Safe to call twice."""
        async with self._lock:
            await self._close_browser()
            if self._pw is not None:
                await self._pw.stop()
                self._pw = None

    async def __aenter__(self) -> Self:
        await self.get()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
