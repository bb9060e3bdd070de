"""The closed loop, small enough for a laptop's CPU: generate → collect → export → train → serve → eval.

1. **collect**: the ``shapes`` suite's scripted solution (:class:`~pixelpilot.evals.shapes.ShapesOracle`)
   plays seeds ``0 … train_episodes - 1`` of the ``train`` split in real Chromium, through collect,
   into episodes;
2. **export**: the episodes become an ``hf`` export, with the code ``pixelpilot export -f hf`` runs;
3. **build**: a Qwen3-VL of the ``small`` size (:mod:`pixelpilot.serving.tiny`: the real architecture
   and tokenizer, random weights, attention norms at ``attention_gain``) is written to disk — the
   untrained model;
4. **train**: ``pixelpilot train`` trains it from scratch on the export;
5. **eval**: both models at once, each served by ``pixelpilot serve --backend transformers`` and
   evaluated by ``pixelpilot eval shapes`` on the ``held-out`` split (pictures no training seed draws), through
   the ordinary ModelPolicy path in the ``qwen3-vl`` profile.

Steps 4 and 5 run the CLI in subprocesses, as a user would. ``bench/train_loop.py`` runs the whole
plan and prints the figures; ``tests/test_train_loop.py`` runs it cut to eight minutes (batch 8, 650
steps, no time limit) and checks that the trained model finds the shape on held-out pages more often
than any model that does not look would.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._process import stop_group
from ..agent.collect import RunnerConfig, collect
from ..evals.results import load_results, wilson
from ..evals.shapes import Family, Layout, Shape, ShapesSuite, first_click, oracle, outcome
from ..serving.client import wait_until_ready
from ..serving.tiny import SIZES, build_tiny_model
from ..trajectories import load_episode
from ..trajectories.export import export_episodes


@dataclass(frozen=True)
class DemoPlan:
    """How big each phase is. The defaults are ``bench/train_loop.py``'s."""

    train_episodes: int = 1600
    eval_episodes: int = 100
    #: Evaluation samples greedily (``pixelpilot eval --temperature 0``); None: the model card's sampling.
    temperature: float | None = 0.0
    #: The cosine schedule's length; under ``time_limit`` the schedule keeps pace with the clock too.
    steps: int = 650
    batch_size: int = 16
    #: 8e-4 since 0.9.2: at 2e-3 (0.8.0–0.9.1) the loss spikes, and the model learned where the shape is
    #: later, or not within the budget (docs/training.md, "The learning rate").
    lr: float = 8e-4
    warmup: float = 0.03
    #: Full fine-tuning of a model from scratch: its random embeddings stay as they are.
    freeze: tuple[str, ...] = ("embeddings",)
    #: The softmax over the tokens the answers use (``pixelpilot train --vocab answers``).
    vocab: str = "answers"
    #: ``pixelpilot train --no-prefix-grad``: the system prompt every sample starts with is a constant
    #: of each step (since 0.10.0; docs/training.md, "Where the answer looks").
    prefix_grad: bool = False
    #: Minutes after which training stops (and saves) whatever ``steps`` says: what keeps the whole
    #: loop within 20 minutes on two shared cores.
    time_limit: float | None = 12.0
    size: str = "small"
    #: The untrained model's starting weights (``build_tiny_model``): transformers' initialization
    #: (no punctuation bias: the loss reaches the answer's format in a third of the steps) with the
    #: language model's query and key norms at this gain (sharper attention from the start).
    attention_gain: float = 2.0
    #: The most tokens an evaluated answer may take (``pixelpilot eval --max-tokens``): a trained
    #: model's answer is 41 (and the end of its turn); an untrained one writes on until cut, and fails.
    max_tokens: int = 48
    seed: int = 0
    collect_concurrency: int = 6
    eval_concurrency: int = 2
    #: CPU threads for training, and for the two servers together (default: all cores).
    threads: int | None = None


@dataclass
class EvalFigures:
    """One model's held-out evaluation."""

    label: str
    n: int
    successes: int
    #: How its episodes ended (:data:`pixelpilot.evals.shapes.OUTCOMES`'s keys).
    outcomes: Counter[str] = field(default_factory=Counter)
    #: Episodes whose click fell in the named shape's row, and in its column, of the family's grid:
    #: which half of "where" a model has learned (a model that does not look gets about a third of each).
    right_row: int = 0
    right_column: int = 0

    def share(self, count: int) -> float:
        """``count`` episodes as a share of all of them."""
        return count / self.n if self.n else 0.0

    @property
    def rate(self) -> float:
        return self.share(self.successes)

    @property
    def ci95(self) -> tuple[float, float]:
        return wilson(self.successes, self.n)

    @property
    def on_a_shape(self) -> float:
        """The share of episodes whose click landed on some shape, the named one or not."""
        return self.share(self.outcomes["target"] + self.outcomes["other"])

    def line(self) -> str:
        lo, hi = self.ci95
        ends = ", ".join(f"{k} {v}" for k, v in self.outcomes.most_common())
        return (
            f"{self.label}: {self.successes}/{self.n} = {self.rate:.1%} (95% CI {lo:.1%}–{hi:.1%}); "
            f"clicks on a shape {self.on_a_shape:.1%}, in its row {self.share(self.right_row):.0%}, "
            f"in its column {self.share(self.right_column):.0%}; ends: {ends}"
        )


@dataclass
class DemoResult:
    """What the loop measured."""

    plan: DemoPlan
    #: Seconds per phase, in order.
    phases: dict[str, float]
    #: A uniformly random click's success rate, and the best constant click's.
    chance: float
    constant: float
    #: Evaluated pictures that also occur among the training episodes' (0 by the split's construction).
    overlap: int
    untrained: EvalFigures
    trained: EvalFigures
    #: ``pixelpilot-train.json`` of the run.
    training: dict[str, Any]

    @property
    def baseline(self) -> float:
        """The better of chance and the best constant answer: what a model that does not look gets."""
        return max(self.chance, self.constant)

    def checks(self) -> dict[str, bool]:
        """The demonstration's bar: held-out success of at least 40%, at least three times the
        baseline, and above the untrained model by more than the 95% intervals (they do not overlap)."""
        return {
            "chance ≤ 10%": self.chance <= 0.10,
            "trained ≥ 40%": self.trained.rate >= 0.40,
            "trained ≥ 3 × baseline": self.trained.rate >= 3 * self.baseline,
            "trained above untrained (95% CIs apart)": self.trained.ci95[0] > self.untrained.ci95[1],
        }

    def lines(self) -> list[str]:
        t = self.training
        out = [
            f"task family: {Family()}",
            f"chance (uniformly random click): {self.chance:.1%}; best constant click: {self.constant:.1%}",
            f"held-out split: {self.plan.eval_episodes} layouts, {self.overlap} of their pictures among the training ones",
            self.untrained.line(),
            self.trained.line(),
            f"a model that does not look ({self.baseline:.1%} a page) gets {self.trained.successes} of "
            f"{self.trained.n} or more with probability "
            f"{binomial_tail(self.trained.successes, self.trained.n, self.baseline):.1e}",
            f"training: {t.get('steps')} steps, {t.get('samples')} samples in {t.get('seconds')} s, "
            f"{t.get('samples_per_second')} samples/s; final loss {t.get('final_loss')}",
            "phases: "
            + ", ".join(f"{k} {v:.0f} s" for k, v in self.phases.items())
            + f"; total {sum(self.phases.values()):.0f} s",
        ]
        out += [f"{'PASS' if ok else 'FAIL'}: {name}" for name, ok in self.checks().items()]
        return out


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X ≥ k) for X ~ Binomial(n, p): how often a model that succeeds with probability ``p`` does
    at least as well as ``k`` of ``n``."""
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))


def run_demo(
    work: str | os.PathLike[str], plan: DemoPlan = DemoPlan(), log: Callable[[str], None] = print
) -> DemoResult:
    """Run the whole loop in the folder ``work`` (see the module docstring) and return its figures."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    family = Family()
    phases: dict[str, float] = {}

    @contextmanager
    def phase(name: str) -> Iterator[None]:
        log(f"[{name}] …")
        started = time.monotonic()
        yield
        phases[name] = time.monotonic() - started
        log(f"[{name}] {phases[name]:.0f} s")

    with phase("collect"):
        asyncio.run(_collect(work / "episodes", plan))
    with phase("export"):
        # the actions the suite offers a model, so that each sample is the request an evaluation sends
        report = export_episodes([work / "episodes"], work / "export", format="hf", actions=ShapesSuite.actions)
        log(f"{report.samples} samples from {len(report.episodes)} episodes ({len(report.skipped)} skipped)")
    with phase("build"):
        untrained = build_tiny_model(
            work / "untrained",
            size=SIZES[plan.size],
            seed=plan.seed,
            punctuation_bias=0.0,
            attention_gain=plan.attention_gain,
        )
    with phase("train"):
        trained = work / "trained"
        _run(_train_command(work / "export", untrained, trained, plan), log, work / "train.log")
        training = json.loads((trained / "pixelpilot-train.json").read_text())
    # Both models at once, each server on half the cores: a small model's decoding is bound by
    # reading the LM head (151,936 rows) for every token, which one core does as fast as two, so
    # two servers side by side take about the time of one.
    threads = max(1, (plan.threads or os.cpu_count() or 2) // 2)
    with phase("eval (both models at once)"), ThreadPoolExecutor(2) as pool:
        runs = {
            label: pool.submit(_evaluate, label, Path(model), work / f"eval-{label}", plan, threads, log)
            for label, model in (("untrained", untrained), ("trained", trained))
        }
        figures = {label: run.result() for label, run in runs.items()}
    trained_on = {_picture(family.layout(s, "train")) for s in range(plan.train_episodes)}
    evaluated = [family.layout(s, "held-out") for s in range(plan.eval_episodes)]
    return DemoResult(
        plan=plan,
        phases=phases,
        chance=family.random_click_rate(split="held-out"),
        constant=family.constant_rate(split="held-out")[0],
        overlap=sum(_picture(layout) in trained_on for layout in evaluated),
        untrained=figures["untrained"],
        trained=figures["trained"],
        training=training,
    )


def _picture(layout: Layout) -> frozenset[Shape]:
    return frozenset(layout.shapes)


async def _collect(out: Path, plan: DemoPlan) -> None:
    suite = ShapesSuite(split="train")
    config = RunnerConfig(out=out, viewport=suite.viewport, policy_factory=oracle, timeout=60)
    with suite.serve() as tasks:
        await collect(tasks, config, rollouts=plan.train_episodes, concurrency=plan.collect_concurrency)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "pixelpilot.cli", *args]


def _train_command(data: Path, model: Path, out: Path, plan: DemoPlan) -> list[str]:
    cmd = _cli(
        "train",
        str(data),
        "--model",
        str(model),
        "--out",
        str(out),
        "--method",
        "full",
        "--max-steps",
        str(plan.steps),
        "--batch-size",
        str(plan.batch_size),
        "--lr",
        str(plan.lr),
        "--warmup",
        str(plan.warmup),
        "--seed",
        str(plan.seed),
        "--vocab",
        plan.vocab,
        "--save-steps",
        str(max(plan.steps // 2, 1)),
        "--no-progress",
    )
    cmd += [a for part in plan.freeze for a in ("--freeze", part)]
    if not plan.prefix_grad:
        cmd.append("--no-prefix-grad")
    if plan.time_limit is not None:
        cmd += ["--time-limit", str(plan.time_limit)]
    if plan.threads:
        cmd += ["--threads", str(plan.threads)]
    return cmd


def _run(cmd: list[str], log: Callable[[str], None], logfile: Path) -> None:
    with open(logfile, "w") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT)
    tail = logfile.read_text().strip().splitlines()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[2:4])} failed ({proc.returncode}):\n" + "\n".join(tail[-20:]))
    if tail:
        log(tail[-2] if len(tail) > 1 else tail[-1])


def _evaluate(
    label: str, model: Path, out: Path, plan: DemoPlan, threads: int, log: Callable[[str], None]
) -> EvalFigures:
    with _served(model, label, threads, out.with_suffix(".server.log")) as url:
        cmd = _cli(
            "eval",
            "shapes",
            "--model-url",
            url,
            *(["--temperature", str(plan.temperature)] if plan.temperature is not None else []),
            "--max-tokens",
            str(plan.max_tokens),
            "--seeds",
            str(plan.eval_episodes),
            "--concurrency",
            str(plan.eval_concurrency),
            "--max-steps",
            "1",
            "--timeout",
            "120",
            "--label",
            label,
            "--out",
            str(out),
            "--no-progress",
        )
        _run(cmd, log, out.with_suffix(".log"))
    return eval_figures(label, out)


def eval_figures(label: str, out: Path) -> EvalFigures:
    """The figures of a ``pixelpilot eval shapes`` run whose results are in ``out``."""
    results = load_results(out / "results.json")
    trials = [t for task in results.tasks for t in task.trials]
    figures = EvalFigures(label, len(trials), sum(t.success for t in trials))
    family = Family()
    for trial in trials:
        if not trial.path:
            figures.outcomes[outcome(trial.message)] += 1
            continue
        episode = load_episode(out / trial.path)
        figures.outcomes[outcome(episode.message)] += 1
        point = first_click(episode)
        if point is not None:
            goal = Layout.from_json(episode.task.metadata["layout"]).goal
            (col, row), (goal_col, goal_row) = family.cell(*point), family.cell(goal.x, goal.y)
            figures.right_row += row == goal_row
            figures.right_column += col == goal_col
    return figures


@contextmanager
def _served(model: Path, name: str, threads: int | None, logfile: Path) -> Iterator[str]:
    """``pixelpilot serve --backend transformers`` on a free loopback port, stopped on exit."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = _cli("serve", "--backend", "transformers", "--model", str(model), "--port", str(port), "--served-name", name)
    if threads:
        cmd += ["--threads", str(threads)]
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with open(logfile, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        try:
            asyncio.run(wait_until_ready(url, timeout=300, process=proc))
        except Exception as e:
            raise RuntimeError(f"the server did not start: {e}\n{logfile.read_text()[-2000:]}") from None
        yield url
    finally:
        stop_group(proc)
