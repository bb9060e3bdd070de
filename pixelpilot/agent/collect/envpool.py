"""Where each collected episode's env comes from: one shared Chromium, an Xvfb per desktop episode,
a pool of phones each held by one episode at a time."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ...actions import Task
from ...envs import Env, EnvError, SharedChromium, make

if TYPE_CHECKING:
    from .episode import RunnerConfig


class EnvPool:
    """Where each episode's env comes from, by where its task runs (:attr:`Task.runs_in`):

    - browser and mobile-web: a fresh context in the one shared Chromium;
    - desktop: an Xvfb of its own, started for the episode and stopped after it;
    - android: a phone from the pool (``android_serials``, else every attached device), held by
      one episode at a time; an episode waits for a free one, and the wait is not its time.
    """

    def __init__(self, config: RunnerConfig) -> None:
        self.config = config
        self.chromium = SharedChromium(headless=config.headless)
        self._phones: asyncio.Queue[str] | None = None
        self._phone_of: dict[int, str] = {}  # id(env) -> the serial it holds
        self._lock = asyncio.Lock()

    async def acquire(self, task: Task) -> Env:
        """A started env for ``task`` (EnvError when none can be had: no Chromium, no Xvfb, no phone).

        Starting it (a launch, a wait for a free phone) happens here, outside the episode's time.
        """
        cfg = self.config
        where = task.runs_in
        env: Env
        if where == "browser":
            env = make(
                "browser",
                browser=self.chromium,
                headless=cfg.headless,
                viewport=cfg.viewport,
                url_policy=cfg.url_policy,
            )
        elif where == "mobile-web":
            env = make("mobile-web", browser=self.chromium, headless=cfg.headless, url_policy=cfg.url_policy)
        elif where == "desktop":
            env = make("desktop", virtual_display=cfg.desktop_size, apps=cfg.desktop_apps)
        else:
            serial = await (await self._phone_pool()).get()
            device = cfg.android_device(serial) if cfg.android_device is not None else None
            env = make("android", serial=serial) if device is None else make("android", device=device)
            self._phone_of[id(env)] = serial
        try:
            await env.start()
        except BaseException:
            await self.release(env)
            raise
        return env

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
        await self.chromium.aclose()
