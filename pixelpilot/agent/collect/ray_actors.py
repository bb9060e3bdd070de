"""Collect across machines: the same episode runner inside Ray actors.

Each actor owns its environments (one :class:`~pixelpilot.agent.collect.EpisodeRunner`, so one
Chromium) and runs several episodes at once on its own event loop. The driver hands out the
episodes, picks their model servers, shows the progress and keeps the tally; the episodes are
written by the actors straight into the output folder, which must therefore be shared storage
when the actors live on other machines.

An actor that dies (its process crashed, or it was stuck past an episode's time limit and was
killed) is restarted by Ray; each episode it was running is recorded as ``env_error`` and run
again, up to ``max_attempts`` times in all.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ...trajectories import Recorder, load_episode, write_episode
from .driver import CollectSummary, ServerPool, check_servers, drive
from .episode import EpisodeResult, EpisodeRunner, RunnerConfig
from .tasks import EpisodeSpec, TaskSpec, plan

#: Seconds past an episode's own time limit before the driver declares its actor stuck.
STUCK_GRACE_S = 30.0
#: Seconds a restarting actor may take to come back.
RESTART_WAIT_S = 120.0


class CollectActor:
    """A Ray actor (see :func:`ray_collect`): one EpisodeRunner, so one Chromium, many episodes."""

    def __init__(self, config: RunnerConfig) -> None:
        self.runner = EpisodeRunner(config)

    async def run(self, spec: EpisodeSpec) -> EpisodeResult:
        return await self.runner.run(spec)

    async def ready(self) -> bool:
        return True

    async def aclose(self) -> None:
        await self.runner.aclose()


def connect(address: str = "local", *, num_cpus: int | None = None) -> bool:
    """Join a Ray cluster, or start one on this machine for ``address="local"``.

    Returns whether this call connected (and so whether ``ray.shutdown()`` is ours to call). A
    local cluster is kept small for a laptop or CI box: no dashboard, a 100 MB object store,
    loopback only.
    """
    import ray

    if ray.is_initialized():
        return False
    if address == "local":
        ray.init(
            num_cpus=num_cpus or os.cpu_count() or 1,
            include_dashboard=False,
            log_to_driver=False,
            object_store_memory=100 * 1024 * 1024,
            _node_ip_address="127.0.0.1",
        )
    else:
        ray.init(address=address, log_to_driver=False)
    return True


def mark_env_error(out: Path, spec: EpisodeSpec, message: str) -> EpisodeResult:
    """Record an episode whose actor died under it as ``env_error``, keeping the steps it had written."""
    folder = Path(out) / spec.id
    if (folder / "task.json").exists():
        episode = load_episode(folder)
    else:  # it died before the episode began
        episode = (
            Recorder(out).start(spec.task, env=spec.task.env, policy="none", episode_id=spec.id).summarize("env_error")
        )
    episode.status, episode.message, episode.finished, episode.ended_at = "env_error", message, True, time.time()
    write_episode(episode)
    return EpisodeResult(spec.id, "env_error", None, episode.num_steps, 0.0, message)


class _Dispatch:
    """Runs an episode on the actor of a worker slot; retries it when the actor dies."""

    def __init__(self, actors: list[Any], config: RunnerConfig, max_attempts: int) -> None:
        self.actors = actors
        self.config = config
        self.max_attempts = max_attempts

    async def __call__(self, spec: EpisodeSpec, slot: int) -> EpisodeResult:
        import ray
        from ray.exceptions import RayActorError

        actor = self.actors[slot % len(self.actors)]
        for attempt in range(1, self.max_attempts + 1):
            try:
                return await asyncio.wait_for(actor.run.remote(spec), self.config.timeout + STUCK_GRACE_S)
            except TimeoutError:
                ray.kill(actor, no_restart=False)  # its event loop is stuck: only a restart frees it
                cause = f"its actor was stuck {STUCK_GRACE_S:g} s past the episode's time limit and was restarted"
            except RayActorError as e:
                cause = f"its actor died ({str(e).strip().splitlines()[0]})"
            retry = "; running it again" if attempt < self.max_attempts else ""
            result = mark_env_error(self.config.out, spec, f"{cause}; attempt {attempt} of {self.max_attempts}{retry}")
            if retry:
                await _until_alive(actor)
        return result


async def _until_alive(actor: Any) -> None:
    """Wait while Ray restarts the actor (calls made meanwhile fail at once)."""
    from ray.exceptions import RayActorError

    deadline = time.monotonic() + RESTART_WAIT_S
    while time.monotonic() < deadline:
        try:
            await asyncio.wait_for(actor.ready.remote(), 10)
            return
        except (TimeoutError, RayActorError):
            await asyncio.sleep(0.5)


async def ray_collect(
    tasks: Sequence[TaskSpec],
    config: RunnerConfig,
    *,
    address: str = "local",
    actors: int = 2,
    concurrency: int = 4,
    rollouts: int = 1,
    first_seed: int = 0,
    model_urls: Sequence[str] = (),
    progress: bool = False,
    max_attempts: int = 3,
    actor_cpus: float = 1.0,
) -> CollectSummary:
    """:func:`~pixelpilot.agent.collect.collect`, with the episodes run by ``actors`` Ray actors.

    ``address`` is ``"local"`` (start a cluster on this machine for the run), ``"auto"`` (this
    machine's running cluster) or a cluster address; when Ray is already initialized in this
    process, that connection is used as it is. Worker slot ``i`` of ``concurrency`` sends its
    episodes to actor ``i % actors``.

    Phones named in ``config.android_serials`` are dealt out among the actors, so that no two
    actors drive one phone; without them, each actor takes the phones attached to its machine, which
    is right with one actor per machine.
    """
    import ray

    if actors < 1 or max_attempts < 1:
        raise ValueError(f"actors and max_attempts must be at least 1, got {actors} and {max_attempts}")
    specs = plan(tasks, rollouts, first_seed=first_seed)
    await check_servers(specs, model_urls, config)
    Path(config.out).mkdir(parents=True, exist_ok=True)
    connected = connect(address, num_cpus=max(actors, os.cpu_count() or 1))
    handles: list[Any] = []
    try:
        actor_class = ray.remote(CollectActor).options(num_cpus=actor_cpus, max_restarts=-1)
        phones = config.android_serials
        if phones and len(phones) < actors and any(s.task.runs_in == "android" for s in specs):
            raise ValueError(
                f"{actors} actors and {len(phones)} phones: each actor needs a phone of its own; "
                "use fewer actors or name more phones"
            )
        handles = [actor_class.remote(replace(config, android_serials=phones[i::actors])) for i in range(actors)]
        return await drive(
            specs,
            _Dispatch(handles, config, max_attempts),
            out=config.out,
            concurrency=concurrency,
            servers=ServerPool(model_urls),
            progress=progress,
        )
    finally:
        for handle in handles:
            try:
                await asyncio.wait_for(handle.aclose.remote(), 30)
            except Exception:
                pass  # it is being killed anyway
            ray.kill(handle, no_restart=True)
        if connected:
            ray.shutdown()
