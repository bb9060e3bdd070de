"""One collected episode: its env from the pool, its policy, the agent loop under a wall-clock
limit enforced from outside, its reward, and always an ``episode.json`` at the end."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...envs import Env, UrlPolicy
from ...trajectories import Episode, Recorder, Status, Step, write_episode
from ..gate import Gate
from ..policies import policy_for
from ..policy import Policy
from ..runner import DEFAULT_LIMITS, Agent, Limits
from ..state import EpisodeState
from ..status import describe, status_for
from .envpool import EnvPool
from .tasks import EpisodeSpec


@dataclass(frozen=True)
class EpisodeResult:
    """What a finished episode reports back to the collector (the episode itself is on disk)."""

    id: str
    status: Status
    reward: float | None
    num_steps: int
    seconds: float
    message: str | None = None


class Policies:
    """Each collected episode's policy (:func:`policy_for`), with a ModelPolicy that talks to the
    episode's own server (``spec.server``) for its whole run when there is one.

    ``options`` go to every ModelPolicy (``mode``, ``actions``, ``max_tokens`` …). One HTTP client
    per server is kept for all the episodes on it (its connections are reused); :meth:`aclose`
    closes them. Picklable (without the clients), so Ray actors get their own.
    """

    def __init__(self, *, model: str | None = None, **options: Any) -> None:
        self.model = model
        self.options = options
        self._clients: dict[str, Any] = {}

    def __call__(self, spec: EpisodeSpec) -> Policy:
        model = None
        if spec.server is not None:
            from ...serving.client import ModelClient
            from ..model_policy import ModelPolicy

            client = self._clients.get(spec.server)
            if client is None:
                client = self._clients[spec.server] = ModelClient(spec.server, model=self.model)
            model = ModelPolicy(client, **self.options)
        return policy_for(spec.task, model, name=f"task {spec.id}")

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_clients": {}}  # clients belong to the event loop that opened them


@dataclass(frozen=True)
class RunnerConfig:
    """How each episode runs; picklable, so that Ray actors build their runner from it."""

    out: Path
    #: Wall-clock seconds one episode may take, enforced from outside the episode.
    timeout: float = 300.0
    limits: Limits = DEFAULT_LIMITS
    headless: bool = True
    viewport: tuple[int, int] = (1280, 800)
    #: The screen of each desktop episode's own Xvfb.
    desktop_size: tuple[int, int] = (1280, 800)
    #: Programs desktop episodes may start with ``open_app`` (label -> argv), besides installed
    #: ``.desktop`` entries.
    desktop_apps: dict[str, list[str]] = field(default_factory=dict)
    #: The phones Android episodes may use (default: every device ``adb devices`` lists).
    android_serials: tuple[str, ...] = ()
    #: Builds the device object for a serial (default: adbutils, through the local adb server).
    android_device: Callable[[str], Any] | None = None
    #: Builds each episode's policy (its ``aclose``, if any, is awaited when the runner closes);
    #: it is pickled into Ray actors.
    policy_factory: Callable[[EpisodeSpec], Policy] = field(default_factory=Policies)
    #: Seconds judging an episode's end (its checker, its scenario) may take.
    check_timeout: float = 30.0
    #: The hosts browser episodes may visit (enforced inside Chromium); None: no policy.
    url_policy: UrlPolicy | None = None
    #: Checks each action before it runs (approvals, the URL policy); None: nothing is refused.
    gate: Gate | None = None


class EpisodeRunner:
    """Runs single episodes into ``config.out``; any number of them at once on one event loop.

    :meth:`run` always starts the episode afresh (an earlier partial folder is removed) and always
    leaves ``episode.json`` behind, whatever happens inside the episode. ``envs`` shares another
    runner's env pool (its Chromium), which that runner closes; ``on_step`` hears of each step recorded.
    """

    def __init__(
        self,
        config: RunnerConfig,
        *,
        envs: EnvPool | None = None,
        on_step: Callable[[EpisodeSpec, Step], None] | None = None,
    ) -> None:
        self.config = config
        self.envs = envs if envs is not None else EnvPool(config)
        self.on_step = on_step

    async def run(self, spec: EpisodeSpec) -> EpisodeResult:
        cfg = self.config
        folder = Path(cfg.out) / spec.id
        if folder.exists():
            shutil.rmtree(folder)  # a half-written or retried attempt: its id is taken again now
        started = time.monotonic()
        env: Env | None = None
        policy: Policy | None = None
        state: EpisodeState | None = None
        stopped: tuple[Status, str] | None = None
        deadline = asyncio.timeout(cfg.timeout)
        try:
            try:
                env = await self.envs.acquire(spec.task)  # a launch, or a wait for a free phone: not the episode's time
                policy = cfg.policy_factory(spec)
                hear = self.on_step
                agent = Agent(
                    env,
                    policy,
                    recorder=Recorder(cfg.out),
                    limits=cfg.limits,
                    gate=cfg.gate,
                    on_step=None if hear is None else lambda step: hear(spec, step),
                )
                async with deadline:
                    state = await agent.start(spec.task, episode_id=spec.id, scenario=spec.scenario)
                    while not state.done:
                        await agent.step(state)
            except Exception as e:
                if deadline.expired():
                    stopped = "timeout", f"stopped from outside after its {cfg.timeout:g} s wall-clock limit"
                else:
                    stopped = status_for(e) or "error", describe(e)
            episode = await self._finish(spec, env, state, stopped)
        finally:  # also when the collection itself is cancelled: the episode then stays unfinished
            if policy is not None:
                await policy.aclose()
            if env is not None:
                await self.envs.release(env)
        return EpisodeResult(
            spec.id, episode.status, episode.reward, episode.num_steps, time.monotonic() - started, episode.message
        )

    async def _finish(
        self, spec: EpisodeSpec, env: Env | None, state: EpisodeState | None, stopped: tuple[Status, str] | None
    ) -> Episode:
        """The episode with its final status and reward, written to ``episode.json``."""
        if state is None:  # it broke before the episode began: record that it did
            assert stopped is not None
            writer = Recorder(self.config.out).start(spec.task, env=spec.task.env, policy="none", episode_id=spec.id)
            episode = writer.summarize(stopped[0], message=stopped[1])
        elif state.episode is not None:  # written already: stopped by the deadline, or by a bug
            episode = state.episode
        else:  # judged before it is written, so that a rerun never finds it without its reward
            assert state.status is not None
            episode = state.writer.summarize(state.status, message=state.message, answer=state.answer)
        if stopped is not None:
            episode.status, episode.message = stopped
        verdict = state.verdict if state is not None else None
        if verdict is None and spec.scenario is not None and env is not None:
            try:
                verdict = await asyncio.wait_for(spec.scenario.judge(env, episode), self.config.check_timeout)
            except Exception as e:  # the reward stays unknown; the episode is kept all the same
                note = f"judging the episode failed: {type(e).__name__}: {e}"
                episode.message = f"{episode.message}; {note}" if episode.message else note
        if verdict is not None:
            episode.reward, episode.raw_reward = verdict.reward, verdict.raw_reward
        write_episode(episode)
        return episode

    async def aclose(self) -> None:
        if isinstance(self.config.policy_factory, Policies):
            await self.config.policy_factory.aclose()
        await self.envs.aclose()
