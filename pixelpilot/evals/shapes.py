"""``shapes``: click the named shape on the page — a task family a small model can learn.

Each episode draws a layout from its seed: ``count`` shapes (circle, square, triangle) in distinct
colours (one by default; with more, the others are distractors), each in its own cell of a
``cols``×``rows`` grid (moved up to ``jitter`` pixels off the cell's centre), on a white page of
``width``×``height`` CSS pixels. The instruction names one of them: "Click the red circle." The
first action decides the episode: a left click on the named shape succeeds (reward 1), anything
else fails (reward 0) — a click on another shape, on the background, or an action that clicks
nothing.

It exists to close the training loop (``bench/train_loop.py``, docs/training.md): collect the
scripted solutions (:class:`ShapesOracle` clicks the target's centre), export them, train, and
evaluate on seeds never trained on (``pixelpilot eval shapes --first-seed 10000``). The figures
that say what a success rate means here come with the family: :meth:`Family.random_click_rate`
(a uniformly random click) and :meth:`Family.constant_rate` (the best fixed point).

The page is drawn into ``about:blank`` by :meth:`ShapesScenario.begin` rather than served: the
prompt shows the page's URL ("Current URL: …"), and a loopback server's port changes from run to
run, so a model trained on one collection would see an unfamiliar URL in every evaluation.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..actions import Click, Task
from ..agent.collect import EpisodeSpec, TaskSpec
from ..agent.policy import Decision, Policy, StepContext
from ..agent.scenario import Scenario, Verdict
from ..envs import Env, EnvError, PageScripting
from .suite import Suite

if TYPE_CHECKING:
    from ..trajectories import Episode

__all__ = [
    "COLOURS",
    "KINDS",
    "OUTCOMES",
    "Family",
    "Layout",
    "SPLITS",
    "Shape",
    "ShapesOracle",
    "ShapesScenario",
    "ShapesSuite",
    "Split",
    "first_click",
    "oracle",
    "outcome",
]

#: Colour names and their fills: far apart in hue, so that a small vision tower tells them apart.
COLOURS = {
    "red": "#e53935",
    "green": "#43a047",
    "blue": "#1e88e5",
    "yellow": "#fdd835",
}
KINDS = ("circle", "square", "triangle")
#: The two halves of the family: pictures trained on, and pictures kept for evaluation.
Split = Literal["train", "held-out"]
SPLITS: tuple[Split, ...] = ("train", "held-out")
#: One picture in this many is held out.
HELD_OUT_ONE_IN = 5
#: Shown until the scenario writes the layout's instruction.
PLACEHOLDER = "(the shapes page gives the instruction when its episode starts)"


@dataclass(frozen=True)
class Shape:
    """One shape, placed: its kind, colour name, centre and size in CSS pixels."""

    kind: str
    colour: str
    x: int
    y: int
    size: int

    @property
    def name(self) -> str:
        return f"{self.colour} {self.kind}"

    def contains(self, px: float, py: float) -> bool:
        """Whether a point lies on the shape (the geometry the page draws)."""
        half = self.size / 2
        dx, dy = px - self.x, py - self.y
        if self.kind == "circle":
            return dx * dx + dy * dy <= half * half
        if self.kind == "square":
            return abs(dx) <= half and abs(dy) <= half
        # triangle: apex at the top centre, base along the bottom of the size×size box
        if not -half <= dy <= half:
            return False
        return abs(dx) <= (dy + half) / 2

    def area(self) -> float:
        return {"circle": math.pi / 4, "square": 1.0, "triangle": 0.5}[self.kind] * self.size * self.size

    def svg(self) -> dict[str, Any]:
        """The SVG element that draws it: tag and attributes."""
        half = self.size / 2
        if self.kind == "circle":
            return {"tag": "circle", "cx": self.x, "cy": self.y, "r": half}
        if self.kind == "square":
            return {"tag": "rect", "x": self.x - half, "y": self.y - half, "width": self.size, "height": self.size}
        top, bottom = self.y - half, self.y + half
        points = f"{self.x},{top} {self.x - half},{bottom} {self.x + half},{bottom}"
        return {"tag": "polygon", "points": points}


@dataclass(frozen=True)
class Layout:
    """A page of shapes and the one to click (``shapes[target]``)."""

    width: int
    height: int
    shapes: tuple[Shape, ...]
    target: int

    @property
    def goal(self) -> Shape:
        return self.shapes[self.target]

    @property
    def instruction(self) -> str:
        return f"Click the {self.goal.name}."

    def hit(self, px: float, py: float) -> Shape | None:
        """The shape under a point, if any."""
        return next((s for s in self.shapes if s.contains(px, py)), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "height": self.height,
            "shapes": [asdict(s) for s in self.shapes],
            "target": self.target,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Layout:
        shapes = tuple(Shape(**s) for s in data["shapes"])
        return cls(int(data["width"]), int(data["height"]), shapes, int(data["target"]))


@dataclass(frozen=True)
class Family:
    """The layouts a seed draws from (see the module docstring)."""

    width: int = 192
    height: int = 192
    #: 64-pixel cells; the 192-pixel page is under Qwen3-VL's 64-token floor, so the model sees it at
    #: 256×256, where a cell is 85 pixels: a little over 2×2 of its 32-pixel image tokens.
    cols: int = 3
    rows: int = 3
    #: Shapes per page: the target and ``count - 1`` distractors. One by default: what a from-scratch
    #: model can learn on two CPU cores within the demonstration's budget, though not in every run
    #: (docs/training.md has the runs, and the figures with two: where before which).
    count: int = 1
    #: The side of a shape's bounding square, in CSS pixels.
    size: int = 48
    #: The most a shape's centre moves off its cell's centre, in CSS pixels: 8 gives each cell 17×17
    #: positions, so the family has tens of thousands of pictures (without it, 108 with one shape:
    #: the held-out fifth is a handful, and one fixed click hits a quarter of them), and keeps the
    #: cell's centre on every kind of shape.
    jitter: int = 8

    def __post_init__(self) -> None:
        if not 1 <= self.count <= min(len(COLOURS), self.cols * self.rows):
            raise ValueError(f"count must be 1..{min(len(COLOURS), self.cols * self.rows)}, got {self.count}")
        cell = min(self.width / self.cols, self.height / self.rows)
        if self.size + 2 * self.jitter > cell:
            raise ValueError(f"a {self.size}px shape moved up to {self.jitter}px does not fit a {cell:.0f}px cell")

    def layout(self, seed: int, split: Split | None = None) -> Layout:
        """The layout of ``seed`` (the same on every machine: Python's own Mersenne Twister); with a
        ``split``, the first layout the seed's generator draws whose picture is in that split."""
        rng = random.Random(seed)
        while True:
            layout = self._draw(rng)
            if split is None or self.split_of(layout) == split:
                return layout

    def _draw(self, rng: random.Random) -> Layout:
        cells = rng.sample(range(self.cols * self.rows), self.count)
        colours = rng.sample(sorted(COLOURS), self.count)
        shapes = []
        for cell, colour in zip(cells, colours, strict=True):
            col, row = cell % self.cols, cell // self.cols
            x = round((col + 0.5) * self.width / self.cols) + rng.randint(-self.jitter, self.jitter)
            y = round((row + 0.5) * self.height / self.rows) + rng.randint(-self.jitter, self.jitter)
            shapes.append(Shape(rng.choice(KINDS), colour, x, y, self.size))
        return Layout(self.width, self.height, tuple(shapes), rng.randrange(self.count))

    def cell(self, px: float, py: float) -> tuple[int, int]:
        """The grid cell (column, row) a point on the page lies in; a point off the page counts in
        the nearest cell."""
        col = int(px * self.cols // self.width)
        row = int(py * self.rows // self.height)
        return min(max(col, 0), self.cols - 1), min(max(row, 0), self.rows - 1)

    @staticmethod
    def split_of(layout: Layout) -> Split:
        """Which split a layout's picture (its shapes, whatever the instruction) belongs to: a fixed
        fifth of all pictures is ``held-out``, by a hash of what is drawn, so a model trained on the
        ``train`` split has never seen a ``held-out`` page, from any seed."""
        drawn = sorted((s.x, s.y, s.kind, s.colour, s.size) for s in layout.shapes)
        digest = hashlib.blake2b(repr(drawn).encode(), digest_size=8).digest()
        return "held-out" if int.from_bytes(digest) % HELD_OUT_ONE_IN == 0 else "train"

    def random_click_rate(self, seeds: Sequence[int] = range(2000), split: Split | None = None) -> float:
        """The success rate of a click at a uniformly random point: the target's mean share of the page."""
        areas = [self.layout(s, split).goal.area() for s in seeds]
        return sum(areas) / len(areas) / (self.width * self.height)

    def constant_rate(
        self, seeds: Sequence[int] = range(5000), step: int = 4, split: Split | None = None
    ) -> tuple[float, tuple[int, int]]:
        """The best success rate of one fixed click for every layout, and where (CSS pixels): searched
        on a ``step``-pixel lattice over the layouts of ``seeds``."""
        hits: Counter[tuple[int, int]] = Counter()
        for seed in seeds:
            goal = self.layout(seed, split).goal
            half = goal.size // 2 + step
            # from the lattice points at or before the shape's box, to past it
            for py in range((goal.y - half) // step * step, goal.y + half + 1, step):
                for px in range((goal.x - half) // step * step, goal.x + half + 1, step):
                    if goal.contains(px, py):
                        hits[(px, py)] += 1
        where, best = hits.most_common(1)[0]
        return best / len(seeds), where


# The page, drawn into about:blank; every left click is recorded with the shape it landed on.
_DRAW = """(layout) => {
  const ns = 'http://www.w3.org/2000/svg';
  document.title = 'Shapes';
  document.documentElement.style.cssText = 'margin:0;height:100%;background:#fff';
  document.body.style.cssText = 'margin:0;height:100%;overflow:hidden;background:#fff';
  document.body.replaceChildren();
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('width', layout.width);
  svg.setAttribute('height', layout.height);
  svg.style.display = 'block';
  layout.shapes.forEach((shape, i) => {
    const el = document.createElementNS(ns, shape.svg.tag);
    for (const [k, v] of Object.entries(shape.svg)) if (k !== 'tag') el.setAttribute(k, v);
    el.setAttribute('fill', shape.fill);
    el.setAttribute('data-shape', String(i));
    svg.appendChild(el);
  });
  document.body.appendChild(svg);
  window.__shapes = {target: layout.target, names: layout.shapes.map((s) => s.name), clicks: []};
  document.addEventListener('click', (e) => {
    const hit = e.target.getAttribute ? e.target.getAttribute('data-shape') : null;
    window.__shapes.clicks.push({x: e.clientX, y: e.clientY, shape: hit === null ? null : Number(hit)});
  }, true);
}"""
_STATE = "() => (window.__shapes === undefined ? null : window.__shapes)"


def _page(env: Env) -> PageScripting:
    if not isinstance(env, PageScripting):
        raise EnvError(f"the shapes task runs in a browser; {env.label} cannot run the page's JavaScript")
    return env


@dataclass(frozen=True)
class ShapesScenario(Scenario):
    """One episode of the family: the seed's layout (from ``split``; None: either) drawn, its
    instruction given, the first action judged."""

    family: Family = Family()
    split: Split | None = "held-out"

    async def begin(self, env: Env, task: Task) -> Task:
        seed = int(task.metadata.get("seed", 0))
        layout = self.family.layout(seed, self.split)
        drawn = {
            "width": layout.width,
            "height": layout.height,
            "target": layout.target,
            "shapes": [{"svg": s.svg(), "fill": COLOURS[s.colour], "name": s.name} for s in layout.shapes],
        }
        await _page(env).evaluate(_DRAW, drawn)
        meta = {**task.metadata, "seed": seed, "layout": layout.to_json()}
        return task.model_copy(update={"instruction": layout.instruction, "metadata": meta})

    async def poll(self, env: Env) -> Verdict:
        """After the first action, whatever it was: the episode is one action long."""
        page = await _page(env).evaluate(_STATE)
        if page is None:
            return Verdict(reward=0.0, success=False, reason=OUTCOMES["left"])
        if not page["clicks"]:
            return Verdict(reward=0.0, success=False, reason=OUTCOMES["nothing"])
        click = page["clicks"][0]
        where = f"({click['x']:.0f}, {click['y']:.0f})"
        shape = click["shape"]
        if shape is None:
            return Verdict(reward=0.0, success=False, reason=f"{OUTCOMES['background']} at {where}")
        if shape == page["target"]:
            return Verdict(reward=1.0, success=True, reason=f"{OUTCOMES['target']}, the {page['names'][shape]}")
        return Verdict(reward=0.0, success=False, reason=f"{OUTCOMES['other']}, the {page['names'][shape]}")

    async def judge(self, env: Env, episode: Episode) -> Verdict:
        return Verdict(reward=0.0, success=False, reason=OUTCOMES["ended"])


#: How an episode can end, as the start of its verdict's reason (see :func:`outcome`).
OUTCOMES = {
    "target": "clicked the shape asked for",
    "other": "clicked another shape",
    "background": "clicked the background",
    "nothing": "the action clicked nothing",
    "left": "the action left the page",
    "ended": "the episode ended without an action on the page",
}


def outcome(message: str | None) -> str:
    """Which of :data:`OUTCOMES` an episode's message (its verdict's reason) reports: ``ended`` for an
    episode the policy ended itself (it has no message), ``unknown`` for any other."""
    if not message:
        return "ended"
    return next((key for key, start in OUTCOMES.items() if start in message), "unknown")


def first_click(episode: Episode) -> tuple[float, float] | None:
    """Where an episode's first action clicked on the page (CSS pixels), if it was a click."""
    done = episode.steps[0].pixel_action if episode.steps else None
    if not done or done.get("action") != "click":
        return None
    return float(done["x"]), float(done["y"])


class ShapesOracle(Policy):
    """The scripted solution: a left click at the centre of the named shape (the layout the scenario
    recorded in ``task.metadata``), with the instruction as its stated reason."""

    async def decide(self, ctx: StepContext) -> Decision:
        layout = ctx.task.metadata.get("layout")
        if not isinstance(layout, dict):
            raise EnvError("the shapes oracle needs the layout that ShapesScenario.begin records in the task")
        goal = Layout.from_json(layout).goal
        obs = ctx.observation
        x = ctx.grid.to_grid(goal.x, obs.input_width)
        y = ctx.grid.to_grid(goal.y, obs.input_height)
        return Decision(action=Click(x=x, y=y), thought=f"Click the {goal.name}.")


def oracle(spec: EpisodeSpec) -> Policy:
    """A policy factory for collect and evaluate: every episode solved by :class:`ShapesOracle`."""
    return ShapesOracle()


class ShapesSuite(Suite):
    """One task, ``click-shape``: each seed is a layout of :class:`Family` (module docstring), from
    the ``held-out`` split unless ``split`` says otherwise (``train`` for making training data).

    The model is offered one action, the click (:attr:`actions`): the whole task is one click, and
    the prompt's tool schema is half as long as with every browser action (575 tokens of system
    prompt instead of 1,134), which halves the cost of training on it. Its scripted episodes are
    exported with the same offer (``pixelpilot export --action click``, what ``bench/train_loop.py``
    does), so the requests of an evaluation are exactly the samples a model was trained on.
    """

    name = "shapes"
    actions = ("click",)
    viewport: tuple[int, int] = (Family.width, Family.height)

    def __init__(self, family: Family | None = None, split: Split | None = "held-out") -> None:
        self.family = family or Family()
        if split is not None and split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)} or None, not {split!r}")
        self.split = split
        self.viewport = (self.family.width, self.family.height)

    @contextmanager
    def serve(self) -> Iterator[list[TaskSpec]]:
        """Nothing to serve (the scenario draws each page): yields the one task."""
        task = Task(instruction=PLACEHOLDER, name="click-shape", metadata={"suite": self.name})
        yield [TaskSpec(id="click-shape", task=task, scenario=ShapesScenario(self.family, self.split))]
