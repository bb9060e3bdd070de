"""The grounding eval: a grounding export of the example app recorded in real Chromium, and
ScreenSpot-style annotations made here, scored with policies that answer known points and once with
the local tiny Qwen3-VL over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from pixelpilot.actions import Click, Terminate
from pixelpilot.agent import Agent, Decision, ModelError, Policy, ScriptPolicy, StepContext, load_task_file
from pixelpilot.envs.browser import BrowserEnv
from pixelpilot.evals import load_results
from pixelpilot.evals.grounding import evaluate_grounding, evaluate_grounding_sync, load_samples
from pixelpilot.trajectories import Recorder
from pixelpilot.trajectories.export import export_episodes

ROOT = Path(__file__).resolve().parents[1]


class PointingPolicy(Policy):
    """Answers each question (by its task name, the sample id) with a click at the point ``points``
    gives it; notes what it was shown."""

    def __init__(self, points: dict[str, tuple[int, int] | None]) -> None:
        self.points = points
        self.seen: dict[str, tuple[str, int, int, bytes]] = {}

    async def decide(self, ctx: StepContext) -> Decision:
        name = ctx.task.name or ""
        obs = ctx.observation
        self.seen[name] = (ctx.env.kind, obs.width, obs.height, obs.png[:8])
        point = self.points[name]
        if point is None:
            return Decision(action=Terminate(status="failure"))
        return Decision(action=Click(x=point[0], y=point[1]))


@pytest.fixture(scope="module")
async def export(shared_browser, todo_app, tmp_path_factory) -> tuple[Path, list[dict]]:
    """The demo task recorded with ScriptPolicy (text targets, so each click keeps its element's box),
    exported as `grounding`; the folder and its rows."""
    runs = tmp_path_factory.mktemp("runs")
    demo = load_task_file(ROOT / "examples" / "todo.yaml")
    env = BrowserEnv(browser=shared_browser, settle_timeout=10)
    try:
        episode = await Agent(env, ScriptPolicy(), recorder=Recorder(runs)).run(
            demo.model_copy(update={"url": todo_app.url})
        )
    finally:
        await env.aclose()
    assert episode.status == "success"
    folder = tmp_path_factory.mktemp("grounding")
    export_episodes([runs], folder, format="grounding")
    rows = [json.loads(line) for line in (folder / "grounding.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 4 and all(r["bbox_2d"] and r["target"] for r in rows)
    return folder, rows


async def test_the_recorded_points_all_hit(export, tmp_path):
    folder, rows = export
    policy = PointingPolicy({r["id"]: tuple(r["point_2d"]) for r in rows})
    results = await evaluate_grounding(folder, tmp_path, policy_factory=lambda: policy, label="recorded")

    s = results.summary
    assert (s.tasks, s.trials, s.successes, s.success_rate) == (len(rows), len(rows), len(rows), 1.0)
    assert set(policy.seen) == {r["id"] for r in rows}
    assert {kind for kind, *_ in policy.seen.values()} == {"browser"}
    # Every breakdown splits the same samples.
    for name in ("source", "element type", "image size"):
        assert sum(g.n for g in results.breakdowns[name].values()) == len(rows), name
    assert results.breakdowns["source"][folder.name].success_rate == 1.0
    width = max(Image.open(folder / rows[0]["image"]).size)
    assert list(results.breakdowns["image size"]) == (["≤1280 px"] if width <= 1280 else ["1281–1920 px"])
    assert load_results(tmp_path) == results
    assert (tmp_path / "scoreboard.html").exists()


async def test_box_corners_hit_and_one_unit_beyond_misses(export, tmp_path):
    """The hit rule counts the box's edges as inside: the top-left corner hits; a point one grid
    unit beyond the bottom-right corner misses. Alternating the two scores exactly ⌈n/2⌉ of n."""
    folder, rows = export
    points: dict[str, tuple[int, int] | None] = {}
    for k, r in enumerate(rows):
        x1, y1, x2, y2 = r["bbox_2d"]
        assert x2 < 1000 and y2 < 1000
        points[r["id"]] = (x1, y1) if k % 2 == 0 else (x2 + 1, y2 + 1)
    results = await evaluate_grounding(folder, tmp_path, policy_factory=lambda: PointingPolicy(points), concurrency=3)

    n = len(rows)
    assert results.summary.successes == (n + 1) // 2
    assert results.summary.success_rate == pytest.approx(((n + 1) // 2) / n)
    for k, task in enumerate(results.tasks):
        (trial,) = task.trials
        assert (
            task.id == rows[k]["id"]
            and trial.success == (k % 2 == 0)
            and trial.status == ("hit" if k % 2 == 0 else "miss")
        )

    far = {r["id"]: (r["bbox_2d"][2], r["bbox_2d"][3]) for r in rows}  # the bottom-right corner itself
    results = await evaluate_grounding(folder, tmp_path / "br", policy_factory=lambda: PointingPolicy(far))
    assert results.summary.success_rate == 1.0


def _image(path: Path, size: tuple[int, int], fmt: str = "PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, "white").save(path, format=fmt)


@pytest.fixture
def screenspot(tmp_path: Path) -> Path:
    """A ScreenSpot-v2 layout (three files, boxes [x, y, w, h], images in screenspotv2_image/) with a
    small PNG, a JPEG and a large PNG."""
    root = tmp_path / "ScreenSpot-v2"
    _image(root / "screenspotv2_image" / "phone.png", (390, 844))
    _image(root / "screenspotv2_image" / "site.jpg", (1920, 1080), "JPEG")
    _image(root / "screenspotv2_image" / "mac.png", (2880, 1800))
    files = {
        "screenspot_mobile_v2.json": [
            {
                "img_filename": "phone.png",
                "bbox": [100, 700, 190, 80],
                "instruction": "open the camera",
                "data_type": "icon",
                "data_source": "ios",
            },
            {
                "img_filename": "phone.png",
                "bbox": [20, 40, 350, 60],
                "instruction": "search",
                "data_type": "text",
                "data_source": "android",
            },
        ],
        "screenspot_web_v2.json": [
            {
                "img_filename": "site.jpg",
                "bbox": [1600, 20, 200, 40],
                "instruction": "sign in",
                "data_type": "text",
                "data_source": "shop",
            },
        ],
        "screenspot_desktop_v2.json": [
            {
                "img_filename": "mac.png",
                "bbox": [0, 0, 288, 180],
                "instruction": "the apple menu",
                "data_type": "icon",
                "data_source": "macos",
            },
        ],
    }
    for name, rows in files.items():
        (root / name).write_text(json.dumps(rows), encoding="utf-8")
    return root


def test_screenspot_samples_read_as_their_releases_write_them(screenspot, tmp_path):
    samples = {s.id: s for s in load_samples(screenspot)}
    assert set(samples) == {
        "screenspot_desktop_v2/0",
        "screenspot_mobile_v2/0",
        "screenspot_mobile_v2/1",
        "screenspot_web_v2/0",
    }
    phone = samples["screenspot_mobile_v2/0"]
    assert phone.bbox == (100, 700, 290, 780) and phone.size == (390, 844) and phone.kind == "mobile"
    assert (samples["screenspot_web_v2/0"].kind, samples["screenspot_desktop_v2/0"].kind) == ("browser", "desktop")

    # ScreenSpot-Pro: annotations/ beside images/, boxes [x1, y1, x2, y2] with img_size.
    pro = tmp_path / "ScreenSpot-Pro"
    _image(pro / "images" / "ps_windows" / "a.png", (3840, 2160))
    row = {
        "id": "ps_0",
        "img_filename": "ps_windows/a.png",
        "bbox": [100, 200, 160, 240],
        "img_size": [3840, 2160],
        "instruction": "brush",
        "ui_type": "icon",
        "platform": "windows",
    }
    (pro / "annotations").mkdir()
    (pro / "annotations" / "ps_windows.json").write_text(json.dumps([row]), encoding="utf-8")
    (sample,) = load_samples(pro)
    assert (sample.id, sample.bbox, sample.source, sample.element_type) == (
        "ps_windows/ps_0",
        (100, 200, 160, 240),
        "windows",
        "icon",
    )

    # A v1/v2 box read as corners is no box (right < left): the error names the other reading.
    with pytest.raises(ValueError, match="bbox_format='xywh'"):
        load_samples(screenspot / "screenspot_web_v2.json", bbox_format="xyxy")


def test_screenspot_file_scored_by_source_type_size_and_file(screenspot, tmp_path):
    samples = load_samples(screenspot)
    # The box centres on the 0..1000 grid, except for the web sample, which gets no click at all.
    points: dict[str, tuple[int, int] | None] = {
        s.id: (
            round((s.bbox[0] + s.bbox[2]) / 2 * 1000 / s.size[0]),
            round((s.bbox[1] + s.bbox[3]) / 2 * 1000 / s.size[1]),
        )
        for s in samples
    }
    points["screenspot_web_v2/0"] = None
    policy = PointingPolicy(points)
    results = evaluate_grounding_sync(screenspot, tmp_path / "out", policy_factory=lambda: policy, concurrency=2)

    assert (results.summary.trials, results.summary.successes) == (4, 3)
    web = next(t for t in results.tasks if t.id == "screenspot_web_v2/0").trials[0]
    assert (web.success, web.status, web.message) == (False, "no_point", "answered terminate, not a click")
    b = results.breakdowns
    assert {k: (g.successes, g.n) for k, g in b["source"].items()} == {
        "android": (1, 1),
        "ios": (1, 1),
        "macos": (1, 1),
        "shop": (0, 1),
    }
    assert {k: (g.successes, g.n) for k, g in b["element type"].items()} == {"icon": (2, 2), "text": (1, 2)}
    assert {k: (g.successes, g.n) for k, g in b["image size"].items()} == {
        "≤1280 px": (2, 2),
        "1281–1920 px": (0, 1),
        "2561–3840 px": (1, 1),
    }
    assert set(b["file"]) == {"screenspot_desktop_v2", "screenspot_mobile_v2", "screenspot_web_v2"}
    # The policy saw each image as a PNG of its own size, on the screen its platform has.
    kind, w, h, head = policy.seen["screenspot_web_v2/0"]
    assert (kind, w, h, head) == ("browser", 1920, 1080, b"\x89PNG\r\n\x1a\n")
    assert policy.seen["screenspot_mobile_v2/1"][0] == "mobile"
    trial = next(t for t in results.tasks if t.id == "screenspot_mobile_v2/0").trials[0]
    assert trial.extra["bbox"] == [100, 700, 290, 780] and trial.extra["image_size"] == [390, 844]
    assert 100 <= trial.extra["point"][0] <= 290 and 700 <= trial.extra["point"][1] <= 780


async def test_a_server_that_does_not_answer_fails_before_any_question(screenspot, tmp_path):
    with pytest.raises(ModelError):
        await evaluate_grounding(screenspot, tmp_path, model_urls=["http://127.0.0.1:9/v1"])
    assert not (tmp_path / "results.json").exists()


@pytest.mark.slow
async def test_the_tiny_model_answers_every_question(server_url, screenspot, tmp_path):
    results = await evaluate_grounding(screenspot, tmp_path, model_urls=[server_url], concurrency=2)

    # Random weights point anywhere; what must hold is that every sample was asked and scored.
    s = results.summary
    assert s.trials == 4 and results.run.profile == "qwen3-vl" and results.run.model_urls == [server_url]
    statuses = [t.trials[0].status for t in results.tasks]
    assert set(statuses) <= {"hit", "miss", "model_error"}, statuses
    assert s.successes == statuses.count("hit") == sum(g.successes for g in results.breakdowns["source"].values())
    for task in results.tasks:
        trial = task.trials[0]
        if trial.status != "model_error":
            x, y = trial.extra["grid_point"]
            assert 0 <= x <= 1000 and 0 <= y <= 1000
    assert load_results(tmp_path).summary == s
