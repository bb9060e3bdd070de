"""Run a suite through collect, then score what is on disk: ``results.json`` and ``scoreboard.html``.

The episodes go to ``OUT/episodes`` under ids fixed by task and seed, exactly as collect writes
them, so a killed evaluation resumes by running it again; the results are always computed from the
episodes on disk, those of the earlier run included.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from .._sync import run_sync
from ..agent.collect import EpisodeSpec, Policies, RunnerConfig, TaskSpec, collect
from ..agent.policy import Policy
from ..agent.runner import Limits
from ..serving.client import Sampling
from ..trajectories import EpisodeError, load_episode
from .results import Results, RunInfo, TaskResult, Trial, episode_trial
from .suite import Suite, get_suite, select


async def evaluate(
    suite: Suite | str,
    out: str | os.PathLike[str],
    *,
    model_urls: Sequence[str] = (),
    model: str | None = None,
    profile: str = "qwen3-vl",
    sampling: Sampling | None = None,
    max_tokens: int | None = None,
    seeds: int = 1,
    first_seed: int = 0,
    tasks: str | None = None,
    concurrency: int = 4,
    ray: str | None = None,
    actors: int = 2,
    max_steps: int = 15,
    timeout: float = 300.0,
    label: str | None = None,
    policy_factory: Callable[[EpisodeSpec], Policy] | None = None,
    config: RunnerConfig | None = None,
    progress: bool = False,
) -> Results:
    """Evaluate a model (or ``policy_factory``'s policies) on ``suite``; write and return the results.

    ``tasks`` picks tasks by comma-separated shell patterns of their ids; each runs ``seeds`` times,
    from seed ``first_seed`` on (held-out seeds: a ``first_seed`` past those trained on). ``ray``
    runs the episodes in Ray actors (``local``, ``auto`` or an address), as collect does. ``sampling``
    replaces the profile's model-card sampling (``Sampling(temperature=0)``: greedy); ``max_tokens``
    caps each answer's length (ModelPolicy's 512 by default). ``config``
    sets the runner's other options; ``out``, the suite's viewport, ``max_steps``, ``timeout`` and
    the policies are filled in from the arguments.

    >>> results = await evaluate("miniwob", "eval/base", model_urls=["http://127.0.0.1:30000/v1"])  # doctest: +SKIP
    """
    suite = get_suite(suite) if isinstance(suite, str) else suite
    out = Path(out)
    episodes = out / "episodes"
    run = RunInfo(
        label=label or model or (model_urls[0] if model_urls else "policy"),
        model=model,
        model_urls=list(model_urls),
        profile=profile if policy_factory is None else None,
        sampling=sampling.to_body() if sampling is not None and policy_factory is None else None,
        seeds=seeds,
        first_seed=first_seed,
        tasks_pattern=tasks,
    )
    base = config or RunnerConfig(out=episodes)
    config = replace(
        base,
        out=episodes,
        timeout=timeout,
        limits=replace(base.limits, max_steps=max_steps) if config else Limits(max_steps=max_steps),
        viewport=suite.viewport or base.viewport,
        policy_factory=policy_factory
        or Policies(
            model=model,
            profile=profile,
            actions=suite.actions,
            sampling=sampling,
            **({"max_tokens": max_tokens} if max_tokens is not None else {}),
        ),
    )
    with suite.serve() as every_task:
        chosen = select(every_task, tasks)
        options = dict(concurrency=concurrency, rollouts=seeds, first_seed=first_seed, model_urls=model_urls)
        if ray is None:
            await collect(chosen, config, progress=progress, **options)  # type: ignore[arg-type]
        else:
            from ..agent.collect import ray_collect

            await ray_collect(chosen, config, address=ray, actors=actors, progress=progress, **options)  # type: ignore[arg-type]
    run.finished_at = time.time()
    notes = suite.limitations()
    scored = score(chosen, episodes, seeds, out, notes)
    results = Results.build(suite.name, run, scored, limitations={t.id: t.limitation for t in scored if t.limitation})
    results.write(out / "results.json")
    from .scoreboard import write_scoreboard

    write_scoreboard([out / "results.json"], out / "scoreboard.html")
    return results


def score(
    tasks: Sequence[TaskSpec], episodes: Path, seeds: int, root: Path, limitations: dict[str, str] | None = None
) -> list[TaskResult]:
    """Each task's trials, read from its finished episodes under ``episodes`` (paths relative to ``root``)."""
    scored = []
    for t in tasks:
        trials = []
        for k in range(seeds):
            folder = episodes / f"{t.id}-r{k}"
            if not (folder / "episode.json").exists():
                continue
            try:
                trials.append(episode_trial(load_episode(folder), root))
            except EpisodeError as e:  # damaged on disk: it ran, so it counts, as a failure that says why
                trials.append(Trial(id=folder.name, success=False, status="unreadable", message=str(e)))
        scored.append(TaskResult(id=t.id, trials=trials, limitation=(limitations or {}).get(t.id)))
    return scored


def evaluate_sync(suite: Suite | str, out: str | os.PathLike[str], **options: object) -> Results:
    """:func:`evaluate` from plain (non-async) code."""
    return run_sync(evaluate(suite, out, **options), "evaluate(suite, out)")  # type: ignore[arg-type]
