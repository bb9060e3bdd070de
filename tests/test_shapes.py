"""The shapes suite: layouts from seeds, the page the scenario draws in real Chromium, how an episode
is judged, and the scripted solution that makes the training data."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from pixelpilot import Agent, Recorder, Task
from pixelpilot.actions import Click, Move
from pixelpilot.agent.collect import RunnerConfig, collect
from pixelpilot.agent.policy import Decision, Policy, StepContext
from pixelpilot.evals import get_suite
from pixelpilot.evals.shapes import (
    COLOURS,
    Family,
    Layout,
    ShapesScenario,
    ShapesSuite,
    first_click,
    oracle,
    outcome,
)


@pytest.mark.parametrize("family", [Family(), Family(count=3, jitter=0), Family(count=4)], ids=str)
def test_a_seed_draws_the_same_valid_layout_every_time(family):
    assert family.layout(7) == family.layout(7)
    assert len({family.layout(s) for s in range(50)}) == 50
    for seed in range(200):
        layout = family.layout(seed)
        cells = {
            (round(s.x * family.cols / family.width - 0.5), round(s.y * family.rows / family.height - 0.5))
            for s in layout.shapes
        }
        assert len(cells) == family.count  # one shape per cell
        assert len({s.colour for s in layout.shapes}) == family.count  # the colour names the target
        for s in layout.shapes:
            assert s.size / 2 <= s.x <= family.width - s.size / 2 and s.size / 2 <= s.y <= family.height - s.size / 2
        assert layout.instruction == f"Click the {layout.goal.colour} {layout.goal.kind}."
        assert Layout.from_json(layout.to_json()) == layout


def test_no_held_out_picture_is_ever_drawn_for_training():
    family = Family()
    held = [family.layout(s, "held-out") for s in range(300)]
    trained = {frozenset(family.layout(s, "train").shapes) for s in range(3000)}
    assert all(Family.split_of(layout) == "held-out" for layout in held)
    assert not any(frozenset(layout.shapes) in trained for layout in held)
    # Each split is about its share of the pictures, and a seed draws the same layout every time.
    drawn = [Family.split_of(family.layout(s)) for s in range(3000)]
    assert 0.15 < drawn.count("held-out") / len(drawn) < 0.25
    assert family.layout(11, "held-out") == family.layout(11, "held-out")
    with get_suite("shapes").serve() as tasks:
        assert tasks[0].scenario.split == "held-out"  # what `pixelpilot eval shapes` runs
    with pytest.raises(ValueError, match="split must be"):
        ShapesSuite(split="test")  # type: ignore[arg-type]


def test_chance_and_the_best_constant_click_are_far_below_the_demonstration_bar():
    family = Family()
    assert 0.02 < family.random_click_rate() <= 0.10
    rate, (x, y) = family.constant_rate(range(600))
    assert rate < 0.40 / 3  # the bar is three times the better of the two
    hits = sum(family.layout(s).goal.contains(x, y) for s in range(600))
    assert hits / 600 == rate


def test_the_suite_is_registered_with_one_task_and_a_viewport_of_the_page_size():
    suite = get_suite("shapes")
    assert isinstance(suite, ShapesSuite)
    assert suite.viewport == (Family().width, Family().height)
    with suite.serve() as tasks:
        assert [t.id for t in tasks] == ["click-shape"]
        assert isinstance(tasks[0].scenario, ShapesScenario)


class ClickAt(Policy):
    """Clicks (or, with ``move``, hovers) at one CSS-pixel point of the page."""

    def __init__(self, px: int, py: int, move: bool = False) -> None:
        self.point, self.move = (px, py), move

    async def decide(self, ctx: StepContext) -> Decision:
        obs = ctx.observation
        x, y = ctx.grid.to_grid(self.point[0], obs.input_width), ctx.grid.to_grid(self.point[1], obs.input_height)
        return Decision(Move(x=x, y=y) if self.move else Click(x=x, y=y))


async def _episode(browser_env, tmp_path, policy: Policy, seed: int, family: Family | None = None):
    family = family or Family()
    env = browser_env(viewport=(family.width, family.height))
    task = Task(instruction="(set by the scenario)", metadata={"seed": seed})
    return await Agent(env, policy, recorder=Recorder(tmp_path)).run(task, scenario=ShapesScenario(family))


async def test_the_drawn_page_shows_each_shape_where_its_geometry_says(browser_env, tmp_path):
    family = Family(count=3)  # the target and two distractors
    layout = family.layout(3, "held-out")  # what the scenario draws by default
    episode = await _episode(browser_env, tmp_path, ClickAt(0, 0, move=True), seed=3, family=family)
    shot = Image.open(io.BytesIO((tmp_path / episode.id / episode.steps[0].screenshot).read_bytes())).convert("RGB")
    assert shot.size == (family.width, family.height)
    for shape in layout.shapes:
        fill = COLOURS[shape.colour]
        want = tuple(int(fill[i : i + 2], 16) for i in (1, 3, 5))
        got = shot.getpixel((shape.x, shape.y + shape.size // 4))  # inside every kind, the triangle included
        assert max(abs(a - b) for a, b in zip(got, want, strict=True)) <= 8, (shape, got)
    corner = shot.getpixel((1, 1))
    assert corner == (255, 255, 255)
    assert episode.task.instruction == layout.instruction
    assert episode.status == "failure" and episode.reward == 0.0
    assert outcome(episode.message) == "nothing"


async def test_a_click_on_the_named_shape_succeeds_and_any_other_click_fails(browser_env, tmp_path):
    family = Family(count=2)  # a distractor to click
    layout = family.layout(5, "held-out")
    goal = layout.goal
    other = next(s for s in layout.shapes if s is not goal)
    hit = await _episode(browser_env, tmp_path, ClickAt(goal.x, goal.y), seed=5, family=family)
    assert hit.status == "success" and hit.reward == 1.0
    assert outcome(hit.message) == "target" and goal.name in (hit.message or "")
    wrong = await _episode(browser_env, tmp_path, ClickAt(other.x, other.y), seed=5, family=family)
    assert wrong.status == "failure" and wrong.reward == 0.0
    assert outcome(wrong.message) == "other" and other.name in (wrong.message or "")
    empty = next((x, y) for x in range(8, 256, 16) for y in range(8, 256, 16) if layout.hit(x, y) is None)
    background = await _episode(browser_env, tmp_path, ClickAt(*empty), seed=5, family=family)
    assert background.status == "failure" and outcome(background.message) == "background"
    assert len(hit.steps) == len(wrong.steps) == len(background.steps) == 1  # one action decides


async def test_the_page_and_the_python_geometry_agree_on_what_a_point_hits(browser_env, tmp_path):
    """The chance figures are computed in Python: they must use the shapes the page hit-tests."""
    family = Family(count=4)
    layout = family.layout(11, "held-out")
    env = browser_env(viewport=(family.width, family.height))
    await env.reset(Task(instruction="shapes", metadata={"seed": 11}))
    await ShapesScenario(family).begin(env, Task(instruction="shapes", metadata={"seed": 11}))
    points = [(x, y) for x in range(2, family.width, 6) for y in range(2, family.height, 6)]
    on_page = await env.evaluate(
        """(points) => points.map(([x, y]) => {
             const el = document.elementFromPoint(x, y);
             return el && el.getAttribute('data-shape') !== null ? Number(el.getAttribute('data-shape')) : null; })""",
        points,
    )
    index = {s: i for i, s in enumerate(layout.shapes)}
    disagree = [
        (p, got) for p, got in zip(points, on_page, strict=True) if got != (index[h] if (h := layout.hit(*p)) else None)
    ]
    # Anti-aliased edges may go either way: allow a point or two on the shapes' outlines, no more.
    assert len(disagree) <= 0.002 * len(points), disagree[:5]


async def test_the_oracle_solves_every_collected_episode_and_records_its_reason(chromium, tmp_path):
    suite = ShapesSuite()
    config = RunnerConfig(out=tmp_path, viewport=suite.viewport, policy_factory=oracle, timeout=60)
    with suite.serve() as tasks:
        summary = await collect(tasks, config, rollouts=6, first_seed=100, concurrency=3)
    assert summary.statuses["success"] == 6
    from pixelpilot import load_episode

    for k in range(6):
        episode = load_episode(tmp_path / f"click-shape-r{k}")
        layout = Family().layout(100 + k, "held-out")
        assert episode.task.metadata["seed"] == 100 + k
        assert episode.steps[0].thought == f"Click the {layout.goal.name}."
        assert episode.steps[0].raw_output is None  # a script's step: exported with the default setup
        click = first_click(episode)  # where the click landed on the page, from the episode on disk
        assert click is not None and layout.hit(*click) == layout.goal
        assert Family().cell(*click) == Family().cell(layout.goal.x, layout.goal.y)

    # Exported offering the suite's actions, each sample's prompt is the one an evaluation sends.
    from pixelpilot.profiles import get_profile
    from pixelpilot.trajectories.export import ExportError, export_episodes

    report = export_episodes([tmp_path], tmp_path / "qwen", format="qwen", actions=ShapesSuite.actions)
    assert report.samples == 6
    rows = [json.loads(line) for line in (tmp_path / "qwen" / "data.jsonl").read_text().splitlines()]
    profile = get_profile("qwen3-vl")
    offered = profile.system_prompt(profile.setup("browser", actions=ShapesSuite.actions))
    assert all(row["system"] == offered for row in rows)
    assert '"enum": ["left_click", "right_click", "middle_click"]' in offered  # the click, nothing else
    assert all('"action": "left_click"' in row["conversations"][-1]["value"] for row in rows)
    with pytest.raises(ExportError, match="unknown actions"):
        export_episodes([tmp_path], tmp_path / "bad", format="qwen", actions=("clack",))


@pytest.mark.parametrize("family", [Family(count=4), Family(width=300, height=200, cols=5, rows=2, size=30)], ids=str)
def test_a_shape_lies_wholly_in_one_cell_of_the_grid_and_no_two_share_one(family):
    for seed in range(200):
        layout = family.layout(seed)
        cells = [family.cell(s.x, s.y) for s in layout.shapes]
        assert len(set(cells)) == len(cells)
        for shape, cell in zip(layout.shapes, cells, strict=True):
            half = shape.size / 2
            corners = [(shape.x + dx, shape.y + dy) for dx in (-half, half - 0.01) for dy in (-half, half - 0.01)]
            assert {family.cell(*c) for c in corners} == {cell}, (seed, shape)
    # off the page: the nearest cell
    assert family.cell(-5, family.height + 40) == (0, family.rows - 1)
    assert family.cell(family.width, 0) == (family.cols - 1, 0)


@pytest.mark.parametrize("count", [0, 7])
def test_a_family_that_cannot_be_drawn_is_refused(count):
    with pytest.raises(ValueError, match="count"):
        Family(count=count)


def test_eval_max_tokens_cuts_an_answer_short_and_the_episode_fails_on_it(server_url, tmp_path):
    """`pixelpilot eval --max-tokens`: the tiny model's answers (a click, some 40 tokens) parse
    without a cap and are cut with one of 8 tokens, which fails the episode as a model error."""
    import subprocess
    import sys

    from pixelpilot import load_episode
    from pixelpilot.evals import load_results

    def run(out, *extra: str):
        cmd = [sys.executable, "-m", "pixelpilot.cli", "eval", "shapes", "--model-url", server_url]
        cmd += ["--seeds", "2", "--max-steps", "1", "--concurrency", "2", "--temperature", "0"]
        done = subprocess.run(
            [*cmd, "--out", str(out), "--no-progress", *extra], capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr[-2000:]
        results = load_results(out)
        return [load_episode(out / t.path) for task in results.tasks for t in task.trials]

    free = run(tmp_path / "free")
    assert all(e.status in ("success", "failure") for e in free)  # a click, judged by the page
    assert all(e.steps and e.steps[0].action["action"] == "click" for e in free)
    cut = run(tmp_path / "cut", "--max-tokens", "8")
    assert [e.status for e in cut] == ["model_error", "model_error"]
    assert all(not e.steps and "could not be used" in (e.message or "") for e in cut)
