"""Where each collected episode's env comes from: one shared Chromium, an Xvfb per desktop episode,
a pool of phones each held by one episode at a time."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ...actions import Task
from ...envs import Env, EnvError

if TYPE_CHECKING:
    from playwright.async_api import Browser

    from ...envs.browser import BrowserEnv
    from .episode import RunnerConfig


class SharedBrowser:
    """One Chromium for many episodes (each opens its own context in it); launched again if it dies."""

    def __init__(self, *, headless: bool = True) -> None:
        self.headless = headless
        self._owner: BrowserEnv | None = None  # the env that launched it, and so owns it
        self._lock = asyncio.Lock()

    async def get(self) -> Browser:
        from ...envs.browser import BrowserEnv

        async with self._lock:
            browser = self._owner.browser if self._owner is not None else None
            if browser is None or not browser.is_connected():
                await self._stop()
                self._owner = BrowserEnv(headless=self.headless)
                await self._owner.start()
                browser = self._owner.browser
            assert browser is not None
            return browser

    async def _stop(self) -> None:
        if self._owner is not None:
            await self._owner.aclose()
            self._owner = None

    async def aclose(self) -> None:
        async with self._lock:
            await self._stop()


class EnvPool:
    """Where each episode's env comes from, by where its task runs (:attr:`Task.runs_in`):

    - browser and mobile-web: a fresh context in the one shared Chromium;
    - desktop: an Xvfb of its own, started for the episode and stopped after it;
    - android: a phone from the pool (``android_serials``, else every attached device), held by
      one episode at a time; an episode waits for a free one, and the wait is not its time.
    """

    def __init__(self, config: RunnerConfig) -> None:
        self.config = config
        self.browser = SharedBrowser(headless=config.headless)
        self._phones: asyncio.Queue[str] | None = None
        self._phone_of: dict[int, str] = {}  # id(env) -> the serial it holds
        self._lock = asyncio.Lock()

    async def acquire(self, task: Task) -> Env:
        """A started env for ``task`` (EnvError when none can be had: no Chromium, no Xvfb, no phone)."""
        cfg = self.config
        where = task.runs_in
        if where in ("browser", "mobile-web"):
            from ...envs.browser import BrowserEnv

            browser = await self.browser.get()
            if where == "mobile-web":
                return BrowserEnv.phone(browser=browser, headless=cfg.headless)
            return BrowserEnv(browser=browser, headless=cfg.headless, viewport=cfg.viewport)
        if where == "desktop":
            from ...envs.desktop import DesktopEnv

            desktop = DesktopEnv(virtual_display=cfg.desktop_size, apps=cfg.desktop_apps)
            await desktop.start()
            return desktop
        from ...envs.android import AndroidEnv

        serial = await (await self._phone_pool()).get()
        phone = (
            AndroidEnv(serial=serial) if cfg.android_device is None else AndroidEnv(device=cfg.android_device(serial))
        )
        self._phone_of[id(phone)] = serial
        return phone

    async def release(self, env: Env) -> None:
        """Close the episode's env; a phone goes back to the pool."""
        try:
            await env.aclose()
        finally:
            serial = self._phone_of.pop(id(env), None)
            if serial is not None and self._phones is not None:
                self._phones.put_nowait(serial)

    async def _phone_pool(self) -> asyncio.Queue[str]:
        async with self._lock:
            if self._phones is None:
                from ...envs.android import attached_serials

                serials = list(self.config.android_serials) or await attached_serials()
                if not serials:
                    raise EnvError(
                        "an Android task needs a phone and `adb devices` lists none; attach one "
                        "or start an emulator (or give the serials to use)"
                    )
                self._phones = asyncio.Queue()
                for serial in dict.fromkeys(serials):
                    self._phones.put_nowait(serial)
            return self._phones

    async def aclose(self) -> None:
        await self.browser.aclose()
