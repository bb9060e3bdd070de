"""The MiniWoB++ suite in real Chromium: the package's own pages, their instructions, clocks and rewards.

The harness is checked without a good model: ``DomSolver``, a test policy that reads the page's DOM
(through the env's ``PageScripting``) to find its target and answers with grid clicks and typing
through the ordinary Agent loop, solves a handful of tasks; the pages' own code then gives
raw reward 1. A wrong click gets the page's own failure reward, a wait gets its timer's.
"""

from __future__ import annotations

import importlib.util
import re
import time
from pathlib import Path

import pytest

from pixelpilot import Agent, Decision, Policy, Recorder, StepContext, Task
from pixelpilot.actions import Click, Navigate, Terminate, Type, Wait
from pixelpilot.agent.collect import RunnerConfig, TaskSpec, collect
from pixelpilot.envs import PageScripting

if importlib.util.find_spec("miniwob") is None:
    pytest.skip("the miniwob package (pip install 'pixelpilot[miniwob]') is not installed", allow_module_level=True)

from pixelpilot.evals import RunInfo, SuiteError, get_suite
from pixelpilot.evals.miniwob import LEFT, STOPPED, MiniWoBScenario, MiniWoBSuite, html_dir
from pixelpilot.evals.results import Results
from pixelpilot.evals.run import score

# A point inside ``el`` that is really on it (the centre, else nearby points): what elementFromPoint
# hits there is ``el`` or inside it, so a click there reaches it even when another element overlaps.
FIND = """([selector, text]) => {
  const on = (el) => {
    for (const r of el.getClientRects())
      for (const fy of [0.5, 0.3, 0.7]) for (const fx of [0.5, 0.25, 0.75]) {
        const x = r.left + r.width * fx, y = r.top + r.height * fy, hit = document.elementFromPoint(x, y);
        if (hit && (hit === el || el.contains(hit))) return [x, y];
      }
    return null;
  };
  for (const el of document.querySelectorAll(selector))
    if (text === null || el.textContent.trim() === text) { const p = on(el); if (p) return p; }
  return null;
}"""
CHECKBOXES = "() => [...document.querySelectorAll('#boxes label')].map(l => [l.textContent.trim(), l.querySelector('input').checked])"


def _quoted(instruction: str) -> str:
    found = re.search(r'"(.+?)"', instruction)
    assert found, instruction
    return found.group(1)


class DomSolver(Policy):
    """Solves click-button, click-link, focus-text, enter-text and click-checkboxes from the DOM, one
    grid action per step; with ``wrong=True`` it clicks the wrong button of click-test-2 instead."""

    SOLVES = ("click-button", "click-link", "focus-text", "enter-text", "click-checkboxes")

    def __init__(self, *, wrong: bool = False) -> None:
        self.wrong = wrong

    async def decide(self, ctx: StepContext) -> Decision:
        page = ctx.env
        assert isinstance(page, PageScripting)
        task, said = ctx.task.name, ctx.task.instruction

        async def click(selector: str, text: str | None = None) -> Decision:
            point = await page.evaluate(FIND, [selector, text])
            assert point is not None, f"{task}: nothing to click at {selector} {text!r}"
            obs = ctx.observation
            x, y = ctx.grid.point_to_grid(point[0], point[1], obs.input_width, obs.input_height)
            return Decision(Click(x=x, y=y), thought=f"click {selector} {text or ''}")

        if self.wrong:
            return await click("#subbtn2")  # click-test-2 asks for ONE; TWO is the wrong button
        if task == "click-button":
            return await click("#area button", _quoted(said))
        if task == "click-link":
            return await click("#area .alink", _quoted(said))
        if task == "focus-text":
            return await click("#tt")
        if task == "enter-text":
            wanted = _quoted(said)
            if await page.evaluate("() => document.getElementById('tt').value") == wanted:
                return await click("#subbtn")
            if await page.evaluate("() => document.activeElement.id") != "tt":
                return await click("#tt")
            return Decision(Type(text=wanted))
        if task == "click-checkboxes":
            names = re.fullmatch(r"Select (.*) and click Submit\.", said)
            assert names, said
            chosen = set() if names.group(1) == "nothing" else set(names.group(1).split(", "))
            for i, (label, checked) in enumerate(await page.evaluate(CHECKBOXES)):
                if (label in chosen) != checked:
                    return await click(f"#boxes label:nth-of-type({i + 1}) input")
            return await click("#subbtn")
        return Decision(Terminate(status="failure"), message=f"DomSolver cannot solve {task}")


class Waits(Policy):
    """Does nothing, one second at a time, for ``seconds`` in all; then says it is done."""

    def __init__(self, seconds: float = 60) -> None:
        self.left = seconds

    async def decide(self, ctx: StepContext) -> Decision:
        if self.left <= 0:
            return Decision(Terminate(status="success"))
        self.left -= 1
        return Decision(Wait(seconds=1))


@pytest.fixture(scope="module")
def suite_tasks():
    """The suite's pages served on 127.0.0.1 for the module; its TaskSpecs by id."""
    suite = MiniWoBSuite()
    with suite.serve() as tasks:
        yield {t.id: t for t in tasks}


def _seeded(spec: TaskSpec, seed: int) -> Task:
    return spec.task.model_copy(update={"metadata": {**spec.task.metadata, "seed": seed}})


async def _run(browser_env, tmp_path: Path, spec: TaskSpec, policy: Policy, *, seed: int = 0, scale: float = 1):
    """One episode through the Agent loop in a BrowserEnv of the suite's viewport; the episode and
    the env (still open, at the page as the episode left it)."""
    env = browser_env(viewport=MiniWoBSuite.viewport, device_scale_factor=scale)
    episode = await Agent(env, policy, recorder=Recorder(tmp_path)).run(_seeded(spec, seed), scenario=spec.scenario)
    return episode, env


def _grid_point(env, x: float, y: float) -> dict[str, int]:
    gx, gy = env.grid.point_to_grid(x, y, *env.viewport)
    return {"x": gx, "y": gy}


def test_every_page_the_package_ships_is_a_task_served_on_loopback(suite_tasks):
    html = html_dir()
    pages = {p.stem for p in (html / "miniwob").glob("*.html")}
    sites = {f"flight.{p.parent.name}" for p in html.glob("flight/*/wrapper.html")}
    assert set(suite_tasks) == pages | sites
    assert len(pages) >= 125 and {"flight.AA", "flight.Alaska", "flight.Alaska-auto"} <= sites
    assert all(t.task.url.startswith("http://127.0.0.1:") for t in suite_tasks.values())
    # The pages the package's gym registry leaves out run too; the real-time ones are named as limitations.
    assert {"chase-circle", "moving-items", "simon-says", "hover-shape", "button-delay"} <= set(suite_tasks)
    suite = get_suite("miniwob")
    assert isinstance(suite, MiniWoBSuite) and suite.viewport == (375, 667)
    assert set(suite.limitations()) <= set(suite_tasks) and "chase-circle" in suite.limitations()


def test_without_the_package_the_suite_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SuiteError, match=r"pip install 'pixelpilot\[miniwob\]'"):
        MiniWoBSuite()


@pytest.mark.parametrize("scale", [1, 2])
@pytest.mark.parametrize("task_id", DomSolver.SOLVES)
async def test_the_dom_solver_gets_the_pages_reward_of_1(browser_env, tmp_path, suite_tasks, task_id, scale):
    episode, _ = await _run(browser_env, tmp_path, suite_tasks[task_id], DomSolver(), seed=3, scale=scale)

    assert episode.status == "success", episode.message
    assert episode.raw_reward == 1.0
    # The reward is the page's own, after its time decay: 1 - (time taken) / (time limit), at most.
    limit = episode.task.metadata["time_limit_s"]
    assert 1 - episode.duration_s / limit <= episode.reward < 1.0
    assert episode.task.instruction != suite_tasks[task_id].task.instruction  # the page's, not the placeholder


@pytest.mark.parametrize("scale", [1, 2])
async def test_a_wrong_click_gets_the_pages_failure_reward_and_cannot_restart_the_episode(
    browser_env, tmp_path, suite_tasks, scale
):
    spec = suite_tasks["click-test-2"]
    episode, env = await _run(browser_env, tmp_path, spec, DomSolver(wrong=True), scale=scale)
    assert episode.task.instruction == "Click button ONE."
    assert episode.status == "failure" and episode.num_steps == 1
    assert episode.reward == -1.0 and episode.raw_reward == -1.0  # the page's own, not time-decayed

    # Once the page has ended its episode its START cover stays away: clicks where it would be (the
    # middle of the task area) start no new problem, and the first reward stands.
    first = await spec.scenario.poll(env)
    assert first is not None and first.raw_reward == -1.0 and first.success is False
    for _ in range(2):
        await env.execute(Click(**_grid_point(env, 80, 105)))
    assert await spec.scenario.poll(env) == first
    assert await env.evaluate("() => [WOB_EPISODE_ID, core.cover_div.style.display]") == [1, "none"]


async def test_the_time_limit_is_the_pages_and_its_timer_ends_a_slow_episode(browser_env, tmp_path, suite_tasks):
    source = (html_dir() / "miniwob" / "use-colorwheel.html").read_text()
    assert "core.EPISODE_MAX_TIME = 7000" in source  # this page's own limit, not the core's 10 s

    started = time.monotonic()
    episode, _ = await _run(browser_env, tmp_path, suite_tasks["use-colorwheel"], Waits())
    assert episode.task.metadata["time_limit_s"] == 7.0
    assert episode.status == "failure" and "timed out" in episode.message
    assert episode.reward == -1.0 and episode.raw_reward == -1.0
    assert 7.0 <= time.monotonic() - started < 20


async def test_an_episode_the_agent_stops_is_stopped_with_reward_0(browser_env, tmp_path, suite_tasks):
    episode, env = await _run(browser_env, tmp_path, suite_tasks["click-button"], Waits(seconds=0))
    assert episode.num_steps == 1 and episode.reward == 0.0 and episode.raw_reward == 0.0
    # The page ended its episode with 0, as the package's force_stop does; its timer is stopped.
    ended = await env.evaluate("() => [WOB_DONE_GLOBAL, WOB_RAW_REWARD_GLOBAL, WOB_REWARD_REASON, core.EP_TIMER]")
    assert ended == [True, 0, STOPPED, None]
    # A miss is no verdict: a click on the query text leaves a fresh episode running.
    spec = suite_tasks["click-button"]
    await env.reset(spec.task)
    await MiniWoBScenario().begin(env, _seeded(spec, 0))
    await env.execute(Click(**_grid_point(env, 20, 10)))
    assert await spec.scenario.poll(env) is None


class Reloads(Policy):
    """Opens the task page again: the page's episode is lost with it."""

    async def decide(self, ctx: StepContext) -> Decision:
        return Decision(Navigate(url=ctx.task.url or ""))


async def test_leaving_the_task_page_fails_the_episode(browser_env, tmp_path, suite_tasks):
    episode, env = await _run(browser_env, tmp_path, suite_tasks["click-button"], Reloads())
    assert episode.status == "failure" and episode.num_steps == 1 and LEFT in episode.message
    assert episode.reward == -1.0 and episode.raw_reward == -1.0
    # The fresh page shows its START cover again, and nothing started a new problem.
    assert await env.evaluate("() => [WOB_DONE_GLOBAL, core.cover_div.style.display]") == [False, "block"]


async def test_a_page_that_is_not_a_task_ends_the_episode_without_a_page_reward(browser_env, tmp_path, suite_tasks):
    spec = suite_tasks["click-button"]
    listing = TaskSpec(
        id="listing",
        task=spec.task.model_copy(update={"url": spec.task.url.rsplit("/", 1)[0] + "/"}),
        scenario=spec.scenario,
    )
    episode, _ = await _run(browser_env, tmp_path, listing, Waits(seconds=0))
    assert episode.status == "env_error" and "not a MiniWoB task page" in episode.message
    assert episode.num_steps == 0 and episode.reward == 0.0 and episode.raw_reward is None


async def test_the_seed_gives_the_same_problem(browser_env, suite_tasks):
    spec = suite_tasks["click-checkboxes"]
    env = browser_env(viewport=MiniWoBSuite.viewport)
    seen = []
    for seed in (5, 5, 6):
        await env.reset(spec.task)
        task = await spec.scenario.begin(env, _seeded(spec, seed))
        seen.append((task.instruction, await env.evaluate("() => document.getElementById('area').innerHTML")))
    assert seen[0] == seen[1] and seen[0] != seen[2]


async def test_the_suite_runs_through_collect_into_results(tmp_path, suite_tasks):
    chosen = [suite_tasks["click-button"], suite_tasks["click-test-2"]]
    out = tmp_path / "eval"
    config = RunnerConfig(
        out=out / "episodes",
        viewport=MiniWoBSuite.viewport,
        policy_factory=lambda spec: DomSolver(wrong=spec.task.name == "click-test-2"),
    )
    await collect(chosen, config, rollouts=2, first_seed=10, concurrency=2)
    tasks = score(chosen, out / "episodes", 2, out)
    results = Results.build("miniwob", RunInfo(label="dom-solver", seeds=2, first_seed=10), tasks)

    by_id = {t.id: t for t in results.tasks}
    assert [t.seed for t in by_id["click-button"].trials] == [10, 11]
    assert by_id["click-button"].success_rate == 1.0 and by_id["click-test-2"].success_rate == 0.0
    assert all(t.raw_reward == 1.0 for t in by_id["click-button"].trials)
    assert all(t.raw_reward == -1.0 and t.reward == -1.0 for t in by_id["click-test-2"].trials)
    assert results.summary.success_rate == 0.5


@pytest.mark.slow
async def test_every_task_opens_and_gives_its_instruction(browser_env, suite_tasks):
    env = browser_env(viewport=MiniWoBSuite.viewport)
    started = time.monotonic()
    said = {}
    for task_id, spec in suite_tasks.items():
        await env.reset(spec.task)
        task = await spec.scenario.begin(env, _seeded(spec, 1))
        said[task_id] = task.instruction
        assert task.metadata["time_limit_s"] >= 7, task_id
    seconds = time.monotonic() - started
    empty = [t for t, s in said.items() if not s.strip()]
    assert not empty and len(said) == len(suite_tasks) >= 128
    assert said["unicode-test"].isprintable() and "Ã" not in said["unicode-test"]  # served as UTF-8
    print(f"{len(said)} tasks opened in {seconds:.1f} s ({seconds / len(said) * 1000:.0f} ms each)")
    assert seconds < 3 * len(said)
