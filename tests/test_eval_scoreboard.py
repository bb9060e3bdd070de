"""The scoreboard page: two runs compared, rendered in headless Chromium and read back; episode
links open viewer pages of episodes recorded in real Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest

from pixelpilot.agent import Agent, ScriptPolicy, load_task_file
from pixelpilot.agent.checkers import Checker
from pixelpilot.agent.scenario import Checked
from pixelpilot.envs.browser import BrowserEnv
from pixelpilot.evals.results import Results, RunInfo, TaskResult, Trial, episode_trial, group
from pixelpilot.evals.scoreboard import write_scoreboard
from pixelpilot.trajectories import Recorder, load_episode

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
async def episodes(shared_browser, todo_app, tmp_path_factory) -> tuple[Path, list]:
    """Two real episodes of the example app under ``base/episodes``, judged by a checker: the demo
    (reward 1) and one whose expectation fails (reward 0)."""
    root = tmp_path_factory.mktemp("board")
    demo = load_task_file(ROOT / "examples" / "todo.yaml").model_copy(update={"url": todo_app.url})
    failing = demo.model_copy(
        update={"name": "todo-fail", "steps": [{"click": "Sign in"}, {"expect": {"text": "Nowhere", "timeout": 0.3}}]}
    )
    recorded = []
    for task in (demo, failing):
        env = BrowserEnv(browser=shared_browser, settle_timeout=10)
        try:
            agent = Agent(env, ScriptPolicy(), recorder=Recorder(root / "base" / "episodes"))
            ep = await agent.run(task, scenario=Checked(Checker(text="1 open, 1 done")))
        finally:
            await env.aclose()
        recorded.append(load_episode(ep.path))
    assert [(e.status, e.reward) for e in recorded] == [("success", 1.0), ("failure", 0.0)]
    return root, recorded


def _trials(name: str, wins: list[bool]) -> list[Trial]:
    return [
        Trial(id=f"{name}-r{k}", success=w, reward=1.0 if w else 0.0, steps=3, seconds=2.0) for k, w in enumerate(wins)
    ]


def _write(folder: Path, label: str, tasks: list[TaskResult], **extra) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    trials = [t for task in tasks for t in task.trials]
    results = Results.build(
        "demo-suite",
        RunInfo(label=label, model="m-" + label),
        tasks,
        breakdowns={"source": {"app": group(trials)}},
        **extra,
    )
    return results.write(folder / "results.json")


_FACTS = """() => ({
  runs: [...document.querySelectorAll('table.headline tr.run')].map(r => ({
    label: r.querySelector('th').innerText,
    ...Object.fromEntries([...r.querySelectorAll('[data-figure]')].map(c => [c.dataset.figure, c.innerText])),
    deltas: [...r.querySelectorAll('[data-delta]')].map(c => c.innerText)})),
  tasks: Object.fromEntries([...document.querySelectorAll('tr.task')].map(r => [r.dataset.task, {
    success: [...r.querySelectorAll('[data-figure=success]')].map(c => c.dataset.run + ':' + c.innerText),
    deltas: [...r.querySelectorAll('[data-delta]')].map(c => c.innerText),
    missing: [...r.querySelectorAll('td.missing')].map(c => c.innerText)}])),
  breakdown: [...document.querySelectorAll('table.breakdown tr[data-value]')].map(r => r.innerText),
  limitations: [...document.querySelectorAll('ul.limitations li')].map(li => li.innerText),
})"""


async def test_two_runs_side_by_side_with_differences_and_episode_links(shared_browser, episodes, tmp_path):
    root, (ok, failed) = episodes
    base_dir = root / "base"
    base = _write(
        base_dir,
        "base <i>",
        [
            TaskResult(id="todo", trials=[episode_trial(ok, base_dir), episode_trial(failed, base_dir)]),
            TaskResult(id="drag-items", trials=_trials("drag-items", [True, False]), limitation="needs <drag> & drop"),
        ],
        limitations={"drag-items": "needs <drag> & drop"},
    )
    tuned = _write(
        root / "tuned",
        "tuned",
        [
            TaskResult(id="todo", trials=_trials("todo", [True, True])),
            TaskResult(id="drag-items", trials=_trials("drag-items", [False, False])),
            TaskResult(id="new-task", trials=_trials("new-task", [True])),
        ],
    )
    page_path = write_scoreboard([base, tuned], tmp_path / "compare.html")

    context = await shared_browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        page = await context.new_page()
        await page.goto(page_path.as_uri())
        facts = await page.evaluate(_FACTS)
        first, second = facts["runs"]
        # base: tasks at 1/2 and 1/2; tuned: 2/2, 0/2 and 1/1 — success is the mean over tasks.
        assert first["label"] == "base <i>" and await page.locator("section i").count() == 0
        assert (first["tasks"], first["trials"], first["success"]) == ("2", "4", "50.0% (2/4)")
        assert first["ci"] == "95% CI 15.0%–85.0%"  # Wilson, 2 of 4
        assert (second["tasks"], second["trials"], second["success"]) == ("3", "5", "66.7% (3/5)")
        assert second["ci"] == "95% CI 23.1%–88.2%"  # Wilson, 3 of 5
        assert second["deltas"][0] == "+16.7 pp"
        tasks = facts["tasks"]
        assert list(tasks) == ["todo", "drag-items", "new-task"]
        assert tasks["todo"]["success"] == ["0:50.0% (1/2)", "1:100.0% (2/2)"]
        assert tasks["todo"]["deltas"][0] == "+50.0 pp"
        assert tasks["drag-items"]["deltas"] == ["-50.0 pp", "-0.500"]
        assert tasks["new-task"]["success"] == ["1:100.0% (1/1)"] and tasks["new-task"]["missing"] == ["not run", "—"]
        # A breakdown pools the trials (3 of 5 is 60%), where the headline averages the tasks.
        assert facts["breakdown"] == ["app\t50.0% (2/4)\t95% CI 15.0%–85.0%\t60.0% (3/5)\t95% CI 23.1%–88.2%\t+10.0 pp"]
        assert facts["limitations"] == ["drag-items: needs <drag> & drop"]

        # The trials of a task unfold; the base run's trials are real episodes with viewer pages.
        row = page.locator("tr.task[data-task=todo] + tr.trials")
        await row.locator("summary").click()
        assert await row.locator("tr.trial").count() == 4
        links = row.locator("a.episode")
        assert await links.count() == 2
        href = await links.first.get_attribute("href")
        assert (tmp_path / href).is_file()
        await links.first.click()
        await page.wait_for_load_state()
        assert await page.title() == f"{ok.id} · success"
        assert await page.locator("section.step").count() == len(ok.steps)
        assert await page.locator("img.screenshot").first.evaluate("i => i.complete && i.naturalWidth > 0")
    finally:
        await context.close()


def test_runs_of_other_suites_get_sections_and_same_labels_stay_apart(tmp_path):
    _write(tmp_path / "a", "run", [TaskResult(id="t", trials=_trials("t", [True]))])
    b = _write(tmp_path / "b", "run", [TaskResult(id="t", trials=_trials("t", [False]))])
    other = Results.build("grounding", RunInfo(label="g"), [TaskResult(id="s", trials=_trials("s", [True]))])
    c = other.write(tmp_path / "c.json")
    html = write_scoreboard([tmp_path / "a", b, c], tmp_path / "out" / "board.html").read_text(encoding="utf-8")
    assert html.count('<section class="suite"') == 2
    assert ">run</th>" in html and ">run #2</th>" in html
    with pytest.raises(ValueError, match="at least one"):
        write_scoreboard([], tmp_path / "none.html")
